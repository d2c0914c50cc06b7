"""Proof that the books match the chain through a whole pulled distribution run by the daemon.

The app's pool is funded by a real deposit (a [[ledger.funders]] transfer into the payout
sender's wallet); the ClaimDistributor is a configured wallet, so the daemon's own createEpoch,
approve and fundEpoch move tokens between two wallets of the books; holders claim (settled from
final Claimed events: each entitlement to the contract's wallet); after the deadline the unclaimed
entitlements return to the pool and the daemon's sweep moves the same tokens back to the sender's
wallet. Reconciliation at the final height then finds every wallet and asset equal to the chain,
and the ledger's accounts say what happened: the pool lost exactly what was claimed, every
entitlement is empty."""

from __future__ import annotations

import json

import pytest

from daemon.followers import make_follower
from settlement.distributions import claim_abi as ca
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.claims import proof_of, settle
from settlement.distributions.owner import send_epoch
from settlement.distributions.owner_send import OwnerCalls
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.reconcile.runs import reconcile_once
from tests.integration.contracts.test_claim_distributor import tx, warp
from tests.integration.settlement.payouts.evm.test_pipeline import OWNER, deploy_funded_batcher, head, payout_config
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import fresh_address, latest_timestamp
from tests.support.config import make_settings
from tests.support.evm import deploy, deploy_token, send, token_balance, token_transfer
from tests.support.ledger import balance_parts

SENDER = DEV_ACCOUNTS[2][0].lower()
SIGNER = DEV_ACCOUNTS[1][0]
POOL = "app:pool"
ASSET = "anvil:tok"
UNIT = 10**15


@pytest.fixture
async def books(anvil, pool, tmp_path):
    batcher = deploy_funded_batcher(anvil)
    token = deploy_token(anvil.url).lower()
    contract = deploy(anvil.url, "ClaimDistributor", SIGNER, frm=SENDER).lower()
    start = head(anvil) + 1
    cfg = payout_config(anvil.url, batcher, start)
    chain = cfg["chains"][0]
    chain["contracts"] += [{"name": "claims", "address": contract, "abi": "claim_distributor", "start_block": start},
                           {"name": "tok", "address": token, "abi": "erc20", "start_block": start}]
    chain["wallets"][1]["assets"] = ["native", "tok"]
    chain["wallets"].append({"name": "claims", "address": contract, "assets": ["tok"]})
    cfg["ledger"] = {"accounts": [{"code": POOL}],
                     "funders": [{"chain": "anvil", "address": OWNER.lower(), "account": POOL}]}
    settings = make_settings(tmp_path, cfg)
    follower = make_follower(settings.chain("anvil"), pool, settings)
    worker = EvmPayoutWorker(settings, pool, settings.payouts.chains[0])
    worker.after_track.append(OwnerCalls(pool, worker.sender).step)
    try:
        yield anvil, pool, settings, follower, worker, token, contract
    finally:
        await follower.close()
        await worker.close()


async def test_a_pulled_distribution_run_by_the_daemon_leaves_books_equal_to_the_chain(books):
    anvil, pool, settings, follower, worker, token, contract = books

    async def index() -> None:
        send(anvil.url, OWNER, OWNER, value=1)  # a block on top: the one before is final at depth 1
        await follower.backfill()

    async def run_until(call_id: str) -> None:
        for _ in range(30):
            await worker.step()
            await index()
            if await pool.fetchval("SELECT state FROM distribution_owner_calls WHERE id = $1", call_id) == "confirmed":
                return
        raise AssertionError(f"{call_id} not confirmed")

    token_transfer(anvil.url, token, OWNER, SENDER, 10 * UNIT)  # the app funds its pool on chain
    await index()
    assert (await balance_parts(pool, POOL, ASSET))["final"] == 10 * UNIT

    holders = [fresh_address().lower() for _ in range(4)]
    total = 4 * UNIT + 3
    await create_snapshot(pool, settings, SnapshotRequest("s", "list", tuple((h, 1) for h in holders)), "t")
    await create_distribution(pool, settings, DistributionRequest("d", "s", POOL, ASSET, total, mode="pull"), "t")
    deadline = latest_timestamp(anvil) + 3600
    await send_epoch(pool, settings, "d", contract=contract, epoch=1, deadline=deadline, sweep_to=SENDER,
                     auto_sweep=True, actor="t")
    await run_until("epoch:d:fund")
    assert token_balance(anvil.url, token, contract) == total

    async with pool.acquire() as conn:
        proofs = {h: await proof_of(conn, "d", h) for h in holders}
    for h in holders[:3]:
        p = proofs[h]
        tx(anvil, contract, ca.claim(1, p["index"], h, int(p["amount"]), p["proof"]))
    claimed = sum(int(proofs[h]["amount"]) for h in holders[:3])
    await index()
    assert sorted((await settle(pool, settings, "d"))["settled"]) == sorted(proofs[h]["index"] for h in holders[:3])
    report = await reconcile_once(settings, pool)
    assert report.exit_code == 0, report.to_json()  # mid-way: funded, partly claimed

    warp(anvil, 3601)
    await index()
    assert (await settle(pool, settings, "d"))["closed"]
    await run_until("epoch:d:sweep")
    await index()
    assert token_balance(anvil.url, token, contract) == 0
    assert token_balance(anvil.url, token, SENDER) == 10 * UNIT - claimed

    report = await reconcile_once(settings, pool)
    assert report.exit_code == 0, report.to_json()  # every wallet and asset equal to the chain at H
    checked = {(r["wallet"], r["asset"], r["expected"]) for run in json.loads(report.to_json())["chains"]
               for r in run["results"]}
    assert {(contract, ASSET, "0"), (SENDER, ASSET, str(10 * UNIT - claimed))} <= checked, checked
    assert (await balance_parts(pool, POOL, ASSET))["final"] == 10 * UNIT - claimed
    for h in holders:
        assert (await balance_parts(pool, f"entitlement:d:{h}", ASSET))["final"] == 0
    assert (await balance_parts(pool, "app:dist.d", ASSET))["final"] == 0
