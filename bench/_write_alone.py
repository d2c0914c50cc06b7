"""The write path alone, and what the cores allow the whole pipeline (for bench/backfill.py).

`write_alone` commits already decoded rows through the follower's own store
(Store.commit_range with the daemon's hooks, the ranges the backfill
commits) into a fresh database, with nothing fetched meanwhile: how fast
Postgres and this process's COPY encoding take the rows when they have the
machine to themselves. `ceiling` combines it with the bare fetch: one
backfill must do both, on the same cores, after its start-up.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import orjson

from bench.cpu import CpuMeter
from config import load_settings
from daemon.followers import make_follower
from daemon.runtime import open_pool
from indexer.evm.logs import parse_logs_answer
from indexer.models import Cursor

ROWS_PER_COMMIT = 17_000  # what the range sizer settles on for this chain (about 170 blocks of 100 logs)


async def decoded_ranges(follower, url: str, token: str, last: int, span: int) -> tuple[list, float]:
    """(first block, last block, rows, hash of the last block) per commit, decoded by the follower's decoder,
    and the CPU seconds the decoding took."""
    out, rows, start, decode_cpu = [], [], 0, 0.0
    async with aiohttp.ClientSession() as s:
        for a in range(0, last + 1, span):
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                    "params": [{"fromBlock": hex(a), "toBlock": hex(min(last, a + span - 1)), "address": token}]}
            async with s.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as r:
                # Parsed the daemon's way (straight into Log records), so the
                # decoding below costs what it costs the follower.
                logs = parse_logs_answer(await r.read())["result"]
            t0 = time.process_time()
            events, raw = follower.decoder.decode_logs(logs)
            decode_cpu += time.process_time() - t0
            assert not raw, "every bench log decodes"
            rows += events
            if len(rows) >= ROWS_PER_COMMIT or a + span > last:
                if rows:
                    out.append((start, rows[-1][1], rows, rows[-1][2]))
                    start, rows = rows[-1][1] + 1, []
    return out, decode_cpu


async def write_alone(config: Path, db_url: str, node_url: str, token: str, last: int,
                      postmaster: int | None) -> dict:
    settings = load_settings(config)
    async with open_pool(settings, db_url) as pool:
        follower = make_follower(settings.chain("bench"), pool, settings)
        ranges, decode_cpu = await decoded_ranges(follower, node_url, token, last, 100)
        store = follower.store
        await store.ensure_chain("evm", settings.chain("bench").effective_chain_id)
        expected = None
        # This process's share is its main thread's (the loop, asyncpg's
        # encoding); the meter's sampler thread is left out.
        with CpuMeter(None, [], postmaster) as cpu:
            thread_cpu, t0 = time.thread_time(), time.perf_counter()
            n = 0
            for a, b, rows, block_hash in ranges:
                cursor = Cursor(b, block_hash)
                n += await store.commit_range(from_block=a, to_block=b, events=rows, blocks=[], expected=expected,
                                              cursor=cursor, final_number=b)
                expected = cursor
            seconds, thread_cpu = time.perf_counter() - t0, time.thread_time() - thread_cpu
        await follower.close()
    used = {**cpu.seconds, "daemon": thread_cpu}
    return {"events": n, "seconds": seconds, "commits": len(ranges), "cpu": used,
            "cores": sum(used.values()) / seconds, "decode_cpu": decode_cpu, "postgres_roles": cpu.postgres_roles}


def ceiling(fetch_s: float, fetch_cpu: dict, write_s: float, write_cpu: dict, decode_cpu: float,
            startup_s: float, cores: int) -> float:
    """Seconds the fastest possible backfill takes here, end to end.

    Fetching (with decoding) and writing overlap perfectly, so the slower of
    the two sets the pace, unless together they need more CPU than the cores
    have, or more than the daemon's one thread can do (parsing, decoding and
    encoding the COPY are all its work); the start-up (imports, connecting,
    the first range) comes before either. CPU dicts are bench/cpu.py's.
    """
    total = sum(fetch_cpu.values()) + decode_cpu + sum(write_cpu.values())
    one_thread = fetch_cpu["daemon"] + decode_cpu + write_cpu["daemon"]
    return startup_s + max(fetch_s, write_s, total / cores, one_thread)
