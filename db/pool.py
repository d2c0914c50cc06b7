"""asyncpg pool with server-side timeouts set on every connection."""

from __future__ import annotations

import asyncpg
import orjson

from config import ChainsettleError


class DatabaseError(ChainsettleError):
    """database error"""


def _jsonb_encode(value) -> bytes:
    # jsonb's binary wire format is a version byte (1) and the JSON text;
    # binary lets COPY write jsonb columns directly. A str is taken as JSON
    # text already encoded (the decoder's hot path produces those).
    text = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return b"\x01" + text


def _jsonb_decode(data: bytes):
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary",
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


async def side_connection(pool: asyncpg.Pool) -> asyncpg.Connection:
    """One connection outside `pool`, made with the pool's own arguments.

    For a LISTEN that lives as long as its owner: held from a small pool
    (the API's has 4) it would cost a quarter of the pool for good. asyncpg
    keeps the arguments on the pool (`_connect_args`, stable since 0.18);
    this is the one place that reads them.
    """
    return await asyncpg.connect(*pool._connect_args, **pool._connect_kwargs)
