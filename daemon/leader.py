"""One leader per chain across processes, by Postgres advisory lock.

The lock lives on a dedicated connection (pooled connections drop advisory
locks when they are released). When the process dies, Postgres drops the
connection and the lock, and a standby takes over at its next try.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator

import asyncpg

from config.logs import get_logger

log = get_logger("daemon.leader")
_NAMESPACE = 0x6373  # "cs": keeps our keys apart from other users of advisory locks


def lock_key(chain: str) -> int:
    return (_NAMESPACE << 32) | zlib.crc32(chain.encode())


@contextlib.asynccontextmanager
async def chain_leadership(url: str, chain: str, stop: asyncio.Event, retry_seconds: float = 2.0) -> AsyncIterator[bool]:
    """Yield True once this process leads `chain`, or False if `stop` came first."""
    conn = await asyncpg.connect(url)
    try:
        announced = False
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(chain)):
                log.info("leader.acquired", chain=chain)
                break
            if not announced:
                log.info("leader.standby", chain=chain)
                announced = True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), retry_seconds)
        else:
            yield False
            return
        yield True
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
