"""Ledger transfers through the admin API: transfers/s (issue 25).

`chainsettle api` (a subprocess; --replicas of them on one database) over
a fresh database on this box's Postgres; one asyncio client process with
--clients concurrent connections posts:
- single transfers (1 per request) from ONE hot app account to users,
- single transfers spread over --accounts user accounts (random pairs),
- linked batches of --batch transfers (all or none), hot and spread,
- the hold / post round trip on the hot account (two requests each).
Every transfer is checked against its debit account's limit under that
account's balance-row lock: on the hot account every request waits for
the one before it to commit, so that row's lock hold time (statements +
commit, fsync included) bounds the hot figures. Figures, not pass/fail.

    .venv/bin/python bench/transfers.py [--seconds 6] [--clients 16] [--accounts 10000] [--batch 100] [--replicas 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live import pct, popen_alive, wait_api  # noqa: E402
from bench.results import record  # noqa: E402
from daemon.devchain import free_port  # noqa: E402
from db import create_pool  # noqa: E402
from indexer.store import Store  # noqa: E402
from settlement.ledger.books import Posting, post_transaction, sync_ledger  # noqa: E402
from tests.support.config import make_settings, write_config  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

TOKEN = "bench-transfers-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADERS = {**AUTH, "Content-Type": "application/json"}
CHAIN = "bench"
ASSET = f"{CHAIN}:native"
HOT = "app:hot"
SEED = f"adjustment:{CHAIN}:seed"
Q_SEED_USERS = """
WITH a AS (
    INSERT INTO ledger_accounts (code, kind) SELECT c, 'user' FROM unnest($1::text[]) c
    ON CONFLICT (code) DO UPDATE SET kind = EXCLUDED.kind RETURNING id, code
), t AS (
    INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, chain, block_number, author, reason)
    SELECT 'bench:seed:' || a.code, 'manual', '{}', 'bench', 10, 'bench', 'bench funds' FROM a
    RETURNING id, idempotency_key
)
INSERT INTO postings (transaction_id, account_id, asset_id, amount)
SELECT t.id, v.account_id, $2, v.amount
FROM t JOIN a ON t.idempotency_key = 'bench:seed:' || a.code
CROSS JOIN LATERAL (VALUES (a.id, -(10::numeric ^ 24)),
                           ((SELECT id FROM ledger_accounts WHERE code = $3), 10::numeric ^ 24)) AS v(account_id, amount)
