"""Owner calls sent by real `chainsettle run` processes SIGKILLed at random points: an ERC-20
epoch's createEpoch, approve and fundEpoch are each signed once (one nonce each, never a second
transaction for a call), confirmed from final receipts, and the epoch is funded exactly."""

from __future__ import annotations

import asyncio
import os
import random
import signal

from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.owner import send_epoch
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from tests.integration.settlement.payouts.evm.test_kill import first_final_height, kill, start_daemon
from tests.integration.settlement.payouts.evm.test_pipeline import OWNER, deploy_funded_batcher, head, payout_config
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import fresh_address, latest_timestamp
from tests.support.config import make_settings, write_config
from tests.support.evm import deploy, deploy_token, send, token_balance, token_transfer
from tests.support.ledger import fund

SENDER = DEV_ACCOUNTS[2][0].lower()
CALLS = ("epoch:k:create", "epoch:k:approve", "epoch:k:fund")


async def test_owner_calls_are_sent_once_across_sigkills(anvil, pool, db_url, tmp_path):
    rng = random.Random(int(os.environ.get("CHAINSETTLE_KILL_SEED") or int.from_bytes(os.urandom(4), "big")))
    token = deploy_token(anvil.url).lower()
    token_transfer(anvil.url, token, OWNER, SENDER, 10**24)
    contract = deploy(anvil.url, "ClaimDistributor", DEV_ACCOUNTS[1][0], frm=SENDER).lower()
    start = head(anvil) + 1
    data = payout_config(anvil.url, deploy_funded_batcher(anvil), start)
    data["chains"][0]["contracts"] += [
        {"name": "claims", "address": contract, "abi": "claim_distributor", "start_block": start},
        {"name": "tok", "address": token, "abi": "erc20", "start_block": start}]
    data["chains"][0]["wallets"][1]["assets"] = ["native", "tok"]
    data["ledger"] = {"accounts": [{"code": "app:pool"}]}
    config = write_config(tmp_path / "chainsettle.toml", data)
    settings = make_settings(tmp_path, data)
    log = tmp_path / "daemon.log"

    await first_final_height(anvil, pool, config, db_url, log)
    await fund(pool, "app:pool", 10**21, asset="anvil:tok")
    holders = tuple((fresh_address().lower(), 1) for _ in range(5))
    await create_snapshot(pool, settings, SnapshotRequest("s", "list", holders), "t")
    total = 10**18 + 7
    await create_distribution(pool, settings, DistributionRequest("k", "s", "app:pool", "anvil:tok", total,
                                                                  mode="pull"), "t")
    await send_epoch(pool, settings, "k", contract=contract, epoch=3, deadline=latest_timestamp(anvil) + 3600,
                     sweep_to=SENDER, auto_sweep=True, actor="t")

    kills = 0
    for _ in range(40):
        proc = start_daemon(config, db_url, log)
        await asyncio.sleep(rng.uniform(0.2, 1.5))  # start-up, simulation, signing, broadcast or tracking
        kill(proc)
        kills += 1
        send(anvil.url, OWNER, OWNER, value=1)  # blocks on top: what was mined becomes final
        send(anvil.url, OWNER, OWNER, value=1)
        if await pool.fetchval("SELECT count(*) FROM distribution_owner_calls WHERE state = 'confirmed'") == 3:
            break
    proc = start_daemon(config, db_url, log)
    try:
        for _ in range(60):
            if await pool.fetchval("SELECT count(*) FROM distribution_owner_calls WHERE state = 'confirmed'") == 3:
                break
            send(anvil.url, OWNER, OWNER, value=1)
            await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    calls = {r["id"]: r for r in await pool.fetch("SELECT * FROM distribution_owner_calls")}
    assert {c: calls[c]["state"] for c in CALLS} == dict.fromkeys(CALLS, "confirmed"), (kills, calls)
    assert all(calls[c]["sends"] == 1 for c in CALLS)  # each signed for one send, whatever the kills
    nonces = await pool.fetch("SELECT owner_call_id, count(DISTINCT nonce) AS n FROM evm_txs "
                              "WHERE purpose = 'owner_call' GROUP BY owner_call_id")
    assert {r["owner_call_id"]: r["n"] for r in nonces} == dict.fromkeys(CALLS, 1)
    assert token_balance(anvil.url, token, contract) == total  # funded once, exactly
    assert kills >= 1
