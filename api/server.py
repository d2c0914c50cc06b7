"""Serving the app: inside `chainsettle run`, or alone (`chainsettle api`) for read replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from config import ChainsettleError, Settings
from config.logs import get_logger
from db import Queries, create_pool

from .app import make_app

log = get_logger("api")
Q = Queries(Path(__file__).with_name("queries.sql"))
# Open streams are ended on shutdown; this bounds any other slow request.
SHUTDOWN_TIMEOUT = 5.0


class SchemaMissing(ChainsettleError):
    """the database is not migrated for this version; run `chainsettle migrate` against the primary"""


@contextlib.asynccontextmanager
async def running_api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[web.AppRunner]:
    """The app listening on `api.listen` for the duration of the block."""
    app = make_app(settings, pool)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api.host, settings.api.port)
        try:
            await site.start()
        except OSError as exc:
            raise ChainsettleError(f"api.listen: cannot listen on {settings.api.listen}: {exc.strerror}") from None
        log.info("api.listening", addresses=[f"{a[0]}:{a[1]}" for a in runner.addresses],
                 admin_routes=settings.api.admin_token is not None)
        yield runner
    finally:
        await runner.cleanup()
        log.info("api.stopped")


async def serve_api(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; what `chainsettle run` starts next to the followers."""
    async with running_api(settings, pool):
        await stop.wait()


async def check_schema(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ok = await conn.fetchval(Q.schema_ready)
    if not ok:
        raise SchemaMissing()


async def open_read_pool(settings: Settings) -> asyncpg.Pool:
    """A pool for a read-only API process: no migrations (a replica cannot run them)."""
    db = settings.database
    url = db.url
    if url is None:
        from db.embedded import start_embedded

        url = start_embedded(settings.base_dir / db.embedded_dir)
    return await create_api_pool(settings, url)


async def create_api_pool(settings: Settings, url: str) -> asyncpg.Pool:
    """The API's own connections: a few, with a statement timeout much shorter
    than the daemon's, so client queries cannot hold what followers and
    payout workers need."""
    api, db = settings.api, settings.database
    return await create_pool(
        url, min_size=1, max_size=api.pool_max, statement_timeout_ms=api.statement_timeout_ms,
        idle_in_transaction_timeout_ms=min(db.idle_in_transaction_timeout_ms, 10 * api.statement_timeout_ms),
        application_name="chainsettle-api",
    )
