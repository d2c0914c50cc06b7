"""What the payout gauges cost as the payout history grows.

Every process sets the payout gauges about once a second (the gauge job and
each payout worker's step). Fills payout_requests with --history paid
requests and --open open ones (and batches in proportion), then times the
gauge refresh (settlement/payouts/requests.refresh_gauges: open states
counted, terminal ones from the totals of db/migrations/0015) against the
whole-table count it replaced, in the same run, best of --reps.

    .venv/bin/python bench/payout_gauges.py [--history 1000000] [--open 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.results import record  # noqa: E402
from settlement.payouts.requests import refresh_gauges  # noqa: E402
from tests.support.pg import scratch_connection  # noqa: E402

WHOLE_TABLE = ("SELECT chain, state, count(*) AS n FROM payout_requests GROUP BY 1, 2",
               "SELECT chain, state, count(*) AS n FROM payout_batches GROUP BY 1, 2")
BATCH_ID = "'0x' || lpad(to_hex(g), 64, '0')"


async def fill(conn: asyncpg.Connection, history: int, open_: int) -> None:
    batches = max(1, history // 100)
    await conn.execute(
        "INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total,"
        " gas_limit, expiry, state, signature, executed_block)"
        f" SELECT {BATCH_ID}, 'bench', 'native', '0x' || repeat('00', 20), 0, '0x' || repeat('11', 20),"
        "        '0x' || repeat('11', 20), 100, 700, 9000000, 2000000000, 'confirmed', '0xsig', g"
        " FROM generate_series(1, $1::int) g", batches)
    await conn.execute(
        "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by, state, batch_id)"
        " SELECT 'k' || g, 'bench', 'native', '0x' || lpad(to_hex(g), 40, '0'), 5, 'bench', 'paid',"
        "        '0x' || lpad(to_hex(1 + g / 100), 64, '0')"
        " FROM generate_series(1, $1::int) g", history)
    await conn.execute(
        "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by)"
        " SELECT 'open' || g, 'bench', 'native', '0x' || lpad(to_hex(g), 40, 'f'), 5, 'bench'"
        " FROM generate_series(1, $1::int) g", open_)
    await conn.execute("VACUUM ANALYZE payout_requests")
    await conn.execute("VACUUM ANALYZE payout_batches")


async def best_ms(reps: int, once) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        await once()
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=int, default=1_000_000, help="paid requests already stored")
    ap.add_argument("--open", type=int, default=2_000, help="pending requests")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    async with scratch_connection() as conn:
        t0 = time.perf_counter()
        await fill(conn, args.history, args.open)
        print(f"filled {args.history:,} paid and {args.open:,} open requests in {time.perf_counter() - t0:.1f}s",
              flush=True)
        totals = await best_ms(args.reps, lambda: refresh_gauges(conn, ["bench"]))

        async def whole() -> None:
            for sql in WHOLE_TABLE:
                await conn.fetch(sql)

        counted = await best_ms(args.reps, whole)
        print(f"gauge refresh: {totals:.2f} ms; whole-table count: {counted:.1f} ms; ratio {counted / totals:,.0f}x")
        record("payout-gauges", [
            ("payout requests stored", args.history + args.open, "requests", f"{args.open:,} open"),
            ("gauge refresh (open states + totals)", round(totals, 2), "ms", "once a second per process"),
            ("whole-table count (before 0015)", round(counted, 1), "ms", "same run"),
            ("whole-table / gauge refresh", round(counted / totals), "ratio", ""),
        ])


if __name__ == "__main__":
    asyncio.run(main())
