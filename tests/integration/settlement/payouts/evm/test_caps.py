"""Caps and clocks (issue 11, item 8): a transaction stopped at the fee cap
resumes once the cap is raised (a restart with the new config); expiry
counts from the signature, so an approval long after creation signs a batch
that still executes; the day's cap gets back what a dead batch did not pay."""

from __future__ import annotations

import asyncio

from daemon.payouts import refresh_payout_gauges
from settlement.payouts import metrics as pm
from settlement.payouts import requests as preq
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_fees import SPIKE, manual_mining, mine, send_one_below_market  # noqa: F401
from tests.integration.settlement.payouts.evm.test_pipeline import Env, credit_users, payout_config
from tests.support.batcher import balance, fresh_address, is_executed
from tests.support.config import make_settings

UNIT = 10**15


async def test_stuck_at_the_fee_cap_resumes_once_the_cap_is_raised(anvil, pool, tmp_path, manual_mining):  # noqa: F811
    (tmp_path / "raised").mkdir()
    e = Env(anvil, pool, tmp_path, bump_interval_seconds=0.2, max_fee_per_gas=SPIKE // 2)
    await e.start()
    raised = None
    try:
        to, _ = await send_one_below_market(e, anvil, manual_mining)
        for _ in range(6):
            await asyncio.sleep(0.25)
            await e.worker.step()
            mine(anvil, SPIKE)
        assert await e.val("SELECT state FROM evm_txs ORDER BY attempt DESC LIMIT 1") == "stuck_fee_cap"
        await refresh_payout_gauges(e.settings, pool)
        assert pm.STUCK_TXS.labels("anvil")._value.get() == 1
        # The operator raises the cap and restarts: the same worker code, the new config.
        cfg = payout_config(anvil.url, e.batcher, e.cfg.contracts[0].start_block, bump_interval_seconds=0.2,
                            max_fee_per_gas=3 * SPIKE)
        settings = make_settings(tmp_path / "raised", cfg)
        raised = EvmPayoutWorker(settings, pool, settings.payouts.chains[0])
        for _ in range(20):
            await asyncio.sleep(0.25)
            await raised.step()
            mine(anvil, SPIKE)
            if await e.val("SELECT count(*) FROM evm_txs WHERE state = 'mined'"):
                break
        mined = (await e.fetch("SELECT * FROM evm_txs WHERE state = 'mined'"))[0]
        assert SPIKE <= int(mined["max_fee_per_gas"]) <= 3 * SPIKE
        assert await e.val("SELECT count(DISTINCT nonce) FROM evm_txs") == 1
        await refresh_payout_gauges(settings, pool)
        assert pm.STUCK_TXS.labels("anvil")._value.get() == 0  # back to 0 once it empties
        mine(anvil)
        await e.index()
        assert await e.val("SELECT state FROM payout_batches") == "confirmed" and balance(anvil, to) == UNIT
    finally:
        if raised is not None:
            await raised.close()
        await e.close()


async def test_expiry_counts_from_the_approval_not_from_creation(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, batch_expiry_seconds=120,
            assets=[{"name": "native", "approval_threshold": UNIT // 2}])
    await e.start()
    try:
        to = fresh_address().lower()
        await credit_users(pool, "anvil", {to: UNIT})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="late")
        await e.worker.step()
        batch = (await e.fetch("SELECT batch_id, state, expiry FROM payout_batches"))[0]
        assert batch["state"] == "awaiting_approval"
        anvil.rpc("evm_increaseTime", [3600])  # approved the next morning
        anvil.rpc("evm_mine", [])
        await preq.approve_batch(pool, batch["batch_id"], "alice")
        for _ in range(2):
            await e.worker.step()
        signed = (await e.fetch("SELECT state, expiry, signed_at FROM payout_batches"))[0]
        assert signed["expiry"] >= batch["expiry"] + 3600 and signed["signed_at"] is not None
        await e.index()
        assert await e.val("SELECT state FROM payout_batches") == "confirmed"
        assert is_executed(anvil, e.batcher, bytes.fromhex(batch["batch_id"][2:])) and balance(anvil, to) == UNIT
    finally:
        await e.close()


async def test_small_requests_are_batched_apart_from_one_that_needs_approval(anvil, pool, tmp_path):
    # Issue 30: a 2-unit request and a tiny one were batched with a 150-unit request and waited with it.
    e = Env(anvil, pool, tmp_path, max_recipients=2, assets=[{"name": "native", "approval_threshold": 100 * UNIT}])
    await e.start()
    try:
        big, big2, small, tiny = (fresh_address().lower() for _ in range(4))
        await credit_users(pool, "anvil", {big: 150 * UNIT, big2: 150 * UNIT, small: 2 * UNIT, tiny: 1})
        for key, to, amount in (("big", big, 150 * UNIT), ("big2", big2, 150 * UNIT), ("small", small, 2 * UNIT),
                                ("tiny", tiny, 1)):
            await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=amount, key=key)
        for _ in range(3):
            await e.worker.step()
        batches = await e.fetch("SELECT b.state, array_agg(i.recipient ORDER BY i.recipient) AS to "
                                "FROM payout_batches b JOIN payout_items i USING (batch_id) GROUP BY b.batch_id, b.state")
        got = {tuple(b["to"]): b["state"] for b in batches}
        # The queue's head (max_recipients rows) is all large: the small lane is still read and batched.
        assert got[tuple(sorted([big, big2]))] == "awaiting_approval"
        assert got[tuple(sorted([small, tiny]))] in ("ready", "signed")
        await e.index()
        assert balance(anvil, small) == 2 * UNIT and balance(anvil, tiny) == 1 and balance(anvil, big) == 0
    finally:
        await e.close()


async def test_dead_batch_gives_its_total_back_to_the_days_cap(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, dry_run=True, batch_expiry_seconds=120,
            assets=[{"name": "native", "daily_cap": 2 * UNIT}])
    await e.start()
    try:
        to = fresh_address().lower()
        await credit_users(pool, "anvil", {to: 2 * UNIT})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=2 * UNIT, key="cap")
        await e.worker.step()
        assert await e.val("SELECT total FROM payout_daily_totals") == 2 * UNIT
        anvil.rpc("evm_increaseTime", [600])
        anvil.rpc("evm_mine", [])
        await e.index()
        await e.worker.step()  # proven dead: requeued, cap given back, batched again within the same day's cap
        states = [r["state"] for r in await e.fetch("SELECT state FROM payout_batches ORDER BY created_at")]
        assert states == ["expired", "dry_run"]
        assert await e.val("SELECT total FROM payout_daily_totals") == 2 * UNIT  # not 4: the cap was never exceeded
    finally:
        await e.close()
