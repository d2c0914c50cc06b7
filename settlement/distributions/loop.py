"""The distributions task: settle what final data decided, in every process.

Each pass: push distributions follow their payouts (`push.sync`); pull ones
settle final claims and expire after their deadline (`claims.settle`, under
the distribution's row lock); issued vouchers resolve (`vouchers.settle`,
SKIP LOCKED). Every change is a conditional UPDATE in the transaction of its
booking, so two processes running this at once change each thing once.

One distribution that cannot settle (a bug, a hand-edited row) does not
hold the others up: its error is logged and counted
(`chainsettle_distribution_settle_errors_total`; the gauge
`chainsettle_distributions_failing` and alert
ChainsettleDistributionSettleFailing while it lasts) and the pass goes on; a lost
database connection ends the pass (the supervisor backs off and restarts).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from prometheus_client import Counter, Gauge

from config import Settings
from config.logs import get_logger
from settlement.distributions import claims, push, vouchers
from settlement.distributions.snapshots import Q

log = get_logger("settlement.distributions")
SETTLE_ERRORS = Counter("chainsettle_distribution_settle_errors_total",
                        "Distributions (or a chain's vouchers) a settling pass could not settle", ["kind"])
FAILING = Gauge("chainsettle_distributions_failing",
                "Distributions (or chains' vouchers) the last settling pass of this process could not settle")
_TRANSIENT = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)


async def _isolated(kind: str, subject: str, work) -> bool:
    """Run one subject's settling; False (logged, counted) when it failed."""
    try:
        await work
        return True
    except _TRANSIENT:
        raise
    except Exception as exc:  # noqa: BLE001 - one subject's failure must not stop the others settling
        SETTLE_ERRORS.labels(kind).inc()
        log.error("distribution.settle_failed", kind=kind, subject=subject,
                  error=f"{exc.__class__.__name__}: {exc}"[:500], exc_info=True)
        return False


async def settle_once(pool: asyncpg.Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.open_distributions)
        chains = [r["chain"] for r in await conn.fetch(Q.voucher_chains)]
    failed = 0
    for r in rows:
        if r["mode"] == "push":
            failed += not await _isolated("push", r["id"], push.sync(pool, r["id"]))
        else:
            failed += not await _isolated("pull", r["id"], claims.settle(pool, settings, r["id"]))
    for chain in chains:
        failed += not await _isolated("vouchers", chain, vouchers.settle(pool, settings, chain))
    FAILING.set(failed)


async def run_distributions(pool: asyncpg.Pool, settings: Settings, stop: asyncio.Event,
                            interval: float = 2.0) -> None:
    while not stop.is_set():
        await settle_once(pool, settings)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
