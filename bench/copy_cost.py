"""Where the events write path spends its time, on the server side.

COPYs --events pre-encoded rows (text format, so this process does almost
nothing) into `events`, --per-tx per transaction each moving the final height
over them as a depth-1 chain's commit does. It first runs on the schema as
migrated, then again after removing, one at a time, what each row costs: the
finality trigger (one row per move, 0013), the late-insert trigger, and the
four secondary indexes. The first two rows compare a writer that says its rows
are above the final height (indexer/store's direct COPY path) with one that
says nothing, whose transaction's rows the late-insert trigger then looks up.
It prints the best rows/s of --reps rounds at
each step. This is the measurement behind the backfill note in the README.

    .venv/bin/python bench/copy_cost.py [--events 100000] [--per-tx 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import orjson  # noqa: E402

from tests.support.pg import scratch_connection  # noqa: E402

COLS = ["chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "address", "event", "args"]
STEPS = [  # (label, SQL before the step, whether the writer says its rows are above final)
    ("as migrated, writer checked above final", [], True),
    ("as migrated, writer says nothing", [], False),
    ("- finality trigger (0013)", ["ALTER TABLE chain_state DISABLE TRIGGER chain_state_delivery_final"], True),
    ("- late-insert trigger", ["ALTER TABLE events DISABLE TRIGGER events_delivery_insert"], True),
    ("- events_chain_event_commit", ["DROP INDEX events_chain_event_commit"], True),
    ("- events_chain_address_commit", ["DROP INDEX events_chain_address_commit"], True),
    ("- events_chain_commit", ["DROP INDEX events_chain_commit"], True),
    ("- events_feed (pkey + natural key left)", ["DROP INDEX events_feed"], True),
]


def encoded(n: int, base: int) -> bytes:
    out = io.StringIO()
    for i in range(n):
        b = base + i // 100
        args = orjson.dumps({"from": "0x" + "11" * 20, "to": f"0x{i:040x}", "value": str(i * 12345678901234)}).decode()
        out.write(f"bench\t{b}\t0x{b:064x}\t0x{b * 1000 + i:064x}\t{i % 100}\t{i % 100}\t0x{'ab' * 20}\tTransfer\t{args}\n")
    return out.getvalue().encode()


async def rate(conn: asyncpg.Connection, data: list[bytes], per: int, reps: int, above_final: bool) -> float:
    best = 0.0
    for _ in range(reps):
        await conn.execute("TRUNCATE events CASCADE; TRUNCATE delivery_outbox, delivery_finality")
        await conn.execute("UPDATE chain_state SET final_number = NULL WHERE chain = 'bench'")
        await conn.execute("CHECKPOINT")
        t0 = time.perf_counter()
        for k, d in enumerate(data):
            async with conn.transaction():
                if above_final:
                    await conn.execute("SELECT set_config('chainsettle.events_above_final', 'on', true)")
                await conn.copy_to_table("events", source=io.BytesIO(d), columns=COLS)
                await conn.execute("UPDATE chain_state SET final_number = $1 WHERE chain = 'bench'", (k + 1) * per // 100)
        best = max(best, len(data) * per / (time.perf_counter() - t0))
    return best


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--per-tx", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    async with scratch_connection() as conn:
        await conn.execute("INSERT INTO chain_state (chain, kind, chain_id) VALUES ('bench', 'evm', 1)")
        data = [encoded(args.per_tx, k * args.per_tx) for k in range(args.events // args.per_tx)]
        for label, sqls, above_final in STEPS:
            for sql in sqls:
                await conn.execute(sql)
            print(f"{label:45s} {await rate(conn, data, args.per_tx, args.reps, above_final):9,.0f} rows/s",
                  flush=True)


if __name__ == "__main__":
    asyncio.run(main())
