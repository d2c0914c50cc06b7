"""The write path alone, and what the cores allow the whole pipeline (for bench/backfill.py).

`write_alone` commits already decoded rows through the follower's own store
(Store.commit_range with the daemon's hooks, the ranges the backfill
commits) into a fresh database, with nothing fetched meanwhile: how fast
Postgres and this process's COPY encoding take the rows when they have the
machine to themselves. `ceiling` combines it with the bare fetch: one
backfill must do both, on the same cores, after its start-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import aiohttp
import orjson

from bench.cpu import CpuMeter
from config import load_settings
from daemon.followers import make_follower
from daemon.runtime import open_pool
from indexer.models import Cursor

ROWS_PER_COMMIT = 17_000  # what the range sizer settles on for this chain (about 170 blocks of 100 logs)


async def decoded_ranges(follower, url: str, token: str, last: int, span: int) -> list[tuple[int, int, list, str]]:
    """(first block, last block, rows, hash of the last block) per commit, decoded by the follower's decoder."""
    out, rows, start = [], [], 0
    async with aiohttp.ClientSession() as s:
        for a in range(0, last + 1, span):
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                    "params": [{"fromBlock": hex(a), "toBlock": hex(min(last, a + span - 1)), "address": token}]}
            async with s.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as r:
                events, raw = follower.decoder.decode_logs(orjson.loads(await r.read())["result"])
            assert not raw, "every bench log decodes"
            rows += events
            if len(rows) >= ROWS_PER_COMMIT or a + span > last:
                if rows:
                    out.append((start, rows[-1][1], rows, rows[-1][2]))
                    start, rows = rows[-1][1] + 1, []
    return out


async def write_alone(config: Path, db_url: str, node_url: str, token: str, last: int,
                      postmaster: int | None) -> dict:
    os.environ["DATABASE_URL"] = db_url
    settings = load_settings(config)
    async with open_pool(settings) as pool:
        follower = make_follower(settings.chain("bench"), pool, settings)
        ranges = await decoded_ranges(follower, node_url, token, last, 100)
        store = follower.store
        await store.ensure_chain("evm", settings.chain("bench").effective_chain_id)
        expected = None
        with CpuMeter(os.getpid, [], postmaster) as cpu:
            t0 = time.perf_counter()
            n = 0
            for a, b, rows, block_hash in ranges:
                cursor = Cursor(b, block_hash)
                n += await store.commit_range(from_block=a, to_block=b, events=rows, blocks=[], expected=expected,
                                              cursor=cursor, final_number=b)
                expected = cursor
            seconds = time.perf_counter() - t0
        await follower.close()
    return {"events": n, "seconds": seconds, "commits": len(ranges), "cpu": cpu.seconds, "cores": cpu.cores}


def ceiling(events: int, fetch_s: float, fetch_cpu: float, write_s: float, write_cpu: float,
            startup_s: float, cores: int) -> float:
    """Seconds the fastest possible backfill of `events` takes here, end to end.

    Fetching and writing overlap perfectly, so the slower of the two sets
    the pace, unless together they need more CPU than the cores have; the
    start-up (imports, connecting, the first range) comes before either.
    """
    return startup_s + max(fetch_s, write_s, (fetch_cpu + write_cpu) / cores)
