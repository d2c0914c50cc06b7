"""Delivery benchmark: 10,000 events from commit to a webhook receiver and to a Redis stream.

Events are committed in transactions of --per-tx rows (the indexer's shape)
while the relay runs; each transaction's commit time is taken right after
COMMIT returns. Prints deliveries/s (first commit to last arrival) and the
commit → receiver latency p50/p99 for each sink. The webhook receiver is an
aiohttp server on loopback, the Redis side a consumer blocked in XREAD; both
run in this process, like the relay, so the figures include sharing one
event loop (a pessimistic setup).

    .venv/bin/python bench/delivery.py [--events 10000] [--per-tx 100] [--keys 16] [--rate 0]

--rate 0 commits everything as fast as it can (throughput; latency then
measures the backlog); --rate N paces commits at N events/s (latency under
a sustained load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from db import create_pool  # noqa: E402
from tests.support.config import make_settings  # noqa: E402
from tests.support.delivery import SECRET, ensure_chain, running_relay  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402
from tests.support.receiver import Receiver  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

COLUMNS = ("chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "address", "event", "args")


def row(n: int, address: str) -> tuple:
    return ("local", n, f"0x{n:064x}", f"0x{n:064x}", 0, 0, address, "Transfer",
            orjson.dumps({"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "value": str(10**18 + n)}).decode())


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run_one(sink: str, pool, db_url: str, args, redis_url: str, tmp: Path) -> None:
    keys = ["0x" + f"{k:040x}" for k in range(args.keys)]
    arrivals: dict[str, float] = {}
    receiver = None
    consumer = None
    if sink == "webhook":
        receiver = await Receiver().start()
        sub = {"id": "bench-webhook", "sink": "webhook", "url": receiver.url, "secrets": ["env:WH_SECRET"],
               "ordering": "per_key"}
    else:
        stream = "bench:events"
        sub = {"id": "bench-redis", "sink": "redis", "url": redis_url, "stream": stream, "ordering": "per_key"}
        client = aioredis.from_url(redis_url)

        async def consume():
            last = "0-0"
            while len(arrivals) < args.events:
                got = await client.xread({stream: last}, block=1000, count=1000)
                now = time.time()
                for _, entries in got:
                    for entry_id, fields in entries:
                        last = entry_id
                        arrivals.setdefault(fields[b"id"].decode(), now)
        consumer = asyncio.create_task(consume())
    settings = make_settings(tmp, {"delivery": {"allow_loopback": True, "poll_interval": 0.5,
                                                "send_batch": 500, "fanout_batch": 2000},
                                   "deliveries": [sub]})
    committed: dict[str, float] = {}
    async with running_relay(settings, pool, db_url):
        t0 = time.time()
        base = 1_000_000 if sink == "redis" else 0
        for start in range(0, args.events, args.per_tx):
            n = min(args.per_tx, args.events - start)
            async with pool.acquire() as conn:
                async with conn.transaction():
                    # COPY, as indexer/store writes a range.
                    await conn.copy_records_to_table("events", columns=COLUMNS, records=[
                        row(base + start + i, keys[(start + i) % len(keys)]) for i in range(n)])
                    ids = [r["id"] for r in await conn.fetch(
                        "SELECT id FROM events WHERE tx = pg_current_xact_id() ORDER BY id")]
                now = time.time()
            for i in ids:
                committed[f"ev_local_{i}_observed"] = now
            if args.rate:  # paced: a sustained load instead of one burst
                await asyncio.sleep(max(0.0, t0 + (start + n) / args.rate - time.time()))
        deadline = time.time() + 600
        if receiver is not None:
            while len(receiver.first_seen()) < args.events and time.time() < deadline:
                await asyncio.sleep(0.05)
            for r in receiver.accepted:
                arrivals.setdefault(r.msg_id, r.at)
        else:
            await asyncio.wait_for(consumer, 600)
    lat = [(arrivals[m] - c) * 1000 for m, c in committed.items() if m in arrivals]
    total = max(arrivals.values()) - t0
    mode = f"paced {args.rate:.0f}/s" if args.rate else "burst"
    print(f"{sink:8s} {mode:12s} {len(arrivals):6d} delivered  {len(arrivals) / total:8.0f} deliveries/s  "
          f"commit→receiver p50 {statistics.median(lat):7.1f} ms  p99 {pct(lat, 99):7.1f} ms")
    attempts = await pool.fetchval("SELECT count(*) FROM delivery_attempts")
    print(f"{'':8s} {attempts} attempts recorded" + (f", {len(receiver.requests)} requests received"
                                                      if receiver is not None else ""))
    if receiver is not None:
        await receiver.stop()
    else:
        await client.aclose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--per-tx", type=int, default=100)
    ap.add_argument("--keys", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0, help="events/s to commit at (0: as fast as possible)")
    args = ap.parse_args()
    os.environ["WH_SECRET"] = SECRET
    cluster = PgCluster()
    await cluster.setup_template()
    redis_server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for sink in ("webhook", "redis"):
                db_url = await cluster.new_database()
                pool = await create_pool(db_url, min_size=2, max_size=10)
                try:
                    await ensure_chain(pool)
                    await run_one(sink, pool, db_url, args, redis_server.url, Path(tmp))
                finally:
                    await pool.close()
                    await cluster.drop_database(db_url)
    finally:
        redis_server.stop()
        await cluster.teardown()


if __name__ == "__main__":
    asyncio.run(main())
