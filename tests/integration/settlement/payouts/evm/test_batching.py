"""How one worker step cuts the queue into batches: full batches while the
queue holds more, and a request that arrives while the step is batching waits
for the next step instead of going out in a batch of its own."""

from __future__ import annotations

from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_pipeline import Env, credit_users
from tests.support.batcher import fresh_address

UNIT = 10**15


async def test_a_step_cuts_full_batches_and_leaves_late_arrivals_to_the_next(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, max_recipients=2)
    await e.start()
    try:
        users = [fresh_address().lower() for _ in range(7)]
        await credit_users(pool, "anvil", {u: UNIT for u in users})
        for u in users[:5]:
            await request_payout(pool, e.settings, chain="anvil", asset="native", to=u, amount=UNIT, key=f"k:{u}")
        # Five queued, two per batch: 2 + 2 + 1 in one step.
        assert await e.worker.make_batches() == 3
        assert sorted(r["item_count"] for r in await e.fetch("SELECT item_count FROM payout_batches")) == [1, 2, 2]

        # One queued, one more arriving while the step cuts the first batch.
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=users[5], amount=UNIT,
                             key=f"k:{users[5]}")
        cut = e.worker._make_batch

        async def arrives_meanwhile(*args):
            out = await cut(*args)
            if not await e.val("SELECT count(*) FROM payout_requests WHERE recipient = $1", users[6]):
                await request_payout(pool, e.settings, chain="anvil", asset="native", to=users[6], amount=UNIT,
                                     key=f"k:{users[6]}")
            return out

        e.worker._make_batch = arrives_meanwhile
        assert await e.worker.make_batches() == 1
        assert await e.val("SELECT state FROM payout_requests WHERE recipient = $1", users[6]) == "pending"
        assert await e.worker.make_batches() == 1  # the next step takes it
        assert await e.val("SELECT state FROM payout_requests WHERE recipient = $1", users[6]) == "batched"
        assert await e.val("SELECT count(*) FROM payout_batches") == 5
    finally:
        await e.close()
