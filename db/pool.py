"""asyncpg pool with server-side timeouts set on every connection."""

from __future__ import annotations

import asyncpg
import orjson

from config import ChainsettleError


class DatabaseError(ChainsettleError):
    """database error"""


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb values cross the wire as text that orjson reads and writes.
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: v if isinstance(v, str) else orjson.dumps(v).decode(),
        decoder=orjson.loads, schema="pg_catalog", format="text",
    )
    await conn.set_type_codec(
        "json", encoder=lambda v: v if isinstance(v, str) else orjson.dumps(v).decode(),
        decoder=orjson.loads, schema="pg_catalog", format="text",
    )


async def create_pool(
    url: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    statement_timeout_ms: int = 60_000,
    idle_in_transaction_timeout_ms: int = 60_000,
    application_name: str = "chainsettle",
) -> asyncpg.Pool:
    settings = {
        "statement_timeout": str(statement_timeout_ms),
        "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
        "application_name": application_name,
    }
    try:
        return await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, server_settings=settings, init=_init_connection
        )
    except (OSError, asyncpg.PostgresError) as exc:
        # Never echo the URL: it may carry a password.
        raise DatabaseError(f"cannot connect to the database: {exc.__class__.__name__}: {exc}") from None


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
