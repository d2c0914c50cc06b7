"""The filter indexes of `events`, set aside while a long backfill runs and rebuilt exactly after.

Each row a backfill COPYs updates every index of `events`; the three that
only serve filtered `/v1/events` pages (0009: chain, chain + address,
chain + event in commit order) cost about as much as the rest of the write
together, and one sorted build at the end costs far less than millions of
random inserts. What stays: the primary key and natural key (idempotency
needs them) and events_feed (tx, id), which the SSE feed, the delivery
relay and the late-insert check read.

Several backfills may run at once (chains, processes): each holds a shared
advisory lock while it runs, and the rebuild takes the exclusive one, so
only whoever finishes last rebuilds, and never under a running backfill.
The definitions are recorded (events_deferred_indexes) in the transaction
that drops the indexes, and each rebuild deletes its row in the transaction
that builds it: a crash at any point leaves either the index or its row,
and the next follower start rebuilds what a row names. Meanwhile filtered
pages are served by events_feed and a filter: slower, still exact.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config.logs import get_logger
from db import Queries
from db.pool import side_connection
from indexer import metrics as m

Q = Queries(Path(__file__).with_name("bulk.sql"))
log = get_logger("indexer.bulk")
DEFERRABLE = ("events_chain_commit", "events_chain_address_commit", "events_chain_event_commit")
LOCK_KEY = (0x6369 << 32) | 1  # "ci": apart from the leader and payout locks (daemon/leader.py)


def worth_deferring(remaining_events: float, stored_events: int, threshold: int) -> bool:
    """Whether one rebuild at the end beats updating the indexes row by row.

    A rebuild reads the whole table, so it pays only when the backfill adds
    at least as many rows as are stored already, and enough to matter.
    """
    return threshold > 0 and remaining_events >= threshold and remaining_events >= stored_events


class BulkLoad:
    """One backfill's hold on the deferral: `enter` sets the indexes aside, `leave` rebuilds if last."""

    def __init__(self, pool: asyncpg.Pool, chain: str) -> None:
        self.pool = pool
        self.chain = chain
        self.conn: asyncpg.Connection | None = None

    @property
    def active(self) -> bool:
        return self.conn is not None

    async def stored_estimate(self) -> int:
        return int(await self.pool.fetchval(Q.events_estimate))

    async def enter(self) -> list[str]:
        """Hold the shared lock and drop the filter indexes still present; return those dropped."""
        if self.conn is not None:
            return []
        conn = await side_connection(self.pool)
        try:
            await conn.execute(Q.lock_shared, LOCK_KEY)
            dropped = []
            async with conn.transaction():
                await conn.execute(Q.record_deferred, list(DEFERRABLE), self.chain)
                for name in DEFERRABLE:
                    if await conn.fetchval(Q.index_exists, name):
                        await conn.execute(f'DROP INDEX "{name}"')
                        dropped.append(name)
        except BaseException:
            await conn.close()
            raise
        self.conn = conn
        m.EVENTS_INDEXES_DEFERRED.set(len(DEFERRABLE))
        log.info("index.bulk_started", chain=self.chain, deferred=dropped)
        return dropped

    async def leave(self, rebuild: bool = True) -> list[str]:
        """Release the hold; rebuild what is set aside when no other backfill runs (and `rebuild`)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return []
        try:
            await conn.execute(Q.unlock_shared, LOCK_KEY)
            return await rebuild_deferred(conn) if rebuild else []
        finally:
            await conn.close()


async def rebuild_deferred(conn: asyncpg.Connection) -> list[str]:
    """Build every index a row names, unless a backfill still holds the deferral; return those built.

    A plain CREATE INDEX: one pass (a concurrent build takes two and leaves
    an invalid index behind when interrupted); it holds off writers of
    `events`, never readers, for the build.
    """
    if not await conn.fetchval(Q.try_lock, LOCK_KEY):
        m.EVENTS_INDEXES_DEFERRED.set(len(await conn.fetch(Q.deferred)))
        return []
    built = []
    try:
        await conn.execute("SET statement_timeout = 0")
        for row in await conn.fetch(Q.deferred):
            async with conn.transaction():
                if not await conn.fetchval(Q.index_exists, row["name"]):
                    await conn.execute(row["definition"])
                    built.append(row["name"])
                await conn.execute(Q.forget_deferred, row["name"])
        left = len(await conn.fetch(Q.deferred))
        m.EVENTS_INDEXES_DEFERRED.set(left)
        if built:
            log.info("index.bulk_rebuilt", rebuilt=built)
    finally:
        await conn.execute("RESET statement_timeout")
        await conn.execute(Q.unlock, LOCK_KEY)
    return built


async def rebuild_if_deferred(pool: asyncpg.Pool) -> list[str]:
    """At start-up: finish what a backfill that died left set aside."""
    if not await pool.fetch(Q.deferred):
        m.EVENTS_INDEXES_DEFERRED.set(0)
        return []
    conn = await side_connection(pool)
    try:
        return await rebuild_deferred(conn)
    finally:
        await conn.close()
