"""Shared pieces of the intent tests: a controllable clock, the anvil payout
environment of the pipeline tests, and helpers to run the pipeline to final."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from settlement.intents.scheduler import IntentScheduler
from tests.integration.settlement.payouts.evm.test_pipeline import Env, credit_users  # noqa: F401


class Clock:
    """The scheduler's clock: a function returning aware datetimes, moved by the test."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def set(self, t: datetime) -> None:
        self.t = t

    def advance(self, **kw) -> None:
        self.t = self.t + timedelta(**kw)


def spec(to: str, **kw) -> dict:
    base = {"name": "rent", "chain": "anvil", "asset": "native", "to": to, "amount": str(10**15),
            "cron": "0 9 1 * *", "timezone": "UTC", "start": "2028-01-01T00:00:00+00:00"}
    base.update(kw)
    return base


async def pay_out(env: Env) -> None:
    """Cut, sign, send and see final whatever is pending: the pipeline's own steps."""
    for _ in range(3):
        await env.worker.step()
    await env.index()


async def occurrences(pool, intent_id: int | None = None) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM intent_occurrences WHERE ($1::bigint IS NULL OR intent_id = $1) ORDER BY scheduled_at, id",
            intent_id)
    return [dict(r) for r in rows]


async def evaluations(pool, occurrence_id: str) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM intent_evaluations WHERE occurrence_id = $1 ORDER BY attempt",
                                occurrence_id)
    return [dict(r) | {"inputs": _obj(r["inputs"])} for r in rows]


async def feed_events(pool) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT subject, payload FROM feed_outbox WHERE kind = 'intent' ORDER BY id")
    return [(r["subject"], _obj(r["payload"])["event"]) for r in rows]


def _obj(v):
    return json.loads(v) if isinstance(v, str) else v


def scheduler(env: Env, clock: Clock, **kw) -> IntentScheduler:
    return IntentScheduler(env.pool, env.settings, clock=clock, concurrency=2, **kw)
