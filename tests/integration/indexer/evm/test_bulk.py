"""A long backfill sets the filter indexes of `events` aside and rebuilds them exactly (indexer/bulk.py)."""

from __future__ import annotations

from indexer.bulk import DEFERRABLE, BulkLoad, rebuild_if_deferred
from indexer.evm.follower import EvmFollower
from tests.integration.indexer.evm.test_backfill import filled_chain, independent_rows, stored_rows  # noqa: F401
from tests.support.config import evm_chain, make_settings


async def definitions(pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'")
    return {r["indexname"]: r["indexdef"] for r in rows}


class IndexProbe:
    """A store hook: which filter indexes exist inside each range's transaction."""

    def __init__(self) -> None:
        self.seen: list[set[str]] = []

    async def on_range(self, conn, chain, from_block, to_block) -> None:
        rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'events' "
                                "AND indexname = ANY($1::text[])", list(DEFERRABLE))
        self.seen.append({r["indexname"] for r in rows})

    async def on_rollback(self, conn, chain, ancestor) -> None:
        pass


async def backfill_seen(anvil, token, pool, tmp_path, chain: str, threshold: int) -> list[set[str]]:
    """Backfill `chain` with `defer_indexes_events = threshold`; the filter indexes each range saw."""
    settings = make_settings(tmp_path, {"chains": [evm_chain(chain, anvil.url, token, finality_depth=3,
                                                             max_logs_range=20, defer_indexes_events=threshold)]})
    probe = IndexProbe()
    follower = EvmFollower(settings.chains[0], pool, hooks=[probe])
    try:
        await follower.backfill()
    finally:
        await follower.close()
    return probe.seen


async def test_backfill_sets_filter_indexes_aside_and_rebuilds_them_exactly(anvil, filled_chain, pool, tmp_path):
    before = await definitions(pool)
    assert set(DEFERRABLE) <= set(before)
    seen = await backfill_seen(anvil, filled_chain, pool, tmp_path, "local", 1000)
    # The first range decides (its density over what is left); every later one ran without them.
    assert seen[0] == set(DEFERRABLE) and len(seen) > 3
    assert all(s == set() for s in seen[1:])
    assert await definitions(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM events_deferred_indexes") == 0
    assert await pool.fetchval("SELECT bool_and(i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                               "WHERE c.relname = ANY($1::text[])", list(DEFERRABLE))
    assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled_chain)
    plan = "\n".join(r[0] for r in await pool.fetch(
        "EXPLAIN SELECT id FROM events WHERE chain = 'local' AND address = $1 ORDER BY tx, id LIMIT 5", filled_chain))
    assert "events_chain_address_commit" in plan


async def test_small_backfill_or_big_table_keeps_indexes(anvil, filled_chain, pool, tmp_path):
    for chain, threshold in (("off", 0), ("small", 10**9)):
        assert all(s == set(DEFERRABLE) for s in await backfill_seen(anvil, filled_chain, pool, tmp_path, chain,
                                                                      threshold))
    # Over 20,000 rows stored: a 10,000-event backfill would rebuild more than it adds.
    await pool.execute("ANALYZE events")
    seen = await backfill_seen(anvil, filled_chain, pool, tmp_path, "big", 1000)
    assert all(s == set(DEFERRABLE) for s in seen)


async def test_crash_leaves_rows_the_next_start_rebuilds_unless_a_backfill_still_runs(pool):
    before = await definitions(pool)
    crashed, running = BulkLoad(pool, "a"), BulkLoad(pool, "b")
    assert sorted(await crashed.enter()) == sorted(DEFERRABLE)
    assert await running.enter() == []            # already aside: the second backfill only holds the lock
    await crashed.conn.close()                    # the process died: its lock goes, its rows stay
    crashed.conn = None
    assert await pool.fetchval("SELECT count(*) FROM events_deferred_indexes") == len(DEFERRABLE)
    assert await rebuild_if_deferred(pool) == []  # b still backfills: nothing built under it
    assert not set(DEFERRABLE) & set(await definitions(pool))
    assert sorted(await running.leave()) == sorted(DEFERRABLE)   # the last one out rebuilds
    assert await definitions(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM events_deferred_indexes") == 0
    # A crash with nobody else running: the next start rebuilds.
    crashed = BulkLoad(pool, "a")
    await crashed.enter()
    await crashed.conn.close()
    crashed.conn = None
    assert sorted(await rebuild_if_deferred(pool)) == sorted(DEFERRABLE)
    assert await definitions(pool) == before
