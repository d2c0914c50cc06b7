"""A pushed distribution to 500 holders paid by `chainsettle run` while it is SIGKILLed at random
points (start-up, batching, signing, broadcasting, confirming, the distributions task): every
holder ends with exactly its share on chain, the distribution's account owes nothing, and the
distribution is paid."""

from __future__ import annotations

import asyncio
import os
import random
import signal

from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.push import push
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from tests.integration.settlement.payouts.evm.test_kill import (
    executed_on_chain,
    first_final_height,
    kill,
    start_daemon,
    wait_for,
    wait_for_log,
)
from tests.integration.settlement.payouts.evm.test_pipeline import deploy_funded_batcher, head, payout_config
from tests.support.batcher import balance, fresh_address
from tests.support.config import make_settings, write_config
from tests.support.ledger import balance_parts, fund

HOLDERS = 500
ETHER = 10**18


async def test_push_500_holders_once_across_daemon_sigkills(anvil, pool, db_url, tmp_path):
    rng = random.Random(int(os.environ.get("CHAINSETTLE_KILL_SEED", "2828")))
    batcher = deploy_funded_batcher(anvil, funds=50 * ETHER)
    start = head(anvil) + 1
    data = payout_config(anvil.url, batcher, start, max_recipients=60)
    data["ledger"] = {"accounts": [{"code": "app:pool"}]}
    config = write_config(tmp_path / "chainsettle.toml", data)
    settings = make_settings(tmp_path, data)
    log = tmp_path / "daemon.log"
    await first_final_height(anvil, pool, config, db_url, log)
    await fund(pool, "app:pool", 10 * ETHER, asset="anvil:native")
    holders = {fresh_address().lower(): rng.randrange(1, 10_000) for _ in range(HOLDERS)}
    await create_snapshot(pool, settings, SnapshotRequest("h", "list", tuple(holders.items())), "t")
    total = ETHER + 499
    await create_distribution(pool, settings, DistributionRequest("d", "h", "app:pool", "anvil:native", total), "t")
    out = await push(pool, settings, "d", "t")
    assert out.requested == HOLDERS and out.refused == []

    anvil.rpc("evm_setIntervalMining", [1])  # blocks keep coming, so batches become final
    progress = []
    for _ in range(8):
        proc = start_daemon(config, db_url, log)
        await asyncio.sleep(rng.uniform(0.3, 3.0))
        kill(proc)
        async with pool.acquire() as conn:
            progress.append(await conn.fetchval(
                "SELECT count(*) FROM payout_requests WHERE state = 'paid'"))
    assert any(n < HOLDERS for n in progress), progress  # killed with payouts still unconfirmed
    offset = log.stat().st_size
    proc = start_daemon(config, db_url, log)
    try:
        await wait_for(pool, "SELECT state = 'paid' FROM distributions WHERE id = 'd'", 180)
        await wait_for_log(log, offset, b"daemon.started", 60)  # so SIGTERM meets its handler
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    async with pool.acquire() as conn:
        shares = {r["recipient"]: int(r["amount"]) for r in await conn.fetch(
            "SELECT recipient, amount FROM distribution_shares WHERE distribution_id = 'd' AND state = 'paid'")}
        confirmed = {r["batch_id"] for r in await conn.fetch(
            "SELECT batch_id FROM payout_batches WHERE state = 'confirmed'")}
        paid = await conn.fetchval("SELECT count(*) FROM payout_requests WHERE state = 'paid'")
    assert len(shares) == HOLDERS and sum(shares.values()) == total and paid == HOLDERS
    for to, amount in shares.items():
        assert balance(anvil, to) == amount, to
    assert set(executed_on_chain(anvil, batcher, start)) == confirmed
    assert (await balance_parts(pool, "app:dist.d", "anvil:native"))["final"] == 0
