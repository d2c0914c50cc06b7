"""The API against hostile clients and concurrent writers.

- A client following `next` (then polling `resume`) while several writers
  commit at once sees every row exactly once: pages follow commit order,
  not id order (ids come from per-connection sequence caches).
- Status never shows `indexed` above `head`.
- 50 concurrent slow-filter requests from one client: the followers keep
  committing and the payouts keep moving (progress is asserted, not time).
"""

from __future__ import annotations

import asyncio
import random

from api.read_routes import Q as API_Q
from api.server import create_api_pool
from indexer.models import Cursor
from indexer.store import Store
from tests.support.api_data import (
    address,
    api_settings,
    block_hash,
    block_rows,
    chain_cfg,
    client_for,
    event_row,
    register_chain,
)


class SlowHook:
    """Holds each writer's transaction open a random while (inside the store's
    own transaction), so rows commit out of id order, as busy writers do."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def on_range(self, conn, chain, from_block, to_block) -> None:
        await asyncio.sleep(self.rng.choice((0, 0.01, 0.05, 0.12)))

    async def on_rollback(self, conn, chain, ancestor) -> None:
        return None


async def writer(pool, chain: str, blocks: int, seed: int) -> None:
    store = Store(pool, chain, hooks=[SlowHook(seed)])
    await store.ensure_chain("evm", 31337)
    cursor = None
    for n in range(1, blocks + 1):
        events = [event_row(chain, n, i, addr=address(i)) for i in range(3)]
        await store.commit_range(from_block=n, to_block=n, events=events, blocks=block_rows(chain, [n]),
                                 expected=cursor, cursor=Cursor(n, block_hash(chain, n)), final_number=n)
        cursor = Cursor(n, block_hash(chain, n))


async def test_a_client_following_next_while_writers_commit_sees_every_row_once(tmp_path, pool):
    chains = [f"w{i}" for i in range(4)]
    settings = api_settings(tmp_path, [chain_cfg(c) for c in chains])
    seen: list[int] = []
    pages = 0
    async with client_for(settings, pool) as client:
        writers = asyncio.gather(*(writer(pool, c, 25, seed=i) for i, c in enumerate(chains)))
        cursor = None
        idle_after_done = 0
        while idle_after_done < 2:
            done = writers.done()
            url = "/v1/events?limit=5" + (f"&cursor={cursor}" if cursor else "")
            resp = await client.get(url)
            assert resp.status == 200, await resp.text()
            page = await resp.json()
            pages += 1
            seen += [e["id"] for e in page["events"]]
            cursor = page["next"] or page["resume"]
            if not page["events"] and done:
                idle_after_done += 1
            if not page["next"]:
                await asyncio.sleep(0.01)
        await writers
    stored = [r["id"] for r in await pool.fetch("SELECT id FROM events ORDER BY tx, id")]
    assert len(stored) == 4 * 25 * 3
    assert len(seen) == len(set(seen)), "a row was served twice"
    assert seen == stored, "rows missing or out of commit order"
    # The writers really did commit out of id order: paging by id would have skipped rows.
    by_id = [r["id"] for r in await pool.fetch("SELECT id FROM events ORDER BY id")]
    assert by_id != stored
    assert pages > 60


async def test_status_never_shows_indexed_above_head(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    store = await register_chain(pool, "anvil")
    await store.set_status({"state": "following"}, head=5)
    await store.commit_range(from_block=1, to_block=9, events=[], blocks=block_rows("anvil", [9]),
                             expected=None, cursor=Cursor(9, block_hash("anvil", 9)), final_number=7)
    await store.set_status({"state": "following"}, head=6)  # a stale head report after the commit
    async with client_for(settings, pool) as client:
        body = await (await client.get("/v1/status")).json()
    (chain,) = [c for c in body["chains"] if c["chain"] == "anvil"]
    assert chain["indexed"] == 9 and chain["head"] >= chain["indexed"] and chain["lag_blocks"] == 0


async def test_filters_without_an_index_are_refused_naming_the_filter(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    async with client_for(settings, pool) as client:
        for query, needs in (("address=0x" + "ab" * 20, "chain"), ("event=Transfer", "chain"),
                             ("to_block=9", "chain")):
            resp = await client.get(f"/v1/events?{query}")
            body = await resp.json()
            assert resp.status == 400 and body["field"] == needs, body
        # With the chain they are served (by events_chain_address_commit / _event_commit).
        for query in ("chain=anvil&address=0x" + "ab" * 20, "chain=anvil&event=Transfer"):
            assert (await client.get(f"/v1/events?{query}")).status == 200
    # With data (and statistics), each filter is an ordered index range: no sort, no scan of the table.
    store = await register_chain(pool, "anvil")
    await store.commit_range(from_block=1, to_block=400, events=[
        event_row("anvil", n, i, addr=address(i % 20), event=("Transfer", "Approval", "Sync")[i % 3])
        for n in range(1, 401) for i in range(60)], expected=None, cursor=Cursor(400, block_hash("anvil", 400)))
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE events")
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            horizon = (await conn.fetchrow(API_Q.events_page_begin, "3000"))["horizon"]
            for chain, addr, event, index in (
                ("anvil", address(3), None, "events_chain_address_commit"),
                ("anvil", None, "Sync", "events_chain_event_commit"),
                # One chain only: walking the global commit-order index is as good.
                ("anvil", None, None, "events_"),
            ):
                for sql in (API_Q.events_page_asc, API_Q.events_page_desc):
                    plan = "\n".join(r[0] for r in await conn.fetch(
                        "EXPLAIN " + sql, chain, addr, event, None, None, None, None, horizon, 6))
                    assert index in plan and "Sort" not in plan and "Seq Scan" not in plan, plan



async def test_a_page_is_an_ordered_index_range_before_events_have_statistics(pool):
    """Right after a backfill autovacuum has not analyzed `events` yet; the
    planner's default estimates then favour a bitmap scan, which reads and
    sorts every row of the chain for each page. The page's own settings keep
    it an ordered index range read up to its LIMIT, first page or deep."""
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events SET (autovacuum_enabled = false)")
    store = await register_chain(pool, "anvil")
    await store.commit_range(from_block=1, to_block=400, events=[
        event_row("anvil", n, i, addr=address(i % 20)) for n in range(1, 401) for i in range(100)],
        expected=None, cursor=Cursor(400, block_hash("anvil", 400)))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT reltuples < 0 FROM pg_class WHERE relname = 'events'")  # never analyzed
        tx, row_id = await conn.fetchrow("SELECT tx::text, id FROM events ORDER BY tx, id OFFSET 20000 LIMIT 1")
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            horizon = (await conn.fetchrow(API_Q.events_page_begin, "3000"))["horizon"]
            for sql, after in ((API_Q.events_page_asc, (None, None)), (API_Q.events_page_desc, (None, None)),
                               (API_Q.events_page_asc, (tx, row_id))):
                plan = "\n".join(r[0] for r in await conn.fetch(
                    "EXPLAIN " + sql, "anvil", None, None, None, None, *after, horizon, 101))
                assert "Index Scan" in plan and "Sort" not in plan and "Bitmap" not in plan, plan

async def test_per_client_inflight_cap_is_applied_before_a_connection_is_taken(tmp_path, pool, db_url):
    settings = api_settings(tmp_path, [chain_cfg("bulk")], api={"max_inflight_per_client": 2, "pool_max": 2})
    api_pool = await create_api_pool(settings, db_url)
    store = await register_chain(pool, "bulk")
    await store.commit_range(from_block=1, to_block=200, events=[event_row("bulk", n, i, addr=address(i))
                                                                  for n in range(1, 201) for i in range(50)],
                             expected=None, cursor=Cursor(200, block_hash("bulk", 200)), final_number=200)
    try:
        async with client_for(settings, api_pool) as client:
            # A block bound nothing matches: each request walks the chain's rows.
            resps = await asyncio.gather(*(client.get("/v1/events?chain=bulk&from_block=999999999") for _ in range(20)))
            statuses = [r.status for r in resps]
            bodies = [await r.json() for r in resps]
    finally:
        await api_pool.close()
    assert set(statuses) <= {200, 429}
    assert statuses.count(429) >= 1
    assert {b["error"] for b, s in zip(bodies, statuses) if s == 429} == {"too_many_in_flight"}
    assert statuses.count(200) >= 2



async def test_a_request_waits_a_bounded_time_for_a_connection(tmp_path, db_url):
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"pool_max": 1, "acquire_timeout": 0.3})
    api_pool = await create_api_pool(settings, db_url)
    try:
        async with client_for(settings, api_pool) as client:
            async with api_pool.acquire():  # someone holds the API's only connection
                resp = await client.get("/v1/events")
                body = await resp.json()
            assert resp.status == 503 and body["error"] == "database_unavailable", body
            assert (await client.get("/v1/events")).status == 200  # and it is free again
            timeout = await api_pool.fetchval("SHOW statement_timeout")
            assert timeout == "3s"  # the API's own, much shorter than the daemon's 60 s
    finally:
        await api_pool.close()
