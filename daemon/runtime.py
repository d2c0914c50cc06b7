"""Shared start-up: logging, the database URL (configured or embedded), the pool."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from config import Settings
from config.logs import configure_logging, get_logger
from db import Queries, connect, create_pool, migrate

log = get_logger("daemon")
ADMIN_Q = Queries(Path(__file__).with_name("admin.sql"))


def database_url(settings: Settings) -> str:
    if settings.database.url:
        return settings.database.url
    from db.embedded import start_embedded

    path = settings.base_dir / settings.database.embedded_dir
    url = start_embedded(path)
    log.info("db.embedded", data_dir=str(path))
    return url


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log.level, settings.log.format)


async def run_migrations(url: str) -> list[str]:
    conn = await connect(url)
    try:
        return [f"{m.version:04d}_{m.name}" for m in await migrate(conn)]
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_pool(settings: Settings, url: str | None = None, *, migrate_first: bool = True) -> AsyncIterator[asyncpg.Pool]:
    url = url or database_url(settings)
    if migrate_first:
        applied = await run_migrations(url)
        if applied:
            log.info("db.migrated", applied=applied)
    db = settings.database
    pool = await create_pool(
        url, min_size=db.pool_min, max_size=db.pool_max,
        statement_timeout_ms=db.statement_timeout_ms,
        idle_in_transaction_timeout_ms=db.idle_in_transaction_timeout_ms,
    )
    try:
        yield pool
    finally:
        await pool.close()
