"""Invoice matching cost: the follower's write transaction for one block of
300 incoming transfers, with 0, 10,000 and 100,000 expired invoices on the
receiving wallet (issue 26: the goal is flat).

Real Postgres (a throwaway cluster), the Store with the daemon's ledger and
invoice hooks, synthetic blocks (no node: what is measured is the indexing
transaction, where the matching runs). Half the dead invoices are `payer`
invoices of the block's 300 payers, half `amount` invoices; 100 live payer
invoices are paid by the block, so claims, books and states are in it.

    .venv/bin/python bench/invoice_matching.py [--dead 0,10000,100000] [--transfers 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import record  # noqa: E402
from db import create_pool  # noqa: E402
from indexer.models import EventRow  # noqa: E402
from indexer.store import Store  # noqa: E402
from settlement.invoices.hook import InvoiceHook  # noqa: E402
from settlement.ledger.hook import LedgerHook  # noqa: E402
from tests.integration.settlement.invoices.test_allocation import commit, settings_of  # noqa: E402
from tests.integration.settlement.invoices.test_hook import CHAIN, SHOP, TOKEN, transfer  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

LIVE = 100


def payer(i: int) -> str:
    return "0x" + f"{0xA0000 + i:040x}"


async def timed(store: Store, n: int, events: list[EventRow], ts: int) -> float:
    t0 = time.perf_counter()
    await commit(store, n, events, final=n, ts=ts)  # one final block, as a follower commits it
    return time.perf_counter() - t0


DEAD_SQL = """
INSERT INTO invoices (id, app_ref, chain, asset, asset_id, asset_kind, contract, amount, tolerance, wallet,
                      match_method, payer, account, expires_at, created_by, after_block, created_at)
SELECT 'inv_' || lpad(to_hex(g), 24, '0'), 'dead-' || g, $1, 'Token', $1 || ':Token', 'erc20', $2,
       10000 + g, 0, $3, CASE WHEN g % 2 = 0 THEN 'payer' ELSE 'amount' END,
       CASE WHEN g % 2 = 0 THEN '0x' || lpad(to_hex(655360 + g % $5), 40, '0') END,
       'user:app', now() - interval '30 days', 'bench', 1, now() - interval '31 days'
FROM generate_series(1, $4) g
"""

LIVE_SQL = """
INSERT INTO invoices (id, app_ref, chain, asset, asset_id, asset_kind, contract, amount, tolerance, wallet,
                      match_method, payer, account, expires_at, created_by, after_block)
SELECT 'inv_' || lpad(to_hex(16777216 + g), 24, '0'), 'live-' || g, $1, 'Token', $1 || ':Token', 'erc20', $2,
       1000, 0, $3, 'payer', '0x' || lpad(to_hex(655360 + g), 40, '0'),
       'user:app', now() + interval '1 day', 'bench', 2
FROM generate_series(0, $4 - 1) g
"""


async def one(cluster: PgCluster, tmp: Path, dead: int, transfers: int, vacuum: bool) -> tuple[float, float, int]:
    """(longest expiry-sweep transaction, the block's index time, claims)."""
    url = await cluster.new_database()
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        settings = settings_of(tmp)  # chain `local`: the Token contract, the shop wallet, no node
        store = Store(pool, CHAIN, [LedgerHook(settings), InvoiceHook(settings)])
        await store.ensure_chain("evm", 31337)
        now = int(time.time())
        await timed(store, 1, [], now)
        async with pool.acquire() as conn:
            await conn.execute(DEAD_SQL, CHAIN, TOKEN, SHOP, dead, transfers)
            await conn.execute(LIVE_SQL, CHAIN, TOKEN, SHOP, LIVE)
            await conn.execute("ANALYZE invoices")
        # Empty blocks expire the dead ones (and retire them, past the grace), a batch per range.
        n, sweep = 2, []
        while n == 2 or await pool.fetchval(
                "SELECT count(*) FROM invoices WHERE state = 'new' AND expires_at < now() OR matchable AND state = 'expired'"):
            sweep.append(await timed(store, n, [], now + n))
            n += 1
        if vacuum:  # the steady state: autovacuum has removed the index entries the sweep left dead
            async with pool.acquire() as conn:
                await conn.execute("VACUUM ANALYZE invoices")
        events = [transfer(n, i, 1000, frm=payer(i)) for i in range(transfers)]
        took = await timed(store, n, events, now + n)
        claimed = await pool.fetchval("SELECT count(*) FROM invoice_payments")
    finally:
        await pool.close()
        await cluster.drop_database(url)
    return max(sweep), took, claimed


async def main(deads: list[int], transfers: int) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    cluster = PgCluster()
    await cluster.setup_template()
    tmp = Path(tempfile.mkdtemp(prefix="cs-bench-invoices-"))
    try:
        print(f"{'expired invoices':>17} | {'longest sweep range':>19} | {'index 1 block, at once':>22} |"
              f" {'after vacuum':>12} | claims")
        rows = []
        for dead in deads:
            sweep, at_once, claimed = await one(cluster, tmp, dead, transfers, vacuum=False)
            _, steady, _ = await one(cluster, tmp, dead, transfers, vacuum=True)
            print(f"{dead:>17,} | {sweep:>17.3f} s | {at_once:>20.3f} s | {steady:>10.3f} s | {claimed:>6}", flush=True)
            rows.append((f"index one block of {transfers} transfers, {dead:,} expired invoices", round(steady, 3),
                         "s", "flat"))
        record("invoice_matching", rows)
    finally:
        await cluster.teardown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dead", default="0,10000,100000")
    ap.add_argument("--transfers", type=int, default=300)
    a = ap.parse_args()
    asyncio.run(main([int(x) for x in a.dead.split(",")], a.transfers))
