"""Follower commit latency with and without a hostile API client.

A real follower indexes anvil blocks (one transfer each) into Postgres;
its `commit_range` calls are timed. Three phases of the same workload:
- no API load;
- one client firing 50 concurrent slow-filter requests, again and again,
  at the API as `chainsettle run` builds it (own pool, short statement
  timeout, per-client in-flight cap);
- the same client against an API that shares the daemon's pool and has no
  per-client cap (how it was before issue 12), for comparison.
Prints p50 / p95 / max commit latency per phase, commits made, and what the
client got back. Figures, not pass/fail.

    .venv/bin/python bench/api_load.py [--blocks 60] [--bulk-rows 600000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from api.app import make_app  # noqa: E402
from api.server import create_api_pool  # noqa: E402
from db import create_pool  # noqa: E402
from indexer.evm.follower import EvmFollower  # noqa: E402
from indexer.models import Cursor  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.api_data import address, block_hash, event_row, register_chain  # noqa: E402
from tests.support.config import evm_chain, make_settings  # noqa: E402
from tests.support.evm import deploy_token, token_transfer  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

# The heaviest request the API still accepts: a full page (max_page_size rows)
# of a large chain, from its oldest row. Filters that used to scan the whole
# table (address / event without a chain) are refused with a 400 now, and a
# block bound is a range of the natural-key index.
SLOW = "/v1/events?chain=bulk&limit=500"
DEPLOYER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"


async def fill_bulk(pool, rows: int) -> None:
    store = await register_chain(pool, "bulk")
    per_block, cursor, n = 100, None, 0
    while n * per_block < rows:
        start, end = n + 1, n + 500
        batch = [event_row("bulk", b, i, addr=address(i % 7)) for b in range(start, end + 1) for i in range(per_block)]
        await store.commit_range(from_block=start, to_block=end, events=batch, expected=cursor,
                                 cursor=Cursor(end, block_hash("bulk", end)), final_number=end)
        cursor, n = Cursor(end, block_hash("bulk", end)), end
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE events")


async def hammer(client: TestClient, stop: asyncio.Event, statuses: Counter, slow: list[float]) -> None:
    async def one() -> None:
        t0 = time.perf_counter()
        async with client.get(SLOW) as r:
            await r.read()
            statuses[r.status] += 1
            if r.status == 200:
                slow.append(time.perf_counter() - t0)

    while not stop.is_set():
        await asyncio.gather(*(one() for _ in range(50)))
        # The client shares this process (and its 2 cores) with the daemon:
        # a short pause keeps a storm of instant 429s from measuring our own CPU.
        await asyncio.sleep(0.05)


async def phase(label: str, follower: EvmFollower, node_url: str, token: str, pool, blocks: int,
                client: TestClient | None) -> None:
    latencies: list[float] = []
    original = follower.store.commit_range

    async def timed(**kw):
        t0 = time.perf_counter()
        try:
            return await original(**kw)
        finally:
            latencies.append(time.perf_counter() - t0)

    follower.store.commit_range = timed  # type: ignore[method-assign]
    stop, load_stop = asyncio.Event(), asyncio.Event()
    statuses: Counter = Counter()
    slow: list[float] = []
    load = asyncio.create_task(hammer(client, load_stop, statuses, slow)) if client else None
    task = asyncio.create_task(follower.run(stop))
    try:
        if load:
            while sum(statuses.values()) < 50:
                await asyncio.sleep(0.05)
        for i in range(blocks):
            await asyncio.to_thread(token_transfer, node_url, token, DEPLOYER, "0x" + f"{i + 1:040x}", 1)
            await asyncio.sleep(0.05)
        head = int(rpc_sync(node_url, "eth_blockNumber"), 16)
        while (await pool.fetchval("SELECT cursor_number FROM chain_state WHERE chain = 'bench'") or 0) < head:
            await asyncio.sleep(0.05)
    finally:
        load_stop.set()
        stop.set()
        await asyncio.gather(task, *( [load] if load else []), return_exceptions=True)
        follower.store.commit_range = original  # type: ignore[method-assign]
    qs = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    print(f"{label}: {len(latencies)} commits; commit latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p95 {qs[18] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    if client:
        med = f"{statistics.median(slow) * 1000:.0f} ms" if slow else "n/a"
        print(f"    client: {dict(statuses)} (median answered slow query {med})")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=60)
    ap.add_argument("--bulk-rows", type=int, default=600_000)
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    try:
        with Anvil() as node, tempfile.TemporaryDirectory() as tmp:
            token = deploy_token(node.url)
            start = int(rpc_sync(node.url, "eth_blockNumber"), 16) + 1
            db_url = await cluster.new_database()
            pool = await create_pool(db_url, min_size=2, max_size=10)
            settings = make_settings(Path(tmp), {"chains": [
                evm_chain("bench", node.url, token, finality_depth=1, start_block=start, poll_interval=0.02)]})
            t0 = time.perf_counter()
            await fill_bulk(pool, args.bulk_rows)
            print(f"bulk chain: {args.bulk_rows} rows in {time.perf_counter() - t0:.1f}s")
            follower = EvmFollower(settings.chains[0], pool)
            await phase("no API load", follower, node.url, token, pool, args.blocks, None)

            api_pool = await create_api_pool(settings, db_url)
            client = TestClient(TestServer(make_app(settings, api_pool)))
            await client.start_server()
            await phase("50 concurrent slow requests, own API pool", follower, node.url, token, pool, args.blocks, client)
            await client.close()
            await api_pool.close()

            old = make_settings(Path(tmp) / "old", {"chains": [settings.chains[0].model_dump(exclude_none=True)],
                                                   "api": {"max_inflight_per_client": 100_000, "rate_limit_burst": 100_000,
                                                           "rate_limit_per_second": 100_000}}) \
                if (Path(tmp) / "old").mkdir() is None else None
            client = TestClient(TestServer(make_app(old, pool)))
            await client.start_server()
            await phase("50 concurrent slow requests, shared pool, no per-client cap", follower, node.url, token, pool,
                        args.blocks, client)
            await client.close()
            await follower.close()
            await pool.close()
    finally:
        await cluster.teardown()


if __name__ == "__main__":
    asyncio.run(main())
