"""Two `chainsettle run` processes on one database and concurrent API
clients racing transfers, linked transfers, holds (post / void through
either process, expiry sweeps in both) and payouts (from the app account
and users' own) against one hot app account with no overdraft (issue 25).

Throughout, a monitor reads every account's available balance: never below
its limit. At the end, once every payout is confirmed from final data and
every hold resolved: the balance rows agree with the postings and the
holds; each hold resolved once, as the one answer that changed it says;
every accepted transfer is booked and no refused one; the app account went
down by exactly what it paid and posted; each user received on chain
exactly what its paid requests say.

Operations: CHAINSETTLE_LEDGER_RACE_OPS (default 480).
"""

from __future__ import annotations

import asyncio
import os
import random

import aiohttp

from daemon.devchain import free_port
from settlement.ledger.transfers import account_balances
from tests.integration.settlement.payouts.evm.test_kill import kill, start_daemon, wait_for
from tests.integration.settlement.payouts.evm.test_pipeline import deploy_funded_batcher, head, payout_config
from tests.support.batcher import balance, fresh_address
from tests.support.config import write_config
from tests.support.ledger import balance_parts, fund

TOKEN = "ledger-race-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNIT = 10**15
ASSET = "anvil:native"
PRIZES = "app:prizes"
FUNDED = 80 * UNIT
USERS = 6
CLIENTS = 12
OPS = int(os.environ.get("CHAINSETTLE_LEDGER_RACE_OPS", "480"))


async def _post(session, urls, rng, path: str, body: dict | None) -> tuple[int, dict]:
    for _ in range(200):
        try:
            async with session.post(rng.choice(urls) + path, json=body, headers=AUTH) as resp:
                if resp.status == 429 or resp.status >= 500:
                    raise aiohttp.ClientError(str(resp.status))
                return resp.status, await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
            await asyncio.sleep(0.05)
    raise AssertionError(f"no answer for {path}")


