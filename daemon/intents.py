"""The intent scheduler as a daemon task: one leader across processes by
advisory lock (daemon/leader.py); a standby takes over when the leader dies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from config import Settings
from settlement.intents.fees import RpcFees
from settlement.intents.scheduler import Clock, IntentScheduler, utc_now

from .leader import chain_leadership

LEADER_NAME = "intents-scheduler"  # the advisory lock's name; no chain is called this


def intent_jobs(settings: Settings, pool: asyncpg.Pool, url: str,
                stop: asyncio.Event) -> dict[str, Callable[[], Awaitable[None]]]:
    if not settings.payouts.chains:
        return {}
    return {"intents": lambda: run_intents(settings, pool, url, stop)}


async def run_intents(settings: Settings, pool: asyncpg.Pool, url: str, stop: asyncio.Event, *,
                      clock: Clock = utc_now, interval: float = 1.0) -> None:
    async with chain_leadership(url, LEADER_NAME, stop) as leading:
        if not leading:
            return
        fees = RpcFees(settings)
        try:
            await IntentScheduler(pool, settings, clock=clock, fees=fees).run(stop, interval)
        finally:
            await fees.close()
