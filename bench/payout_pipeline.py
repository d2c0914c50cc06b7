"""Payout pipeline throughput: N payout requests to distinct recipients, from
request to confirmed from final data, on anvil mining a block every second.

anvil runs with `--block-time 1` (default gas limit, 30M); `chainsettle run`
(a subprocess on a fresh embedded-Postgres database) follows it over `ws`
newHeads with the anvil preset's finality (depth 5) and runs the payout
pipeline for an ERC-20 token paid from the PayoutBatcher's own balance (the
common case). Everything else of [payouts] is the daemon's default
(poll_interval 1 s, max_recipients 100, gas_share 0.3, batch_wait_seconds 0).
The API's per-client limits are raised so that one client can push
--concurrency requests at once (the default allows 4 in flight and 20/s).

Set-up, not measured: the batcher is deployed and funded with tokens, and
once the chain has a final height one manual ledger adjustment credits each
recipient's user account with exactly what it will be paid, so admission's
balance check (require_balance, on by default) passes as it would for users
with deposits.

Measured: N requests (distinct fresh recipients, distinct amounts) are POSTed
to /v1/admin/payouts with --concurrency in flight; each request's submit time
is taken just before its POST. A poller reads, every 200 ms, the requests newly
`paid` (the state the confirmation hook sets from final BatchExecuted /
PayoutSent events) with the daemon's own time of that change (updated_at:
now() of the indexer's write transaction that books it, i.e. its start; the
time this poll first saw it is printed too, for scale). Reported: requests accepted/s (the
submit phase), confirmed/s end to end (N / (last confirmed - first submit)),
p50 / p99 request-to-confirmed, batches and mean recipients per batch.

Verified on chain afterwards (exit status 1 when any check fails): every
recipient got exactly one token Transfer from the batcher, of exactly its
amount (all N, from the token's logs); balanceOf of a sample of recipients
(--sample, at least 200) equals its amount; the batcher's token balance fell
by exactly the sum and the total supply did not change; each request was
paid by exactly one batch item, and the batches executed on chain
(BatchExecuted) are exactly the confirmed ones, each once.

    .venv/bin/python bench/payout_pipeline.py [--requests 10000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from eth_utils import keccak, to_checksum_address

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live import wait_api  # noqa: E402
from bench.results import record  # noqa: E402
from daemon.devchain import free_port  # noqa: E402
from db import create_pool  # noqa: E402
from settlement.ledger.books import Posting, book_adjustment  # noqa: E402
from settlement.payouts.evm import batcher_abi  # noqa: E402
from settlement.payouts.requests import user_account  # noqa: E402
from tests.support.anvil import DEV_ACCOUNTS, Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import call, deploy, deploy_token, token_balance, token_transfer  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

OWNER = DEV_ACCOUNTS[0][0]
SIGNER, SIGNER_KEY = DEV_ACCOUNTS[1]
SENDER, SENDER_KEY = DEV_ACCOUNTS[2]
TOKEN_ADMIN = "payout-pipeline-bench-admin-token-0123456789"
GWEI = 10**9
CHAIN = "anvil"
ASSET = "Token"
TRANSFER_TOPIC = "0x" + keccak(b"Transfer(address,address,uint256)").hex()


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def topic_address(addr: str) -> str:
    return "0x" + "0" * 24 + addr.lower()[2:]


def get_logs(url: str, address: str, topics: list, start: int) -> list[dict]:
    """All logs from `start` to latest, in windows (the node caps a response)."""
    head = int(rpc_sync(url, "eth_blockNumber"), 16)
    out: list[dict] = []
    for lo in range(start, head + 1, 2000):
        hi = min(head, lo + 1999)
        out += rpc_sync(url, "eth_getLogs", [{"address": address, "topics": topics, "fromBlock": hex(lo),
                                              "toBlock": hex(hi)}], timeout=60)
    return out


def daemon_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, config: Path, db_url: str, log: Path) -> None:
        env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning",
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.log = log
        self.out = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                                     env=env, cwd=ROOT, stdout=self.out, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"daemon exited with {self.proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


async def wait_sql(pool, daemon: Daemon, sql: str, *args, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        daemon.check()
        v = await pool.fetchval(sql, *args)
        if v:
            return v
        await asyncio.sleep(0.2)
    raise SystemExit(f"timed out waiting for: {sql}\n{daemon.tail()}")


async def submit_all(api: str, amounts: dict[str, int], concurrency: int,
                     submitted: dict[str, float], accepted: dict[str, float]) -> dict[str, int]:
    """POST every request with `concurrency` in flight; the key is the recipient.

    429/503 (the API's own back-pressure) are asked again after a short pause,
    as a client would, and counted; any other non-201 answer is a failure."""
    queue = list(amounts.items())
    counts = {"retried": 0, "failed": 0}
    headers = {"Authorization": f"Bearer {TOKEN_ADMIN}"}
    next_i = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_i
        while next_i < len(queue):
            to, amount = queue[next_i]
            next_i += 1
            body = {"chain": CHAIN, "asset": ASSET, "to": to, "amount": str(amount), "key": f"bench:{to}"}
            submitted[to] = time.time()
            for _ in range(100):
                async with session.post(f"{api}/v1/admin/payouts", json=body, headers=headers) as r:
                    text = await r.read()
                    if r.status in (429, 503):
                        counts["retried"] += 1
                        await asyncio.sleep(0.05)
                        continue
                    if r.status != 201:
                        counts["failed"] += 1
                        if counts["failed"] <= 5:
                            print(f"request for {to} answered {r.status}: {text[:300]!r}")
                    else:
                        accepted[to] = time.time()
                    break

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*[worker(session) for _ in range(concurrency)])
    return counts


async def poll_paid(pool, paid: dict[str, tuple[float, float]], stop: asyncio.Event, every: float = 0.2) -> None:
    """Newly paid requests every `every` s: (daemon's time of the change, time observed here).

    updated_at is set by the one write transaction that marks a request paid;
    a window of 30 s behind the newest seen covers transactions that started
    earlier but committed later."""
    watermark = 0.0
    while not stop.is_set():
        rows = await pool.fetch(
            "SELECT recipient, extract(epoch FROM updated_at)::float8 AS at FROM payout_requests "
            "WHERE state = 'paid' AND updated_at >= to_timestamp($1)", watermark - 30.0)
        now = time.time()
        for r in rows:
            if r["recipient"] not in paid:
                paid[r["recipient"]] = (r["at"], now)
                watermark = max(watermark, r["at"])
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


async def verify(url: str, pool, token: str, batcher: str, start: int, amounts: dict[str, int],
                 before: dict[str, int], sample: int) -> list[str]:
    """On-chain and database checks; the problems found (empty: all good)."""
    problems: list[str] = []
    total = sum(amounts.values())
    # Every Transfer the batcher made, from the token's own logs: one per recipient, of its amount.
    logs = get_logs(url, token, [TRANSFER_TOPIC, topic_address(batcher)], start)
    got: dict[str, list[int]] = {}
    for lg in logs:
        to = "0x" + lg["topics"][2][-40:]
        got.setdefault(to, []).append(int(lg["data"], 16))
    twice = [a for a, v in got.items() if len(v) > 1]
    wrong = [a for a in amounts if got.get(a) != [amounts[a]]]
    strangers = [a for a in got if a not in amounts]
    print(f"verify: {len(logs)} Transfers from the batcher to {len(got)} addresses; "
          f"paid twice {len(twice)}, missing or wrong amount {len(wrong)}, not requested {len(strangers)}")
    if twice:
        problems.append(f"{len(twice)} recipients got more than one transfer, e.g. {twice[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} recipients did not get exactly one transfer of their amount, e.g. {wrong[:3]}")
    if strangers:
        problems.append(f"{len(strangers)} transfers to addresses never requested, e.g. {strangers[:3]}")
    # balanceOf of a sample (fresh addresses: their whole balance is the payout).
    rng = random.Random(11)
    picked = rng.sample(sorted(amounts), min(len(amounts), max(200, sample)))
    bad = [a for a in picked if token_balance(url, token, a) != amounts[a]]
    print(f"verify: balanceOf of {len(picked)} sampled recipients: {len(picked) - len(bad)} exact")
    if bad:
        problems.append(f"{len(bad)} of {len(picked)} sampled balances differ from the amount, e.g. {bad[:3]}")
    moved = before["batcher"] - token_balance(url, token, batcher)
    supply = int(call(url, token, "totalSupply()", [], []), 16)
    print(f"verify: batcher token balance fell by {moved:,} (requested total {total:,}); "
          f"total supply {'unchanged' if supply == before['supply'] else 'CHANGED'}")
    if moved != total:
        problems.append(f"batcher balance fell by {moved}, requests total {total}")
    if supply != before["supply"]:
        problems.append(f"total supply changed: {before['supply']} -> {supply}")
    # Database: each request paid by exactly one item; executed batches = confirmed batches, each once.
    per_request = await pool.fetch(
        "SELECT r.recipient, r.state, count(i.*) FILTER (WHERE i.outcome = 'sent') AS n "
        "FROM payout_requests r LEFT JOIN payout_items i ON i.request_id = r.id GROUP BY r.id")
    not_once = [r["recipient"] for r in per_request if r["n"] != 1 or r["state"] != "paid"]
    if len(per_request) != len(amounts) or not_once:
        problems.append(f"{len(per_request)} requests stored; {len(not_once)} not paid by exactly one item")
    confirmed = {r["batch_id"] for r in await pool.fetch("SELECT batch_id FROM payout_batches WHERE state = 'confirmed'")}
    topic = "0x" + batcher_abi.event_topics()["BatchExecuted"].hex()
    executed = [lg["topics"][1] for lg in get_logs(url, batcher, [topic], start)]
    print(f"verify: {len(executed)} BatchExecuted on chain ({len(set(executed))} distinct), "
          f"{len(confirmed)} batches confirmed in the database; {len(per_request) - len(not_once)} requests "
          f"paid by exactly one item")
    if len(set(executed)) != len(executed) or set(executed) != confirmed:
        problems.append("the batches executed on chain are not exactly the confirmed ones, each once")
    return problems


async def run(args, tmp: Path) -> tuple[list, dict, list[str]]:
    cluster = PgCluster()
    await cluster.setup_template()
    daemon = None
    try:
        with Anvil("--block-time", "1") as anvil:
            url = anvil.url
            token = deploy_token(url).lower()
            batcher = to_checksum_address(deploy(url, "PayoutBatcher", OWNER, SIGNER)).lower()
            total = 0
            rng = random.Random(5)
            amounts: dict[str, int] = {}
            while len(amounts) < args.requests:  # distinct fresh recipients, distinct amounts
                to = "0x" + keccak(rng.randbytes(32))[12:].hex()
                amounts.setdefault(to, 10**18 + len(amounts) * 10**9 + rng.randrange(10**9))
            total = sum(amounts.values())
            token_transfer(url, token, OWNER, batcher, total + 10**18)
            start = int(rpc_sync(url, "eth_blockNumber"), 16) + 1
            os.environ["CS_BENCH_SIGNER_KEY"] = SIGNER_KEY
            os.environ["CS_BENCH_SENDER_KEY"] = SENDER_KEY
            os.environ["CS_BENCH_ADMIN_TOKEN"] = TOKEN_ADMIN
            port = free_port()
            payouts: dict = {"chains": [{
                "chain": CHAIN, "batcher": batcher, "signer": {"key": "env:CS_BENCH_SIGNER_KEY"},
                "sender": {"key": "env:CS_BENCH_SENDER_KEY"}, "max_fee_per_gas": 100 * GWEI,
                "assets": [{"name": ASSET}]}]}
            if args.payout_poll_interval is not None:
                payouts["poll_interval"] = args.payout_poll_interval
            if args.max_recipients is not None:
                payouts["max_recipients"] = args.max_recipients
            data = {
                "api": {"listen": f"127.0.0.1:{port}", "admin_token": "env:CS_BENCH_ADMIN_TOKEN",
                        "rate_limit_per_second": 1_000_000.0, "rate_limit_burst": 1_000_000,
                        "max_inflight_per_client": 100_000},
                "chains": [evm_chain(
                    CHAIN, url, ws=anvil.ws_url, start_block=start,
                    contracts=[{"name": "batcher", "address": batcher, "abi": "payout_batcher", "start_block": start},
                               {"name": ASSET, "address": token, "abi": "erc20", "start_block": start}],
                    wallets=[{"name": "batcher", "address": batcher, "assets": ["native", ASSET]},
                             {"name": "sender", "address": SENDER, "assets": ["native"]}])],
                "payouts": payouts,
            }
            config = write_config(tmp / "chainsettle.toml", data)
            db_url = await cluster.new_database()
            pool = await create_pool(db_url, min_size=1, max_size=4)
            daemon = Daemon(config, db_url, tmp / "daemon.log")
            api = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:
                await wait_api(s, api, daemon.check, tail=daemon.tail)
            spy = None
            if args.profile:
                # Folded stacks of the daemon (all threads, idle excluded), from here to the last confirmation.
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-r", "100", "-f",
                                        "raw", "-o", args.profile, "--pid", str(daemon.proc.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            final = await wait_sql(pool, daemon, "SELECT final_number FROM chain_state WHERE chain = $1", CHAIN)
            # Set-up: the ledger owes each recipient its amount (one manual adjustment at the final height).
            aid = f"{CHAIN}:{ASSET}"
            await wait_sql(pool, daemon, "SELECT count(*) > 0 FROM assets WHERE id = $1", aid)
            postings = [Posting(user_account(CHAIN, a), aid, -v) for a, v in amounts.items()]
            postings.append(Posting(f"adjustment:{CHAIN}:bench", aid, total))
            await book_adjustment(pool, chain=CHAIN, postings=postings, author="bench",
                                  reason="payout pipeline benchmark: what the ledger owes each recipient")
            before = {"batcher": token_balance(url, token, batcher),
                      "supply": int(call(url, token, "totalSupply()", [], []), 16)}
            print(f"set-up: anvil --block-time 1, batcher {batcher}, token {token}, final height {final}, "
                  f"{len(amounts)} recipients credited {total:,} base units")

            submitted: dict[str, float] = {}
            accepted: dict[str, float] = {}
            paid: dict[str, tuple[float, float]] = {}
            stop = asyncio.Event()
            poller = asyncio.create_task(poll_paid(pool, paid, stop))
            t0 = time.time()
            cpu0 = daemon_cpu_seconds(daemon.proc.pid)
            counts = await submit_all(api, amounts, args.concurrency, submitted, accepted)
            t_submitted = time.time()
            daemon.check()
            print(f"submit: {len(accepted)} accepted in {t_submitted - t0:.1f} s "
                  f"({len(accepted) / (max(accepted.values()) - t0):,.0f}/s), {counts['retried']} retried "
                  f"after 429/503, {counts['failed']} refused")
            # Until every accepted request is paid, or nothing moved for --stall seconds.
            last_n, last_change = -1, time.monotonic()
            while len(paid) < len(accepted):
                daemon.check()
                if len(paid) != last_n:
                    last_n, last_change = len(paid), time.monotonic()
                elif time.monotonic() - last_change > args.stall:
                    print(f"no request confirmed for {args.stall:.0f} s; stopping with {len(paid)} of "
                          f"{len(accepted)}:\n{daemon.tail()}")
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.3)
            stop.set()
            await poller
            t_done = time.time()
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            batches = await pool.fetchrow(
                "SELECT count(*) AS n, avg(item_count)::float8 AS mean, max(item_count) AS biggest, "
                "count(DISTINCT executed_block) AS blocks FROM payout_batches WHERE state = 'confirmed'")
            sizes = {r["bucket"]: r["n"] for r in await pool.fetch(
                "SELECT CASE WHEN item_count < 10 THEN '1-9' WHEN item_count < 50 THEN '10-49' "
                "WHEN item_count < 100 THEN '50-99' ELSE '100+' END AS bucket, count(*) AS n "
                "FROM payout_batches WHERE state = 'confirmed' GROUP BY 1")}
            print("batch sizes: " + ", ".join(f"{k}: {sizes.get(k, 0)}" for k in ("1-9", "10-49", "50-99", "100+")))
            cpu = daemon_cpu_seconds(daemon.proc.pid) - cpu0
            print(f"daemon CPU from first submit to last confirmation: {cpu:.1f} s "
                  f"({cpu / max(1, len(paid)) * 1000:.1f} ms per payout)")
            states = {r["state"]: r["n"] for r in await pool.fetch(
                "SELECT state, count(*) AS n FROM payout_requests GROUP BY 1")}
            daemon.stop()
            daemon_log = daemon.tail()
            daemon = None
            problems = await verify(url, pool, token, batcher, start, amounts, before, args.sample)
            if counts["failed"]:
                problems.append(f"{counts['failed']} requests refused by the API")
            if len(paid) < len(amounts):
                problems.append(f"only {len(paid)} of {len(amounts)} requests confirmed (states {states})")
            await pool.close()
            await cluster.drop_database(db_url)
    finally:
        if daemon is not None:
            daemon.stop()
        await cluster.teardown()

    n = len(amounts)
    lat = [paid[a][0] - submitted[a] for a in paid]
    lat_seen = [paid[a][1] - submitted[a] for a in paid]
    first_submit = min(submitted.values())
    last_confirmed = max((v[0] for v in paid.values()), default=t_done)
    accept_rate = len(accepted) / (max(accepted.values()) - first_submit)
    e2e = len(paid) / (last_confirmed - first_submit)
    p50, p99 = pct(lat, 50), pct(lat, 99)
    print(f"requests accepted {accept_rate:,.0f}/s; confirmed {e2e:,.1f}/s end to end "
          f"({len(paid)} in {last_confirmed - first_submit:.1f} s); request -> confirmed p50 {p50:.2f} s "
          f"p99 {p99:.2f} s (observed by the 200 ms poll: p50 {pct(lat_seen, 50):.2f} s p99 {pct(lat_seen, 99):.2f} s); "
          f"{batches['n']} batches, mean {batches['mean'] or 0:.1f} recipients (max {batches['biggest']}), "
          f"in {batches['blocks']} blocks")
    verdict = "OK" if not problems else "FAILED: " + "; ".join(problems)
    print(f"verification: {verdict}")
    rows = [
        ("requests accepted (submit phase)", round(accept_rate), "req/s",
         f"{n} to distinct recipients, {args.concurrency} in flight"),
        ("request -> confirmed, end to end", round(e2e, 1), "payouts/s", f"{len(paid)} / (last confirmed - first submit)"),
        ("request -> confirmed p50", round(p50, 2) if p50 is not None else None, "s", "anvil 1 s blocks, depth 5"),
        ("request -> confirmed p99", round(p99, 2) if p99 is not None else None, "s", ""),
        ("batches", batches["n"], "batches", f"in {batches['blocks']} blocks"),
        ("mean recipients per batch", round(batches["mean"] or 0, 1), "recipients", f"max {batches['biggest']}"),
        ("verification (amounts exact, none paid twice)", "ok" if not problems else "FAILED", "", ""),
    ]
    extra = {"args": {"requests": n, "concurrency": args.concurrency, "payout_poll_interval": args.payout_poll_interval,
                      "max_recipients": args.max_recipients},
             "submit_retried": counts["retried"], "states": states, "batch_sizes": sizes,
             "daemon_cpu_seconds": round(cpu, 1), "problems": problems}
    if problems:
        print(daemon_log)
    return rows, extra, problems


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--sample", type=int, default=500, help="recipients checked by balanceOf (at least 200)")
    ap.add_argument("--stall", type=float, default=120.0, help="give up after this long without a confirmation")
    ap.add_argument("--payout-poll-interval", type=float, default=None, help="[payouts] poll_interval (default: the daemon's)")
    ap.add_argument("--profile", metavar="FILE", help="record the daemon with py-spy (folded stacks) into FILE")
    ap.add_argument("--max-recipients", type=int, default=None, help="[payouts] max_recipients (default: the daemon's)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows, extra, problems = await run(args, Path(tmp))
    record("payout-pipeline", rows, **extra)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    asyncio.run(main())