async def test_two_processes_race_transfers_holds_and_payouts_on_one_account(anvil, pool, db_url, tmp_path):
    seed = int(os.environ.get("CHAINSETTLE_KILL_SEED") or int.from_bytes(os.urandom(4), "big"))
    rng = random.Random(seed)
    os.environ["CS_TEST_ADMIN_TOKEN"] = TOKEN
    batcher = deploy_funded_batcher(anvil, funds=50 * 10**18)
    start = head(anvil) + 1
    procs, urls = [], []
    for name in ("a", "b"):
        port = free_port()
        data = payout_config(anvil.url, batcher, start, max_recipients=8)
        data["api"] = {"listen": f"127.0.0.1:{port}", "admin_token": "env:CS_TEST_ADMIN_TOKEN",
                       "rate_limit_per_second": 100000.0, "rate_limit_burst": 100000}
        data["ledger"] = {"accounts": [{"code": PRIZES, "overdraft": "0"}]}
        procs.append((write_config(tmp_path / f"{name}.toml", data), tmp_path / f"{name}.log"))
        urls.append(f"http://127.0.0.1:{port}")
    users = [fresh_address().lower() for _ in range(USERS)]
    accounts = [PRIZES] + [f"user:anvil:{u}" for u in users]
    running = [start_daemon(cfg, db_url, log) for cfg, log in procs]
    answers: list[tuple[str, dict, int, dict]] = []
    holds: list[str] = []
    low: list[tuple[str, int]] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    try:
        anvil.rpc("evm_mine", [])
        await wait_for(pool, "SELECT final_number IS NOT NULL FROM chain_state WHERE chain = 'anvil'", 60)
        await fund(pool, PRIZES, FUNDED, asset=ASSET)
        async def mine() -> None:
            while not stop.is_set():
                anvil.rpc("evm_mine", [])
                await asyncio.sleep(0.3)

        async def monitor() -> None:
            while not stop.is_set():
                async with pool.acquire() as conn:
                    for a in accounts:
                        for r in await account_balances(conn, a):
                            if r["available"] < 0:
                                low.append((a, r["available"]))
                await asyncio.sleep(0.02)

        def op(n: int) -> tuple[str, dict | None]:
            u, v = rng.sample(users, 2)
            ua, va = f"user:anvil:{u}", f"user:anvil:{v}"
            amount = str(rng.randint(1, 3) * UNIT)
            kind = rng.random()
            if kind < 0.3:
                return "/v1/admin/ledger/transfers", {"transfers": [
                    {"id": f"t{n}", "debit_account": PRIZES, "credit_account": ua, "asset": ASSET, "amount": amount}]}
            if kind < 0.4:
                return "/v1/admin/ledger/transfers", {"transfers": [
                    {"id": f"l{n}a", "debit_account": PRIZES, "credit_account": ua, "asset": ASSET, "amount": amount},
                    {"id": f"l{n}b", "debit_account": ua, "credit_account": va, "asset": ASSET,
                     "amount": str(int(amount) + rng.choice([0, UNIT]))}]}
            if kind < 0.5:
                return "/v1/admin/ledger/transfers", {"transfers": [
                    {"id": f"r{n}", "debit_account": ua, "credit_account": PRIZES, "asset": ASSET, "amount": amount}]}
            if kind < 0.65:
                holds.append(f"h{n}")
                return "/v1/admin/ledger/holds", {"id": f"h{n}", "debit_account": PRIZES, "credit_account": ua,
                                                  "asset": ASSET, "amount": amount,
                                                  "timeout_seconds": rng.choice([0.3, 1.0, 30.0])}
            if kind < 0.8 and holds:
                h = rng.choice(holds)
                if rng.random() < 0.5:
                    return f"/v1/admin/ledger/holds/{h}/void", None
                return f"/v1/admin/ledger/holds/{h}/post", {"amount": rng.choice([None, str(UNIT)])}
            frm = PRIZES if rng.random() < 0.6 else ua
            return "/v1/admin/payouts", {"chain": "anvil", "asset": "native", "to": u, "amount": str(UNIT),
                                         "key": f"p{n}", "from_account": frm}

        async def client(session, k: int) -> None:
            for n in range(k, OPS, CLIENTS):
                path, body = op(n)
                if path.endswith(("/post", "/void")) and rng.random() < 0.5:
                    # The same hold resolved through both processes at once.
                    other = path.replace("/post", "/void") if path.endswith("/post") else path.replace(
                        "/void", "/post")
                    results = await asyncio.gather(_post(session, urls, rng, path, body),
                                                   _post(session, urls, rng, other, None))
                    answers.append((path, body, *results[0]))
                    answers.append((other, None, *results[1]))
                else:
                    answers.append((path, body, *await _post(session, urls, rng, path, body)))
                await asyncio.sleep(rng.uniform(0, 0.02))

        tasks += [asyncio.create_task(mine()), asyncio.create_task(monitor())]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await asyncio.gather(*(client(session, k) for k in range(CLIENTS)))
        await wait_for(pool, """
            SELECT NOT EXISTS (SELECT 1 FROM payout_batches WHERE state NOT IN ('confirmed', 'expired'))
               AND NOT EXISTS (SELECT 1 FROM payout_requests WHERE state IN ('pending', 'batched'))
               AND NOT EXISTS (SELECT 1 FROM ledger_holds WHERE state = 'pending' AND expires_at < now() - '2s'::interval)
            """, 180)
        async with pool.acquire() as conn:  # the long-timeout holds: void what is left, through the code
            left = [r["id"] for r in await conn.fetch(
                "SELECT id FROM ledger_holds WHERE state = 'pending' AND expires_at > now() + '5s'::interval")]
        async with aiohttp.ClientSession() as session:
            for h in left:
                status, _ = await _post(session, urls, rng, f"/v1/admin/ledger/holds/{h}/void", None)
                assert status == 200
        await wait_for(pool, "SELECT NOT EXISTS (SELECT 1 FROM ledger_holds WHERE state = 'pending')", 30)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in running:
            if p.poll() is None:
                kill(p)

    assert low == [], f"below the limit: {low[:5]} (seed {seed})"
    assert {s for _, _, s, _ in answers} <= {200, 201, 400, 404, 409, 422}, (seed, answers[:3])
    async with pool.acquire() as conn:
        booked = {r["id"] for r in await conn.fetch("SELECT id FROM ledger_transfers")}
        hold_rows = {r["id"]: r for r in await conn.fetch("SELECT * FROM ledger_holds")}
        requests = await conn.fetch("SELECT recipient, amount, state, from_account FROM payout_requests")
        fail_closed = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'payout.fail_closed'")
    for path, body, status, _ in answers:
        if path.endswith("/transfers"):
            ids = {t["id"] for t in body["transfers"]}
            assert (ids <= booked) if status in (200, 201) else not (ids & booked), (path, body, status)
    changed: dict[str, list[str]] = {}
    for path, _, status, answer in answers:
        if path.endswith(("/post", "/void")) and status == 200 and answer["changed"]:
            changed.setdefault(path.split("/")[-2], []).append(answer["hold"]["state"])
    for h, states in changed.items():
        assert len(states) == 1 and hold_rows[h]["state"] == states[0], (h, states)
    assert all(r["state"] != "pending" for r in hold_rows.values())
    parts = {a: await balance_parts(pool, a, ASSET) for a in accounts}  # rows agree with postings and holds
    assert all(p["available"] >= 0 and p["held"] == 0 and p["reserved"] == 0 for p in parts.values()), parts
    assert all(r["state"] == "paid" for r in requests)
    async with pool.acquire() as conn:
        flows = await conn.fetchrow("""
            SELECT COALESCE(sum((body ->> 'amount')::numeric) FILTER (WHERE body ->> 'debit_account' = $1), 0) AS out,
                   COALESCE(sum((body ->> 'amount')::numeric) FILTER (WHERE body ->> 'credit_account' = $1), 0) AS back
            FROM ledger_transfers""", PRIZES)
    posted = sum(int(r["posted_amount"]) for r in hold_rows.values() if r["state"] == "posted")
    paid_from_prizes = sum(int(r["amount"]) for r in requests if r["from_account"] == PRIZES)
    assert parts[PRIZES]["final"] == FUNDED - int(flows["out"]) + int(flows["back"]) - posted - paid_from_prizes
    for u in users:
        assert balance(anvil, u) == sum(int(r["amount"]) for r in requests if r["recipient"] == u), u
    assert fail_closed == 0
    print(f"\nledger race: {len(answers)} answers, {len(booked)} transfers, {len(hold_rows)} holds "
          f"({posted // UNIT} units posted), {len(requests)} payouts ({paid_from_prizes // UNIT} units from "
          f"{PRIZES}), seed {seed}")
