"""The distributions task: settle what final data decided, in every process.

Each pass: push distributions follow their payouts (`push.sync`); pull ones
settle final claims and expire after their deadline (`claims.settle`, under
the distribution's row lock); issued vouchers resolve (`vouchers.settle`,
SKIP LOCKED). Every change is a conditional UPDATE in the transaction of its
booking, so two processes running this at once change each thing once.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from config import Settings
from config.logs import get_logger
from settlement.distributions import claims, push, vouchers
from settlement.distributions.snapshots import Q

log = get_logger("settlement.distributions")


async def settle_once(pool: asyncpg.Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.open_distributions)
        chains = [r["chain"] for r in await conn.fetch(Q.voucher_chains)]
    for r in rows:
        if r["mode"] == "push":
            await push.sync(pool, r["id"])
        else:
            await claims.settle(pool, settings, r["id"])
    for chain in chains:
        await vouchers.settle(pool, settings, chain)


async def run_distributions(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event,
                            interval: float = 2.0) -> None:
    while not stop.is_set():
        await settle_once(pool, settings)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
