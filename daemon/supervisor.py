"""`chainsettle run`: every chain's follower (and, as they land, the other
workers) as supervised tasks, stopped cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib

from config import Settings
from config.logs import get_logger

from settlement.reconcile import run_reconcile_loop

from .followers import follow_chain
from .runtime import database_url, open_pool

log = get_logger("daemon")
GRACE_SECONDS = 20.0


@contextlib.asynccontextmanager
async def _api(settings: Settings, pool):
    """The API binds before any worker starts, so a taken port fails start-up at once."""
    if not settings.api.enabled:
        yield None
        return
    from api.server import running_api

    async with running_api(settings, pool) as runner:
        yield runner


async def run_daemon(settings: Settings, stop: asyncio.Event) -> None:
    url = database_url(settings)
    async with open_pool(settings, url) as pool, _api(settings, pool):
        tasks = [
            asyncio.create_task(follow_chain(cfg, pool, settings, url, stop), name=f"follow-{cfg.name}")
            for cfg in settings.chains
        ]
        if settings.payouts.chains:
            from settlement.payout_worker import run_payout_workers

            tasks.append(asyncio.create_task(run_payout_workers(settings, pool, stop), name="payouts"))
        tasks.append(asyncio.create_task(run_reconcile_loop(settings, pool, stop), name="reconcile"))
        log.info("daemon.started", chains=[c.name for c in settings.chains])
        await stop.wait()
        log.info("daemon.stopping")
        # Followers finish the write in progress and return; a write cut by
        # the grace deadline rolls back whole, so nothing is lost either way.
        done, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            with contextlib.suppress(asyncio.CancelledError):
                exc = t.exception()
                if exc is not None:
                    log.error("daemon.task_failed", task=t.get_name(), error=f"{exc.__class__.__name__}: {exc}")
        log.info("daemon.stopped")
