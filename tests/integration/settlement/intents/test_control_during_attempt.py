"""Pausing or cancelling an intent while an attempt of it is requesting its
payout: the control waits for the attempt and says which payout goes ahead,
instead of reporting a plain success (issue 26)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from settlement.intents import scheduler as scheduler_mod
from settlement.intents import store
from tests.support.batcher import fresh_address

from .support import Clock, credit_users, occurrences, scheduler, spec
from .test_evm import UNIT, UTC, env  # noqa: F401


@pytest.mark.parametrize("action,state", [("pause", "paused"), ("cancel", "cancelled")])
async def test_control_during_an_attempt_reports_the_payout_in_flight(env, monkeypatch, action, state):  # noqa: F811
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 10 * UNIT})
    clock = Clock(datetime(2028, 1, 1, tzinfo=UTC))
    intent = await store.create_intent(env.pool, env.settings, spec(to, amount=str(UNIT)), "test", now=clock())
    s = scheduler(env, clock)
    clock.set(datetime(2028, 1, 1, 9, 1, tzinfo=UTC))
    started, release = asyncio.Event(), asyncio.Event()
    real = scheduler_mod.request_payout

    async def held(*args, **kw):
        started.set()
        await release.wait()
        return await real(*args, **kw)

    monkeypatch.setattr(scheduler_mod, "request_payout", held)
    attempt = asyncio.create_task(s.tick())
    await started.wait()
    control = asyncio.create_task(store.set_intent_state(env.pool, intent["id"], action, "test", "stop"))
    release.set()
    await attempt
    got = await control
    (occ,) = await occurrences(env.pool, intent["id"])
    assert occ["state"] == "requested"
    assert got["state"] == state
    assert [p["occurrence_id"] for p in got["payouts_in_flight"]] == [occ["id"]]
    assert got["payouts_in_flight"][0]["payout_state"] in ("pending", "batched", "held")
    audit = await env.pool.fetchval("SELECT details FROM audit_log WHERE action LIKE 'intent.%' "
                                    "ORDER BY id DESC LIMIT 1")
    assert occ["id"] in str(audit)
