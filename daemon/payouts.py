"""Payout workers, one per chain of [payouts]: the EVM batch worker or the
XRPL hot-wallet worker, each run as a supervised task of its own, and only
in the process that holds that chain's payout lock (daemon/leader.py).

The others stand by; when the leader dies or loses its lock connection, it
stops its worker within one loop and a standby takes over. Every money
decision the workers make is also safe with two of them running at once
(row and advisory locks, SKIP LOCKED, unique keys): leadership keeps the
work in one place, it is not what makes it correct.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg

from config import Settings
from config.logs import get_logger
from config.section_payouts import PayoutChainConfig, XrplPayoutChainConfig

from .leader import payout_leadership

log = get_logger("daemon.payouts")


def payout_jobs(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event,
                url: str | None = None) -> dict[str, Callable[[], Awaitable[None]]]:
    jobs: dict[str, Callable[[], Awaitable[None]]] = {
        f"payouts-{pc.chain}": (lambda pc=pc: run_payout_chain(settings, pool, pc, stop, url))
        for pc in settings.payouts.chains}
    jobs["payout-gauges"] = lambda: run_payout_gauges(settings, pool, stop)
    return jobs


async def refresh_payout_gauges(settings: Settings, pool: asyncpg.Pool) -> None:
    """Payout and pause gauges from the database, in every process (leader or
    standby): each state of each payout chain is set, 0 when empty, from
    start-up on, so alert rules fire while a condition holds (also right
    after a restart) and resolve once it clears."""
    from settlement.distributions.owner_send import refresh_owner_gauges
    from settlement.payouts import metrics as pm
    from settlement.payouts.evm.sender import stuck_counts
    from settlement.payouts.requests import kill_switches, refresh_gauges
    from settlement.reconcile.runs import refresh_run_metrics

    chains = [pc.chain for pc in settings.payouts.chains]
    async with pool.acquire() as conn:
        await refresh_gauges(conn, chains)
        stuck = await stuck_counts(conn)
        controls = await kill_switches(conn)
        await refresh_owner_gauges(conn, [pc.chain for pc in settings.payouts.chains if pc.kind != "xrpl"])
    for pc in settings.payouts.chains:
        killed = settings.payouts.kill_switch or pc.kill_switch or controls.get("*") or controls.get(pc.chain)
        pm.KILLED.labels(pc.chain).set(1 if killed else 0)
        pm.STUCK_TXS.labels(pc.chain).set(stuck.get(pc.chain, 0))
    await refresh_run_metrics(pool)


async def run_payout_gauges(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    interval = max(1.0, min(settings.payouts.poll_interval, 5.0))
    while not stop.is_set():
        try:
            await refresh_payout_gauges(settings, pool)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("payouts.gauges_failed", error=f"{exc.__class__.__name__}: {exc}"[:200])
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def run_payout_chain(settings: Settings, pool: asyncpg.Pool, pc: PayoutChainConfig | XrplPayoutChainConfig,
                           stop: asyncio.Event, url: str | None) -> None:
    """Lead the chain's payouts, work while leading, stand by again when the lock is lost."""
    if url is None:  # no leadership asked for (a single embedded worker)
        await run_payout_worker(settings, pool, pc, stop)
        return
    check = max(0.2, min(settings.payouts.poll_interval, 2.0))
    while not stop.is_set():
        async with payout_leadership(url, pc.chain, stop, retry_seconds=check, check_seconds=check) as lost:
            if lost is None:
                return
            local = asyncio.Event()

            async def relay() -> None:
                waits = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
                local.set()

            relay_task = asyncio.create_task(relay())
            try:
                await run_payout_worker(settings, pool, pc, local)
            finally:
                relay_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay_task
            if lost.is_set() and not stop.is_set():
                log.warning("payouts.leadership_lost", chain=pc.chain)


async def run_payout_worker(settings: Settings, pool: asyncpg.Pool, pc: PayoutChainConfig | XrplPayoutChainConfig,
                            stop: asyncio.Event) -> None:
    if pc.kind == "xrpl":
        from settlement.payouts.xrpl.worker import XrplPayoutWorker

        worker = XrplPayoutWorker(settings, pool, pc)
    else:
        from settlement.distributions.owner_send import OwnerCalls
        from settlement.payouts.evm.worker import EvmPayoutWorker

        worker = EvmPayoutWorker(settings, pool, pc)
        worker.after_track.append(OwnerCalls(pool, worker.sender).step)  # the ClaimDistributor owner's calls
    try:
        await worker.run(stop)
    finally:
        await worker.close()
