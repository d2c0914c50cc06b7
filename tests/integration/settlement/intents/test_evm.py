"""Intents against anvil and real Postgres, with a controllable clock: a monthly
intent over 14 simulated months, each condition delaying with its own reason
and executing once true, a never-true one missed at its deadline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from settlement.intents import store
from settlement.intents.fees import RpcFees
from settlement.ledger.pauses import pause_asset, resolve_pause
from settlement.payouts import requests as preq
from tests.support.batcher import balance, fresh_address

from .support import Clock, Env, credit_users, evaluations, feed_events, occurrences, pay_out, scheduler, spec

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
UNIT = 10**15


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path)
    await e.start()
    yield e
    await e.close()


async def test_monthly_on_the_31st_over_14_months_pays_exactly_the_expected(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 20 * UNIT})
    clock = Clock(datetime(2028, 1, 1, tzinfo=UTC))
    intent = await store.create_intent(env.pool, env.settings, spec(
        to, cron="0 9 31 * *", timezone="America/New_York", end_of_month="clamp",
        end="2029-03-01T00:00:00-05:00"), "test", now=clock())
    s = scheduler(env, clock)
    expected = [datetime(2028, m, d, 9, tzinfo=NY) for m, d in
                [(1, 31), (2, 29), (3, 31), (4, 30), (5, 31), (6, 30), (7, 31), (8, 31), (9, 30), (10, 31),
                 (11, 30), (12, 31)]] + [datetime(2029, 1, 31, 9, tzinfo=NY), datetime(2029, 2, 28, 9, tzinfo=NY)]
    for i, t in enumerate(expected):
        clock.set(t - timedelta(minutes=1))  # just before: nothing is due
        await s.tick()
        assert len(await occurrences(env.pool)) == i
        clock.set(t + timedelta(seconds=30))
        out = await s.tick()
        assert out.get("requested") == 1, out
        await s.tick()  # twice in a row changes nothing
        await pay_out(env)
        await s.tick()
        occ = (await occurrences(env.pool))[-1]
        assert occ["state"] == "executed" and occ["payout_state"] == "paid"
        clock.set(t + timedelta(days=10))
        assert (await s.tick()).get("materialised") == 0
    clock.set(datetime(2029, 6, 1, tzinfo=UTC))  # after the end: nothing more
    await s.tick()
    occs = await occurrences(env.pool, intent["id"])
    assert [o["scheduled_at"] for o in occs] == [t.astimezone(UTC) for t in expected]
    assert [o["state"] for o in occs] == ["executed"] * 14
    # 09:00 New York every time: 14:00 UTC in winter, 13:00 UTC in summer (DST), the leap day included.
    assert {o["scheduled_at"].astimezone(NY).hour for o in occs} == {9}
    assert {o["scheduled_at"].hour for o in occs} == {13, 14}
    assert datetime(2028, 2, 29, 9, tzinfo=NY) in [o["scheduled_at"] for o in occs]
    assert balance(env.anvil, to) == 14 * UNIT
    keys = [r["idempotency_key"] for r in await env.fetch("SELECT idempotency_key FROM payout_requests ORDER BY id")]
    assert keys == [o["id"] for o in occs]
    assert [e for _, e in await feed_events(env.pool)].count("executed") == 14
    async with env.pool.acquire() as conn:
        listed = await store.occurrences(conn, intent["id"])
    assert len(listed) == 14 and listed[0]["evaluations"][0]["reason"] == "ok"


async def _delayed_then_executed(env, s, clock, oid: str, reason: str, make_true) -> None:
    out = await s.tick()
    assert out.get("delayed") == 1, out
    occ = next(o for o in await occurrences(env.pool) if o["id"] == oid)
    assert (occ["state"], occ["reason"]) == ("delayed", reason)
    first = occ["next_attempt_at"]
    assert first > clock()
    # Still false at the next attempt: a longer wait (exponential backoff).
    clock.set(first + timedelta(seconds=1))
    await s.tick()
    occ = next(o for o in await occurrences(env.pool) if o["id"] == oid)
    assert occ["reason"] == reason and occ["next_attempt_at"] - clock() > first - (clock() - timedelta(seconds=1)) \
        - timedelta(seconds=5)
    await make_true()
    clock.set(occ["next_attempt_at"] + timedelta(seconds=1))
    out = await s.tick()
    assert out.get("requested") == 1, (reason, out)
    await pay_out(env)
    await s.tick()
    occ = next(o for o in await occurrences(env.pool) if o["id"] == oid)
    assert occ["state"] == "executed"
    evs = await evaluations(env.pool, oid)
    assert [e["reason"] for e in evs] == [reason, reason, "ok"]
    assert all(e["inputs"]["now"] for e in evs)


async def test_each_condition_delays_with_its_reason_then_executes(env, monkeypatch):
    to = fresh_address().lower()
    clock = Clock(datetime(2028, 1, 1, tzinfo=UTC))
    fees = RpcFees(env.settings)
    s = scheduler(env, clock, fees=fees)
    gas_price = await fees("anvil")
    await credit_users(env.pool, "anvil", {to: 5 * UNIT})  # one unit per case below, one left

    async def case(reason: str, make_false, make_true, **kw):
        await make_false()
        start = (clock() + timedelta(days=1)).replace(hour=1, minute=0, second=0, microsecond=0)
        intent = await store.create_intent(env.pool, env.settings, spec(
            to, name=reason, cron=None, interval_seconds=10 * 86400, start=start.isoformat(),
            end=(start + timedelta(days=1)).isoformat(), **kw), "test", now=clock())
        clock.set(start + timedelta(seconds=5))
        oid = (await store.preview(env.pool, env.settings, intent["id"], 1, now=clock(), fees=s.fees))[0]
        assert oid["would_pass"] is False and oid["reason"] == reason
        oid = f"intent-{intent['id']}-{start:%Y%m%dT%H%M%SZ}"
        await _delayed_then_executed(env, s, clock, oid, reason, make_true)
        clock.set(clock() + timedelta(days=2))
        return intent

    async def noop():
        pass

    async def kill():
        await preq.set_kill_switch(env.pool, "anvil", True, "drill", "test")

    async def unkill():
        await preq.set_kill_switch(env.pool, "anvil", False, "drill over", "test")

    await case("kill_switch_on", kill, unkill)

    async def pause():
        async with env.pool.acquire() as conn:
            await pause_asset(conn, "anvil:native", "mismatch", "test")

    async def unpause():
        await resolve_pause(env.pool, "anvil:native", "test", "explained")

    await case("reconciliation_paused", pause, unpause)

    # Time window 02:20-23:00 in Zurich; due at 01:00 UTC = 02:00 there. Retries after 600-750 s
    # (02:10-02:12, still outside), then 1200-1500 s later: inside the window.
    await case("outside_window", noop, noop, window_start="02:20", window_end="23:00",
               timezone="Europe/Zurich", retry_base_seconds=600)

    # Gas cap below the chain's current fee (read from anvil), until the fee falls.
    assert gas_price > 1
    fee_fell = {}

    async def fee_falls():
        fee_fell["yes"] = True

    async def falling_fee(chain):
        return 1 if fee_fell else await fees(chain)

    s.fees = falling_fee
    await case("fee_above_cap", noop, fee_falls, gas_cap=max(1, gas_price // 2))
    s.fees = fees

    # Balance: 1 unit left, the amount plus buffer is 2, until more is credited.
    async def credit_more():
        await credit_users(env.pool, "anvil", {to: 2 * UNIT})

    await case("insufficient_balance", noop, credit_more, amount=str(UNIT), buffer=str(UNIT))

    # Period cap: 1 unit per day; this intent's own first payout of the day uses it up.
    base = (clock() + timedelta(days=1)).replace(hour=1, minute=0, second=0, microsecond=0)
    capped = await store.create_intent(env.pool, env.settings, spec(
        to, name="capped", cron=None, interval_seconds=3600, start=base.isoformat(), grace_seconds=7200,
        cap_per_period=str(UNIT), cap_period="day", timezone="UTC", end=(base + timedelta(hours=1)).isoformat(),
        deadline_seconds=2 * 86400), "test", now=clock())
    clock.set(base + timedelta(hours=1, seconds=5))
    out = await s.tick()
    assert out.get("requested") == 1 and out.get("delayed") == 1, out
    occs = await occurrences(env.pool, capped["id"])
    assert [(o["state"], o["reason"]) for o in occs] == [("requested", None), ("delayed", "period_cap_reached")]
    await pay_out(env)
    # The next day is another period: the delayed one goes through then, once.
    clock.set(base.replace(hour=0) + timedelta(days=1, seconds=1))
    out = await s.tick()
    assert out.get("requested") == 1, out
    await pay_out(env)
    await s.tick()
    occs = await occurrences(env.pool, capped["id"])
    assert [o["state"] for o in occs] == ["executed", "executed"]
    assert [e["reason"] for e in await evaluations(env.pool, occs[1]["id"])][-1] == "ok"
    assert {e["reason"] for e in await evaluations(env.pool, occs[1]["id"])} == {"period_cap_reached", "ok"}
    await fees.close()


async def test_never_true_ends_missed_at_its_deadline_with_an_event(env):
    to = fresh_address().lower()  # owed nothing: the balance condition never holds
    clock = Clock(datetime(2028, 1, 1, tzinfo=UTC))
    intent = await store.create_intent(env.pool, env.settings, spec(
        to, cron="0 9 * * *", deadline_seconds=6 * 3600, retry_base_seconds=60, retry_max_seconds=1800,
        low_buffer_below="1"), "test", now=clock())
    s = scheduler(env, clock)
    clock.set(datetime(2028, 1, 1, 9, 0, 1, tzinfo=UTC))
    waits = []
    for _ in range(200):
        await s.tick()
        occ = (await occurrences(env.pool, intent["id"]))[0]
        if occ["state"] != "delayed":
            break
        waits.append(occ["next_attempt_at"] - clock())
        clock.set(occ["next_attempt_at"])
    assert occ["state"] == "missed" and occ["reason"] == "insufficient_balance"
    assert clock() == occ["deadline"] == datetime(2028, 1, 1, 15, tzinfo=UTC)
    assert waits[1] > waits[0] and max(waits) <= timedelta(seconds=1800 * 1.25)
    assert len(set(waits)) == len(waits)  # jittered
    events = await feed_events(env.pool)
    assert (occ["id"], "missed") in events and events.count((occ["id"], "delayed")) == len(waits)
    assert await env.val("SELECT count(*) FROM payout_requests") == 0
    evs = await evaluations(env.pool, occ["id"])
    assert len(evs) == occ["attempts"] and evs[0]["inputs"]["balance"] == "0"


async def test_balance_above_floor_low_buffer_and_edit_applies_to_future_only(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 10 * UNIT})
    clock = Clock(datetime(2028, 1, 1, tzinfo=UTC))
    intent = await store.create_intent(env.pool, env.settings, spec(
        to, amount=None, amount_mode="above_floor", floor=str(4 * UNIT), low_buffer_below=str(5 * UNIT)),
        "test", now=clock())
    s = scheduler(env, clock)
    clock.set(datetime(2028, 1, 1, 9, 1, tzinfo=UTC))
    await s.tick()
    await pay_out(env)
    await s.tick()
    first = (await occurrences(env.pool, intent["id"]))[0]
    assert (first["state"], int(first["amount"])) == ("executed", 6 * UNIT)
    assert (first["id"], "low_buffer") in await feed_events(env.pool)
    # Edit: fixed 1 unit from now on; the executed occurrence keeps version 1.
    edited = await store.edit_intent(env.pool, env.settings, intent["id"], {"amount_mode": "fixed",
                                     "amount": str(UNIT), "floor": None}, "test", reason="fixed now", now=clock())
    assert edited["version"] == 2
    clock.set(datetime(2028, 2, 1, 9, 1, tzinfo=UTC))
    await s.tick()
    await pay_out(env)
    await s.tick()
    occs = await occurrences(env.pool, intent["id"])
    assert [(o["version"], int(o["amount"]), o["state"]) for o in occs] == [(1, 6 * UNIT, "executed"),
                                                                               (2, UNIT, "executed")]
    assert balance(env.anvil, to) == 7 * UNIT
    # Pause: nothing is made while paused; resume starts from now (no make-up of paused runs).
    await store.set_intent_state(env.pool, intent["id"], "pause", "test", "holiday")
    clock.set(datetime(2028, 3, 1, 9, 1, tzinfo=UTC))
    await s.tick()
    assert len(await occurrences(env.pool, intent["id"])) == 2
    clock.set(datetime(2028, 3, 15, tzinfo=UTC))
    await store.set_intent_state(env.pool, intent["id"], "resume", "test", now=clock())
    await s.tick()
    assert len(await occurrences(env.pool, intent["id"])) == 2
    got = await store.set_intent_state(env.pool, intent["id"], "cancel", "test", "done")
    assert got["state"] == "cancelled" and got["next_at"] is None




async def test_catch_up_above_the_approval_amount_waits_for_an_approval(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 10 * UNIT})
    clock = Clock(datetime(2028, 1, 1, tzinfo=UTC))
    intent = await store.create_intent(env.pool, env.settings, spec(
        to, cron=None, interval_seconds=3600, start="2028-01-01T01:00:00+00:00", end="2028-01-01T03:00:00+00:00",
        missed_run_policy="all", catch_up_approval_above=str(UNIT // 2)), "test", now=clock())
    s = scheduler(env, clock)
    clock.set(datetime(2028, 1, 1, 5, tzinfo=UTC))  # the scheduler was down for all three
    await s.tick()
    occs = await occurrences(env.pool, intent["id"])
    assert [(o["state"], o["catch_up"]) for o in occs] == [("awaiting_approval", True)] * 3
    assert [e for _, e in await feed_events(env.pool)] == ["awaiting_approval"] * 3
    await store.approve_occurrence(env.pool, occs[2]["id"], "alice", now=clock())
    with pytest.raises(store.IntentStateConflict):
        await store.approve_occurrence(env.pool, occs[2]["id"], "alice", now=clock())
    await s.tick()
    await pay_out(env)
    await s.tick()
    states = [(o["state"], o["approved_by"]) for o in await occurrences(env.pool, intent["id"])]
    assert states == [("awaiting_approval", None), ("awaiting_approval", None), ("executed", "alice")]
    assert balance(env.anvil, to) == UNIT
