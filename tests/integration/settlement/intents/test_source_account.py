"""An intent pays from its source_account (issue 25): the source goes down by
exactly what was paid, the recipient's own account is untouched, with
payouts.require_balance on and off. Anvil and real Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from settlement.intents import store
from settlement.ledger.transfers import account_balances
from tests.support.batcher import balance, fresh_address

from .support import Clock, Env, credit_users, occurrences, pay_out, scheduler, spec

UNIT = 10**15


async def final_of(pool, account: str) -> int:
    async with pool.acquire() as conn:
        rows = await account_balances(conn, account)
    return next((r["final"] for r in rows if r["asset_id"] == "anvil:native"), 0)


@pytest.mark.parametrize("require_balance", [True, False])
async def test_an_intent_pays_from_its_source_exactly_what_it_paid(anvil, pool, tmp_path, require_balance):
    env = Env(anvil, pool, tmp_path, require_balance=require_balance)
    await env.start()
    try:
        depositor, to = fresh_address().lower(), fresh_address().lower()
        source, own = f"user:anvil:{depositor}", f"user:anvil:{to}"
        await credit_users(pool, "anvil", {depositor: 10 * UNIT, to: 4 * UNIT})
        clock = Clock(datetime(2028, 1, 1, tzinfo=timezone.utc))
        await store.create_intent(pool, env.settings, spec(
            to, cron=None, interval_seconds=60, amount=str(3 * UNIT), source_account=source,
            start="2028-01-01T00:01:00+00:00", end="2028-01-01T00:04:30+00:00"), "test", now=clock())
        s = scheduler(env, clock)
        for minute in range(1, 5):
            clock.set(datetime(2028, 1, 1, 0, minute, 5, tzinfo=timezone.utc))
            await s.tick()
            await pay_out(env)
            await s.tick()
        occs = await occurrences(pool)
        paid = [o for o in occs if o["state"] == "executed"]
        assert len(occs) == 4 and len(paid) == 3  # 10 units pay three times 3; the fourth waits
        assert balance(anvil, to) == 9 * UNIT
        assert await final_of(pool, source) == 10 * UNIT - 9 * UNIT
        assert await final_of(pool, own) == 4 * UNIT  # the recipient's own money is not what paid
        async with pool.acquire() as conn:
            froms = {r["from_account"] for r in await conn.fetch("SELECT from_account FROM payout_requests")}
        assert froms == {source}
        clock.set(clock() + timedelta(minutes=2))
        await s.tick()
        assert await final_of(pool, source) == 1 * UNIT
    finally:
        await env.close()
