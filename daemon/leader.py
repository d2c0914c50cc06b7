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


async def acquire(conn: asyncpg.Connection, key: int, stop: asyncio.Event, *, retry_seconds: float,
                  event: str, chain: str) -> bool:
    """Try the session lock `key` until it is ours (True) or `stop` is set (False)."""
    announced = False
    while not stop.is_set():
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            log.info(f"{event}_acquired", chain=chain)
            return True
        if not announced:
            log.info(f"{event}_standby", chain=chain)
            announced = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_seconds)
    return False


@contextlib.asynccontextmanager
async def chain_leadership(url: str, chain: str, stop: asyncio.Event, retry_seconds: float = 2.0) -> AsyncIterator[bool]:
    """Yield True once this process leads `chain`, or False if `stop` came first."""
    conn = await asyncpg.connect(url)
    try:
        yield await acquire(conn, lock_key(chain), stop, retry_seconds=retry_seconds, event="leader", chain=chain)
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


_PAYOUT_NAMESPACE = 0x6370  # "cp": the payout workers' locks, apart from the followers'


def payout_lock_key(chain: str) -> int:
    return (_PAYOUT_NAMESPACE << 32) | zlib.crc32(chain.encode())


@contextlib.asynccontextmanager
async def payout_leadership(url: str, chain: str, stop: asyncio.Event, *, retry_seconds: float = 2.0,
                            check_seconds: float = 1.0) -> AsyncIterator[asyncio.Event | None]:
    """Lead `chain`'s payout workers; yield an Event set the moment the lock is lost, or None if `stop` came first.

    The lock is a session advisory lock on a dedicated connection: it is held
    exactly as long as that connection lives. A watcher pings it every
    `check_seconds`; a failed ping (the connection was killed, the server
    restarted, a network cut) means another process may lead already, so the
    Event is set and the caller stops its worker before the next loop.
    """
    conn = await asyncpg.connect(url)
    watcher: asyncio.Task | None = None
    try:
        if not await acquire(conn, payout_lock_key(chain), stop, retry_seconds=retry_seconds,
                             event="leader.payouts", chain=chain):
            yield None
            return
        lost = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), max(check_seconds, 1.0) * 5)
                except (asyncpg.PostgresError, OSError, asyncio.TimeoutError,
                        asyncpg.InterfaceError) as exc:
                    log.error("leader.payouts_lost", chain=chain, error=f"{exc.__class__.__name__}: {exc}"[:200])
                    lost.set()
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_seconds)

        watcher = asyncio.create_task(watch(), name=f"payout-lock-{chain}")
        yield lost
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        with contextlib.suppress(Exception):
            await conn.close()
