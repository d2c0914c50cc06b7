"""Intent scheduler benchmark: N intents due in the same minute.

Creates N daily intents (each paying its own recipient from its own ledger
account, all due at 09:00 UTC) in a fresh embedded Postgres, then runs one
scheduler tick at 09:00:05 with a fixed clock and prints how long
materialising the N occurrences took, how many occurrences per second were
evaluated (conditions read and stored) and turned into payout requests
(through `request_payout`, with its own balance check), and whether all N
were requested within the minute (the target: N = 10,000).

    .venv/bin/python bench/intents.py [--intents 10000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHAINSETTLE_LOG__LEVEL", "warning")

from db import create_pool  # noqa: E402
from settlement.intents import store  # noqa: E402
from settlement.intents.scheduler import IntentScheduler  # noqa: E402
from settlement.ledger.books import Posting, post_transaction  # noqa: E402
from tests.support.anvil import DEV_ACCOUNTS  # noqa: E402
from tests.support.api_data import api_settings, chain_cfg, seeded  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

UTC = timezone.utc
DUE = datetime(2028, 6, 1, 9, tzinfo=UTC)


async def main(n: int, concurrency: int) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    os.environ["CS_TEST_SIGNER_KEY"] = DEV_ACCOUNTS[1][1]
    os.environ["CS_TEST_SENDER_KEY"] = DEV_ACCOUNTS[2][1]
    cluster = PgCluster()
    await cluster.setup_template()
    url = await cluster.new_database()
    pool = await create_pool(url, min_size=4, max_size=2 * concurrency + 4)
    tmp = Path(tempfile.mkdtemp(prefix="cs-bench-intents-"))
    batcher = "0x" + "5a" * 20
    settings = api_settings(tmp, [chain_cfg("anvil")], payouts={"chains": [{
        "chain": "anvil", "batcher": batcher, "signer": {"key": "env:CS_TEST_SIGNER_KEY"},
        "sender": {"key": "env:CS_TEST_SENDER_KEY"}, "max_fee_per_gas": 10**11, "assets": [{"name": "native"}]}]})
    try:
        await seeded(pool)
        recipients = ["0x" + os.urandom(20).hex() for _ in range(n)]
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO assets (id, chain, name, kind, symbol, decimals) "
                               "VALUES ('anvil:native', 'anvil', 'native', 'native', 'ETH', 18) ON CONFLICT DO NOTHING")
            final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = 'anvil'")
            postings = [Posting(f"user:anvil:{r}", "anvil:native", -10**18) for r in recipients]
            postings.append(Posting("adjustment:anvil:seed", "anvil:native", n * 10**18))
            await post_transaction(conn, key="bench-seed", cause_kind="manual", cause={"bench": True}, chain="anvil",
                                   block_number=final, postings=postings, author="bench", reason="seed")
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(16)

        async def make(i: int, to: str) -> None:
            async with sem:
                await store.create_intent(pool, settings, {
                    "name": f"i{i}", "chain": "anvil", "asset": "native", "to": to, "amount": str(10**15),
                    "cron": "0 9 * * *", "timezone": "UTC", "start": "2028-01-01T00:00:00Z"}, "bench",
                    now=datetime(2028, 6, 1, 8, tzinfo=UTC))

        await asyncio.gather(*(make(i, r) for i, r in enumerate(recipients)))
        print(f"setup: {n} intents created in {time.perf_counter() - t0:.1f} s")

        clock_at = DUE.replace(second=5)
        s = IntentScheduler(pool, settings, clock=lambda: clock_at, concurrency=concurrency)
        t0 = time.perf_counter()
        made = await s.materialise()
        t1 = time.perf_counter()
        counts = await s.attempt_due()
        t2 = time.perf_counter()
        async with pool.acquire() as conn:
            requested = await conn.fetchval("SELECT count(*) FROM payout_requests")
            evaluated = await conn.fetchval("SELECT count(*) FROM intent_evaluations")
        total = t2 - t0
        print(f"materialised {made} occurrences in {t1 - t0:.2f} s ({made / (t1 - t0):.0f}/s)")
        print(f"evaluated {evaluated} and requested {requested} in {t2 - t1:.2f} s "
              f"({evaluated / (t2 - t1):.0f} evaluated/s, {requested / (t2 - t1):.0f} requested/s; "
              f"concurrency {concurrency}) {counts}")
        verdict = "yes" if requested == n and total < 60 else "NO"
        print(f"all {n} due in one minute requested within that minute: {verdict} ({total:.1f} s from due+5 s)")
    finally:
        await pool.close()
        await cluster.drop_database(url)
        await cluster.teardown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--intents", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    asyncio.run(main(a.intents, a.concurrency))
