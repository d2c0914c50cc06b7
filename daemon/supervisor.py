"""`chainsettle run`: every chain's follower (and, as they land, the other
workers) as supervised tasks, stopped cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib

from config import ConfigError, Settings
from config.logs import get_logger
from settlement.distributions.loop import run_distributions
from settlement.ledger.holds import run_hold_expiry
from settlement.reconcile.runs import run_reconcile_loop

from .deliveries import run_delivery_relay
from .followers import follow_chain
from .intents import intent_jobs
from .payouts import payout_jobs
from .replay import run_replay_worker
from .runtime import database_url, open_pool

log = get_logger("daemon")
GRACE_SECONDS = 20.0


@contextlib.asynccontextmanager
async def _api(settings: Settings, url: str):
    """The API binds before any worker starts, so a taken port fails start-up at once.

    It has its own pool (api.pool_max, api.statement_timeout_ms): client
    queries never wait for, or hold, the followers' and payout workers' connections.
    """
    if not settings.api.enabled:
        yield None
        return
    from api.server import create_api_pool, running_api

    api_pool = await create_api_pool(settings, url)
    try:
        async with running_api(settings, api_pool) as runner:
            yield runner
    finally:
        await api_pool.close()


async def supervised(name: str, factory, stop: asyncio.Event, *, backoff: float = 1.0) -> None:
    """Run `factory()` until it returns; restart it with backoff when it crashes.

    One worker's bug must not silently stop the others or leave the process
    half alive: the crash is logged at once, with its traceback, and the
    worker comes back. A config error would only repeat, so it ends the task.
    """
    while not stop.is_set():
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except ConfigError as exc:
            log.error("daemon.task_config_error", task=name, error=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the supervision boundary: log, back off, restart
            log.error("daemon.task_crashed", task=name, error=f"{exc.__class__.__name__}: {exc}"[:500],
                      restart_in=round(backoff, 1), exc_info=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(60.0, backoff * 2)


async def run_daemon(settings: Settings, stop: asyncio.Event) -> None:
    url = database_url(settings)
    async with open_pool(settings, url) as pool, _api(settings, url):
        jobs = {f"follow-{cfg.name}": (lambda cfg=cfg: follow_chain(cfg, pool, settings, url, stop))
                for cfg in settings.chains}
        jobs.update(payout_jobs(settings, pool, stop, url))  # each chain led by one process
        jobs.update(intent_jobs(settings, pool, url, stop))  # scheduled payouts, one leader across processes
        jobs["reconcile"] = lambda: run_reconcile_loop(settings, pool, stop)
        # Holds past their timeout expire (every process sweeps; each hold resolves once).
        jobs["ledger-holds"] = lambda: run_hold_expiry(pool, stop)
        # Distributions settle from final data: paid payouts, claims, expiry, vouchers (each once).
        jobs["distributions"] = lambda: run_distributions(pool, settings, stop)
        # Admin replays (POST /v1/admin/replay) are recorded by the API and run here.
        jobs["replay"] = lambda: run_replay_worker(settings, pool, stop)
        if settings.delivery.enabled:  # webhooks and Redis streams (delivery/)
            jobs["deliveries"] = lambda: run_delivery_relay(settings, pool, url, stop)
        tasks = [asyncio.create_task(supervised(name, f, stop), name=name) for name, f in jobs.items()]
        log.info("daemon.started", chains=[c.name for c in settings.chains])
        await stop.wait()
        log.info("daemon.stopping")
        # Workers finish the write in progress and return; a write cut by the
        # grace deadline rolls back whole, so nothing is lost either way.
        _, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.info("daemon.stopped")
