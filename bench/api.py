"""API load: requests/s and p99 per route with wrk, and SSE fan-out to many clients.

`chainsettle run` (a subprocess) follows an anvil chain prefilled with
--blocks x 100 Transfers (one of the recipients is the configured hot
wallet, so the ledger has balances), and keeps following it during the
load: a batchTransfer of 100 every second. Debian's `wrk` (installed by
`make bench-api`) drives, per route, --connections connections for
--seconds seconds on one thread:
- /v1/status
- /v1/events first page (limit 100)
- /v1/events deep keyset page (the cursor of a row --deep rows in)
- /v1/accounts/{id}/balances of the hot wallet's ledger account
Then, with the traffic down to one Transfer a second, --sse-clients SSE
clients connect to /v1/stream and one more Transfer is mined: the time
from the block's mining to each client's copy of it (p50, p99). The
per-client limits of the API (20 requests/s, 4 in flight, 200 SSE
clients) are raised in this config: one loopback client is all of the
load here. Figures, not pass/fail.

    .venv/bin/python bench/api.py [--blocks 300] [--seconds 8] [--connections 16] [--sse-clients 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live import pct, popen_alive, start_daemon, stop_daemon, wait_api  # noqa: E402
from bench.results import record  # noqa: E402
from daemon.devchain import free_port  # noqa: E402
from tests.support.anvil import DEV_ACCOUNTS, Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import batch_transfer, deploy_token  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

HOT = DEV_ACCOUNTS[1][0].lower()


def wrk(url: str, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": float(rps.group(1)) if rps else None, "p50": ms("50%"), "p99": ms("99%"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


class Traffic(threading.Thread):
    """A batchTransfer of 100 every second while the load runs: the daemon keeps following.

    `light` drops it to one Transfer a second (the SSE phase): every stream
    client gets every event, and 1,000 clients reading 100 events a second
    each in this one process measured this process, not the daemon's fan-out.
    """

    def __init__(self, url: str, token: str, recipients: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.recipients = url, token, recipients
        self.halt = threading.Event()
        self.light = threading.Event()

    def run(self) -> None:
        rng = random.Random(3)
        while not self.halt.wait(1.0):
            to = self.recipients[:1] if self.light.is_set() else self.recipients
            batch_transfer(self.url, self.token, to, [rng.randrange(1, 10**18) for _ in to])


async def sse_fanout(api: str, node_url: str, token: str, clients: int) -> dict:
    arrived: list[float] = []
    ready = 0
    go = asyncio.Event()
    target: list[str] = []

    async def client(s: aiohttp.ClientSession) -> None:
        nonlocal ready
        async with s.get(f"{api}/v1/stream?chain=bench", timeout=aiohttp.ClientTimeout(total=None)) as r:
            if r.status != 200:
                return
            ready += 1
            # Raw chunks, not lines: the chain's traffic reaches every client
            # too (100 events a second each), and reading it line by line
            # in this one process fell behind by about 1 ms per client,
            # which then showed as fan-out latency. The tail kept from the
            # previous chunk finds a marker split between two chunks.
            tail = b""
            async for chunk in r.content.iter_any():
                if go.is_set() and target:
                    marker = target[0].encode()
                    if marker in tail + chunk:
                        arrived.append(time.perf_counter())
                        return
                    tail = chunk[-len(marker):]

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        tasks = [asyncio.create_task(client(s)) for _ in range(clients)]
        t_wait = time.monotonic()
        while ready < clients and time.monotonic() - t_wait < 30:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        go.set()
        loop = asyncio.get_running_loop()
        marker = "0x" + os.urandom(20).hex()
        target.append(marker)
        await loop.run_in_executor(None, batch_transfer, node_url, token, [marker], [1])
        t0 = time.perf_counter()
        done, pending = await asyncio.wait(tasks, timeout=15)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    lat = [a - t0 for a in arrived]
    first = min(lat) if lat else None
    return {"connected": ready, "received": len(lat), "p50_ms": pct(lat, 50) and 1000 * pct(lat, 50),
            "p99_ms": pct(lat, 99) and 1000 * pct(lat, 99),
            # The fan-out itself: from the first client's copy to the 99th percentile's.
            "spread_ms": lat and 1000 * (pct(lat, 99) - first)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=300, help="prefilled blocks of 100 Transfers")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--deep", type=int, default=20_000, help="rows before the deep keyset page")
    ap.add_argument("--sse-clients", type=int, default=1000)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: `apt-get install -y wrk` (make bench-api does)")
    cluster = PgCluster()
    await cluster.setup_template()
    rows = []
    try:
        with Anvil("--gas-limit", "100000000") as node, tempfile.TemporaryDirectory() as tmp:
            token = deploy_token(node.url)
            rng = random.Random(1)
            recipients = [HOT] + ["0x" + rng.randbytes(20).hex() for _ in range(99)]
            for _ in range(args.blocks):
                batch_transfer(node.url, token, recipients, [rng.randrange(1, 10**20) for _ in recipients])
            rpc_sync(node.url, "anvil_mine", ["0x5"])
            port = free_port()
            chain = evm_chain("bench", node.url, token, finality_depth=2, poll_interval=0.25,
                              wallets=[{"name": "hot", "address": HOT, "assets": ["Token"]}])
            config = write_config(Path(tmp) / "api.toml", {"chains": [chain]})
            config.write_text(config.read_text().replace(
                'listen = "127.0.0.1:0"',
                f'listen = "127.0.0.1:{port}"\nrate_limit_per_second = 1000000.0\nrate_limit_burst = 1000000\n'
                f'max_inflight_per_client = 100000\nsse_max_clients = {args.sse_clients + 100}\n'
                # Every bench stream comes from one address: let it hold them all.
                f'stream_slots_per_client = {args.sse_clients + 100}\n'
                # Balances are private by default (read scopes): the bench publishes them.
                'public = ["accounts"]'))
            db_url = await cluster.new_database()
            env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
            proc = start_daemon(config, env)
            api = f"http://127.0.0.1:{port}"
            traffic = Traffic(node.url, token, recipients)
            try:
                async with aiohttp.ClientSession() as s:
                    await wait_api(s, api, lambda: popen_alive(proc))
                    want = args.blocks * 100
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 120:  # the daemon's own backfill first
                        async with s.get(f"{api}/v1/events?chain=bench&order=desc&limit=1") as r:
                            top = orjson.loads(await r.read())["events"]
                        if top and top[0]["id"] >= want:
                            break
                        await asyncio.sleep(0.5)
                    cursor, seen = None, 0
                    while seen < args.deep:
                        q = f"{api}/v1/events?chain=bench&limit=500" + (f"&cursor={quote(cursor)}" if cursor else "")
                        async with s.get(q) as r:
                            page = orjson.loads(await r.read())
                        seen += len(page["events"])
                        cursor = page["next"]
                        if cursor is None:
                            break
                    account = quote(f"wallet:bench:{HOT}", safe="")
                    async with s.get(f"{api}/v1/accounts/{account}/balances") as r:
                        if r.status != 200:
                            raise SystemExit(f"balances: HTTP {r.status}: {(await r.read())[:300]!r}")
                traffic.start()
                routes = [("/v1/status", "/v1/status"),
                          ("/v1/events first page", "/v1/events?chain=bench&limit=100"),
                          (f"/v1/events keyset page {seen:,} rows in", f"/v1/events?chain=bench&limit=100&cursor={quote(cursor or '')}"),
                          ("/v1/accounts/{id}/balances", f"/v1/accounts/{account}/balances")]
                loop = asyncio.get_running_loop()
                for label, path in routes:
                    w = await loop.run_in_executor(None, wrk, api + path, args.seconds, args.connections)
                    print(f"{label}: {w['rps']:,.0f} requests/s, p50 {w['p50']} ms, p99 {w['p99']} ms, non-2xx {w['non2xx']}")
                    rows += [(f"{label}: requests/s", w["rps"], "req/s", f"{args.connections} connections, wrk"),
                             (f"{label}: p99", w["p99"], "ms", f"non-2xx: {w['non2xx']}")]
                traffic.light.set()
                await asyncio.sleep(2)  # the last full block's events are out before clients connect
                f = await sse_fanout(api, node.url, token, args.sse_clients)
                print(f"SSE: {f['connected']} clients connected, {f['received']} got the event; "
                      f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, first -> p99 client {f['spread_ms']:.1f} ms")
                rows += [(f"SSE fan-out to {f['connected']} clients: p50", f["p50_ms"], "ms", f"{f['received']} received"),
                         (f"SSE fan-out to {f['connected']} clients: p99", f["p99_ms"], "ms", "mined -> each client"),
                         ("SSE fan-out: first client -> p99 client", f["spread_ms"], "ms",
                          "the fan-out alone (the rest is follow + commit)")]
            finally:
                traffic.halt.set()
                stop_daemon(proc)
                traffic.join(10)
                await cluster.drop_database(db_url)
    finally:
        await cluster.teardown()
    record("api", rows, args=vars(args))


if __name__ == "__main__":
    asyncio.run(main())
