"""Wallet sessions and the WebSocket feed: verify and refresh requests/s, WebSocket fan-out.

`chainsettle run` (a subprocess) follows an anvil chain with a token. Then:
- sign-in verify: --signins challenges are asked for and signed first (an EOA,
  EIP-191), then verified by --concurrency clients at once: verifies/s (each
  one consumes its nonce, recovers the signer, starts a session);
- refresh: each session's refresh token rotated --rotations times in a row,
  --concurrency sessions at once: refreshes/s (each one locks the token row,
  marks it used and stores its successor, in Postgres);
- WebSocket fan-out: --ws-clients clients subscribe to the `feed` channel of
  /v1/ws, one Transfer to a fresh marker address is mined, and the time from
  its mining to each client's copy of its `chain_event` (p50, p99), as
  bench/api.py measures SSE.
The per-client limits of the API are raised in this config: one loopback
client is all of the load here. Figures, not pass/fail.

    .venv/bin/python bench/wallet.py [--ws-clients 1000] [--signins 400] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from eth_account import Account
from eth_account.messages import encode_defunct

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.live import pct, popen_alive, start_daemon, stop_daemon, wait_api  # noqa: E402
from bench.results import record  # noqa: E402
from daemon.devchain import free_port  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import batch_transfer, deploy_token  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

SIGNIN_KEY = "bench-wallet-signin-key-0123456789abcdef"


async def _gather_limited(n: int, jobs) -> list:
    sem = asyncio.Semaphore(n)

    async def one(job):
        async with sem:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


async def signins(api: str, count: int, concurrency: int) -> tuple[dict, list[dict]]:
    accounts = [Account.create() for _ in range(min(count, 50))]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def challenge(i: int):
            acct = accounts[i % len(accounts)]
            async with s.post(f"{api}/v1/auth/challenge", json={"chain": "bench", "address": acct.address}) as r:
                msg = (await r.json())["message"]
            sig = acct.sign_message(encode_defunct(text=msg)).signature.hex()
            return {"chain": "bench", "message": msg, "signature": "0x" + sig.removeprefix("0x")}

        signed = await _gather_limited(concurrency, [challenge(i) for i in range(count)])

        async def verify(body: dict):
            t = time.perf_counter()
            async with s.post(f"{api}/v1/auth/verify", json=body) as r:
                out = await r.json() if r.status == 200 else None
            return time.perf_counter() - t, out

        t0 = time.perf_counter()
        results = await _gather_limited(concurrency, [verify(b) for b in signed])
        elapsed = time.perf_counter() - t0
    lat = [x for x, _ in results]
    sessions = [out for _, out in results if out is not None]
    return {"ok": len(sessions), "rps": len(results) / elapsed, "p50_ms": 1000 * pct(lat, 50),
            "p99_ms": 1000 * pct(lat, 99)}, sessions


async def refreshes(api: str, sessions: list[dict], rotations: int, concurrency: int) -> dict:
    lat: list[float] = []
    failures = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        async def chain_of(session: dict):
            nonlocal failures
            token = session["refresh_token"]
            for _ in range(rotations):
                t = time.perf_counter()
                async with s.post(f"{api}/v1/auth/refresh", json={"refresh_token": token}) as r:
                    body = await r.json()
                lat.append(time.perf_counter() - t)
                if r.status != 200:
                    failures += 1
                    return
                token = body["refresh_token"]

        t0 = time.perf_counter()
        await _gather_limited(concurrency, [chain_of(x) for x in sessions])
        elapsed = time.perf_counter() - t0
    return {"count": len(lat), "failures": failures, "rps": len(lat) / elapsed, "p50_ms": 1000 * pct(lat, 50),
            "p99_ms": 1000 * pct(lat, 99)}


async def ws_fanout(api: str, node_url: str, token: str, clients: int) -> dict:
    arrived: list[float] = []
    ready = 0
    target: list[str] = []
    ws_url = api.replace("http://", "ws://") + "/v1/ws"

    async def client(s: aiohttp.ClientSession) -> None:
        nonlocal ready
        async with s.ws_connect(ws_url, max_msg_size=0) as ws:
            await ws.send_str(orjson.dumps({"op": "subscribe", "channels": ["feed"]}).decode())
            first = await ws.receive()
            if first.type != aiohttp.WSMsgType.TEXT or "subscribed" not in first.data:
                return
            ready += 1
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                if target and target[0] in msg.data:
                    arrived.append(time.perf_counter())
                    return

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        tasks = [asyncio.create_task(client(s)) for _ in range(clients)]
        t_wait = time.monotonic()
        while ready < clients and time.monotonic() - t_wait < 60:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        marker = "0x" + os.urandom(20).hex()
        target.append(marker)
        await asyncio.get_running_loop().run_in_executor(None, batch_transfer, node_url, token, [marker], [1])
        t0 = time.perf_counter()
        done, pending = await asyncio.wait(tasks, timeout=20)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    lat = [a - t0 for a in arrived]
    first = min(lat) if lat else None
    return {"connected": ready, "received": len(lat), "p50_ms": lat and 1000 * pct(lat, 50),
            "p99_ms": lat and 1000 * pct(lat, 99), "spread_ms": lat and 1000 * (pct(lat, 99) - first)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws-clients", type=int, default=1000)
    ap.add_argument("--signins", type=int, default=400)
    ap.add_argument("--rotations", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    rows = []
    try:
        with Anvil() as node, tempfile.TemporaryDirectory() as tmp:
            token = deploy_token(node.url)
            rpc_sync(node.url, "anvil_mine", ["0x5"])
            port = free_port()
            chain = evm_chain("bench", node.url, token, finality_depth=2, poll_interval=0.1)
            config = write_config(Path(tmp) / "wallet.toml", {
                "chains": [chain],
                "invoices": {"signin": {"domain": "bench.example", "uri": "https://bench.example",
                                        "token_key": "env:BENCH_SIGNIN_KEY"}}})
            slots = args.ws_clients + 100
            config.write_text(config.read_text().replace(
                'listen = "127.0.0.1:0"',
                f'listen = "127.0.0.1:{port}"\nrate_limit_per_second = 1000000.0\nrate_limit_burst = 1000000\n'
                f'max_inflight_per_client = 100000\nsse_max_clients = {slots}\nstream_slots_per_client = {slots}\n'
                'sse_poll_interval = 0.05'))
            db_url = await cluster.new_database()
            env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning", BENCH_SIGNIN_KEY=SIGNIN_KEY)
            proc = start_daemon(config, env)
            api = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession() as s:
                    await wait_api(s, api, lambda: popen_alive(proc))
                v, sessions = await signins(api, args.signins, args.concurrency)
                print(f"verify: {v['rps']:,.0f} requests/s ({v['ok']} signed in), p50 {v['p50_ms']:.1f} ms, "
                      f"p99 {v['p99_ms']:.1f} ms")
                r = await refreshes(api, sessions, args.rotations, args.concurrency)
                print(f"refresh: {r['rps']:,.0f} requests/s ({r['count']} rotations, {r['failures']} failed), "
                      f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
                f = await ws_fanout(api, node.url, token, args.ws_clients)
                print(f"WebSocket: {f['connected']} clients connected, {f['received']} got the event; "
                      f"p50 {f['p50_ms'] or 0:.1f} ms, p99 {f['p99_ms'] or 0:.1f} ms, "
                      f"first -> p99 client {f['spread_ms'] or 0:.1f} ms")
                rows += [("sign-in verify: requests/s", v["rps"], "req/s", f"{args.concurrency} at once, EOA"),
                         ("sign-in verify: p99", v["p99_ms"], "ms", ""),
                         ("refresh rotation: requests/s", r["rps"], "req/s", f"{args.concurrency} sessions at once"),
                         ("refresh rotation: p99", r["p99_ms"], "ms", f"{r['failures']} failed"),
                         (f"WebSocket fan-out to {f['connected']} clients: p50", f["p50_ms"], "ms",
                          f"{f['received']} received"),
                         (f"WebSocket fan-out to {f['connected']} clients: p99", f["p99_ms"], "ms",
                          "mined -> each client"),
                         ("WebSocket fan-out: first client -> p99 client", f["spread_ms"], "ms", "the fan-out alone")]
            finally:
                stop_daemon(proc)
                await cluster.drop_database(db_url)
    finally:
        await cluster.teardown()
    record("wallet", rows, args=vars(args))


if __name__ == "__main__":
    asyncio.run(main())
