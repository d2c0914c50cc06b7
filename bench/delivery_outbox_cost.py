"""What the lifecycle outbox (db/migrations/0010_delivery.sql) costs the indexer's write path.

COPYs --events events in transactions of --per-tx rows, each moving the
chain's final height over them (as a depth-1 chain's commit_range does), with
the delivery triggers enabled and disabled in turn; prints events/s of each.

    .venv/bin/python bench/delivery_outbox_cost.py [--events 100000] [--per-tx 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from db import create_pool  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

COLS = ("chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "address", "event", "args")
TRIGGERS = [("events", "events_delivery_insert"), ("events", "events_delivery_delete"),
            ("chain_state", "chain_state_delivery_final")]


async def run(pool, enabled: bool, n: int, per: int) -> float:
    await pool.execute("TRUNCATE events CASCADE")
    await pool.execute("TRUNCATE delivery_outbox")
    await pool.execute("UPDATE chain_state SET final_number = NULL WHERE chain = 'local'")
    for table, trigger in TRIGGERS:
        await pool.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER {trigger}")
    t0 = time.perf_counter()
    for b in range(0, n, per):
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("events", columns=COLS, records=[
                ("local", b + i, f"0x{b + i:064x}", f"0x{b + i:064x}", 0, 0, "0x" + "aa" * 20, "Transfer",
                 orjson.dumps({"value": str(i)}).decode()) for i in range(per)])
            await conn.execute("UPDATE chain_state SET final_number = $1 WHERE chain = 'local'", b + per - 1)
    return n / (time.perf_counter() - t0)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--per-tx", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    url = await cluster.new_database()
    pool = await create_pool(url)
    try:
        await pool.execute("INSERT INTO chain_state (chain, kind, chain_id) VALUES ('local', 'evm', 1)")
        with_, without = [], []
        for _ in range(args.rounds):
            with_.append(await run(pool, True, args.events, args.per_tx))
            without.append(await run(pool, False, args.events, args.per_tx))
        best_with, best_without = max(with_), max(without)
        print(f"write path with delivery triggers   {best_with:8.0f} events/s (best of {args.rounds})")
        print(f"write path without delivery triggers {best_without:8.0f} events/s")
        print(f"cost: {100 * (1 - best_with / best_without):.0f}% fewer events/s on the bare write path")
    finally:
        await pool.close()
        await cluster.drop_database(url)
        await cluster.teardown()


if __name__ == "__main__":
    asyncio.run(main())