"""


def user(i: int) -> str:
    return f"user:{CHAIN}:0x{i:040x}"


async def seed(db_url: str, settings, accounts: int) -> None:
    """The chain row and asset, a final height, and chain-derived funds: the hot account and every user."""
    pool = await create_pool(db_url, min_size=1, max_size=2)
    try:
        await Store(pool, CHAIN, []).ensure_chain("evm", 31337)
        async with pool.acquire() as conn:
            await sync_ledger(conn, settings, CHAIN)
            await conn.execute("UPDATE chain_state SET final_number = 10, cursor_number = 10 WHERE chain = $1", CHAIN)
            await post_transaction(conn, key="bench:seed", cause_kind="manual", cause={}, chain=CHAIN, block_number=10,
                                   postings=[Posting(HOT, ASSET, -10**30), Posting(SEED, ASSET, 10**30)],
                                   author="bench", reason="bench funds")
            # One deposit-like transaction of two postings per user, as the
            # chain would book them (one transaction of 10,000 postings would
            # skew the planner's statistics of postings.transaction_id).
            await conn.execute(Q_SEED_USERS, [user(i) for i in range(accounts)], ASSET, SEED)
            # Steady state: every account has touched the ledger before (its balance row exists).
            await conn.execute("INSERT INTO ledger_account_balances (account_id, asset_id) "
                               "SELECT id, $1 FROM ledger_accounts WHERE kind IN ('user', 'app')", ASSET)
            await conn.execute("ANALYZE")
    finally:
        await pool.close()


class Load:
    def __init__(self, apis: list[str], clients: int, seconds: float, accounts: int) -> None:
        self.apis, self.clients, self.seconds, self.accounts = apis, clients, seconds, accounts
        self.n = 0

    def next_id(self, tag: str) -> str:
        self.n += 1
        return f"{tag}-{self.n}-{os.getpid()}"

    def transfer(self, rng: random.Random, hot: bool, tag: str) -> dict:
        if hot:
            debit, credit = HOT, user(rng.randrange(self.accounts))
        else:
            a, b = rng.sample(range(self.accounts), 2)
            debit, credit = user(a), user(b)
        return {"id": self.next_id(tag), "debit_account": debit, "credit_account": credit, "asset": ASSET,
                "amount": "1"}

    async def run(self, name: str, make, per_request: int) -> dict:
        """`make(rng)` -> list of (path, body) posted in order as one unit of work."""
        lat: list[float] = []
        errors = 0
        done = 0
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as s:
            deadline = time.monotonic() + self.seconds

            async def client(k: int) -> None:
                nonlocal errors, done
                rng = random.Random(k)
                api = self.apis[k % len(self.apis)]
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    for path, body in make(rng):
                        # orjson: the client shares this box's two cores with what it measures.
                        async with s.post(api + path, data=orjson.dumps(body), headers=HEADERS) as r:
                            await r.read()
                            if r.status not in (200, 201):
                                errors += 1
                    lat.append(time.perf_counter() - t0)
                    done += 1

            t0 = time.monotonic()
            await asyncio.gather(*(client(k) for k in range(self.clients)))
            elapsed = time.monotonic() - t0
        rate = done * per_request / elapsed
        unit = "round trips/s" if name.startswith("hold") else "transfers/s"
        print(f"{name:<44} {rate:>9.0f} {unit:<13}   p50 {1000 * pct(lat, 50):6.1f} ms   "
              f"p99 {1000 * pct(lat, 99):6.1f} ms   errors {errors}")
        return {"rate": rate, "p50": 1000 * pct(lat, 50), "p99": 1000 * pct(lat, 99), "errors": errors}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--accounts", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=1, help="API processes on the one database")
    ap.add_argument("--only", help="run only the cases whose name contains this")
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    procs: list[subprocess.Popen] = []
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db_url = await cluster.new_database()
            data = {"database": {"url": db_url},
                    "chains": [{"name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:9"]}],
                    "ledger": {"accounts": [{"code": HOT, "overdraft": "0"}]}}
            settings = make_settings(Path(tmp), data)
            await seed(db_url, settings, args.accounts)
            apis = []
            for i in range(args.replicas):
                port = free_port()
                config = write_config(Path(tmp) / f"api{i}.toml", {**data, "api": {
                    "listen": f"127.0.0.1:{port}", "admin_token": "env:CS_BENCH_TOKEN",
                    "rate_limit_per_second": 1000000.0, "rate_limit_burst": 1000000,
                    "max_inflight_per_client": 100000, "pool_max": args.clients}})
                env = dict(os.environ, CS_BENCH_TOKEN=TOKEN, CHAINSETTLE_LOG__LEVEL="warning")
                procs.append(subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "api"],
                                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
                apis.append(f"http://127.0.0.1:{port}")
            async with aiohttp.ClientSession() as s:
                for api, proc in zip(apis, procs):
                    await wait_api(s, api, lambda proc=proc: popen_alive(proc))
            load = Load(apis, args.clients, args.seconds, args.accounts)
            path = "/v1/admin/ledger/transfers"
            b = args.batch
            # A short warm-up: connections, prepared statements, caches.
            await Load(apis, args.clients, 1.0, args.accounts).run(
                "(warm-up)", lambda rng: [(path, {"transfers": [load.transfer(rng, False, "w")]})], 1)
            cases = [
                ("single, 1 hot account", lambda rng: [(path, {"transfers": [load.transfer(rng, True, "s")]})], 1),
                (f"single, spread over {args.accounts} accounts",
                 lambda rng: [(path, {"transfers": [load.transfer(rng, False, "s")]})], 1),
                (f"linked x{b}, 1 hot account",
                 lambda rng: [(path, {"transfers": [load.transfer(rng, True, "b") for _ in range(b)]})], b),
                (f"linked x{b}, spread over {args.accounts} accounts",
                 lambda rng: [(path, {"transfers": [load.transfer(rng, False, "b") for _ in range(b)]})], b),
            ]

            def hold_post(rng):
                h = load.transfer(rng, True, "h")
                return [("/v1/admin/ledger/holds", {**h, "timeout_seconds": 600}),
                        (f"/v1/admin/ledger/holds/{h['id']}/post", {})]

            cases.append(("hold + post round trips, 1 hot account", hold_post, 1))
            print(f"{args.clients} clients, {args.replicas} API process(es), {args.seconds:.0f} s each, "
                  f"{os.cpu_count()} cores, Postgres on this box (fsync on, synchronous_commit on)")
            for name, make, per in cases:
                if args.only and args.only not in name:
                    continue
                r = await load.run(name, make, per)
                unit = "round trips/s" if name.startswith("hold") else "transfers/s"
                rows.append((name, round(r["rate"]), unit, f"p99 {r['p99']:.1f} ms, errors {r['errors']}"))
            await cluster.drop_database(db_url)
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        await cluster.teardown()
    record("transfers", rows, args=vars(args))


if __name__ == "__main__":
    asyncio.run(main())
