"""Live latency: from a block's appearance at the node to its rows in /v1/events and on the SSE feed.

anvil mines on command (`--no-mining` + `evm_mine`) once a second, each block
holding one batchTransfer of --per-block Transfers; `chainsettle run` (a
subprocess, its API on a loopback port) follows it through `ws` newHeads,
then through polling. A block "appears" when `evm_mine` answers. Two
observers in this process:
- SSE: one client on /v1/stream; the time its first chain_event of block N arrives;
- /v1/events: polled every --probe-ms for the newest block; the time block N is first seen.
With --reorg-every K, every K-th block is followed by `anvil_reorg` of depth
1, 2, 3 (in turn) into empty blocks; the rollback's latency is from the reorg's
answer to /v1/events no longer showing events above the common ancestor.
Prints p50 / p99 per mode. Figures, not pass/fail.

    .venv/bin/python bench/live.py [--blocks 300] [--per-block 100] [--modes ws,poll] [--poll-interval 0.5]
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
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import record  # noqa: E402
from daemon.devchain import calldata, free_port  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import DEPLOYER, deploy_token  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def rpc(session: aiohttp.ClientSession, url: str, method: str, params: list | None = None):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    async with session.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as r:
        doc = orjson.loads(await r.read())
    if "error" in doc:
        raise RuntimeError(f"{method}: {doc['error']}")
    return doc["result"]


async def sse_watch(session, api: str, seen: dict[int, float], stop: asyncio.Event) -> None:
    async with session.get(f"{api}/v1/stream?chain=bench", timeout=aiohttp.ClientTimeout(total=None)) as r:
        event = None
        async for raw in r.content:
            if stop.is_set():
                return
            line = raw.rstrip(b"\n")
            if line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"data: ") and event == b"chain_event":
                n = orjson.loads(line[6:])["block_number"]
                seen.setdefault(n, time.perf_counter())


async def events_probe(session, api: str, seen: dict[int, float], stop: asyncio.Event, every: float,
                       newest: list[int]) -> None:
    url = f"{api}/v1/events?chain=bench&order=desc&limit=1"
    while not stop.is_set():
        async with session.get(url) as r:
            if r.status == 200:
                rows = orjson.loads(await r.read())["events"]
                now = time.perf_counter()
                top = rows[0]["block_number"] if rows else -1
                newest[0] = top
                seen.setdefault(top, now)
        await asyncio.sleep(every)


def start_daemon(config: Path, env: dict) -> subprocess.Popen:
    """`chainsettle run` on `config`; its stderr is kept for popen_alive."""
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_daemon(proc: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it has not exited within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def popen_alive(proc: subprocess.Popen) -> None:
    """Raise with its stderr if the daemon process has exited (the check wait_api takes)."""
    if proc.poll() is not None:
        raise SystemExit(f"daemon exited: {proc.stderr.read().decode()[-2000:]}")


async def wait_api(session, api: str, alive: Callable[[], None], timeout: float = 60.0,
                   tail: Callable[[], str] = str) -> None:
    """Until /v1/status answers 200; `alive()` raises when the daemon has died meanwhile."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        alive()
        try:
            async with session.get(f"{api}/v1/status") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"daemon API did not come up\n{tail()}")


async def one_mode(cluster: PgCluster, mode: str, args, tmp: Path) -> dict:
    with Anvil("--no-mining", "--gas-limit", "100000000") as node:
        token = deploy_on_demand(node.url)
        ws = node.url.replace("http://", "ws://")
        port = free_port()
        chain = evm_chain("bench", node.url, token, finality_depth=5)
        if mode == "ws":
            chain["ws"] = ws
        chain["poll_interval"] = args.poll_interval
        config = write_config(tmp / f"live-{mode}.toml", {"chains": [chain]})
        text = config.read_text().replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
        config.write_text(text)
        db_url = await cluster.new_database()
        env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
        proc = start_daemon(config, env)
        api = f"http://127.0.0.1:{port}"
        rng = random.Random(7)
        recipients = ["0x" + rng.randbytes(20).hex() for _ in range(args.per_block)]
        data = calldata("batchTransfer(address[],uint256[])", ["address[]", "uint256[]"],
                        [recipients, [rng.randrange(1, 10**18) for _ in recipients]])
        appeared: dict[int, float] = {}
        sse_seen: dict[int, float] = {}
        api_seen: dict[int, float] = {}
        rollbacks: list[float] = []
        newest = [-1]
        stop = asyncio.Event()
        try:
            async with aiohttp.ClientSession() as s:
                await wait_api(s, api, lambda: popen_alive(proc))
                tasks = [asyncio.create_task(sse_watch(s, api, sse_seen, stop)),
                         asyncio.create_task(events_probe(s, api, api_seen, stop, args.probe_ms / 1000, newest))]
                await asyncio.sleep(1.0)
                depth_cycle = 0
                t_next = time.perf_counter()
                for i in range(args.blocks):
                    await rpc(s, node.url, "eth_sendTransaction", [{"from": DEPLOYER, "to": token, "data": data,
                                                                    "gas": hex(30_000 + 40_000 * args.per_block)}])
                    await rpc(s, node.url, "evm_mine")
                    now = time.perf_counter()
                    n = int(await rpc(s, node.url, "eth_blockNumber"), 16)
                    appeared[n] = now
                    if args.reorg_every and (i + 1) % args.reorg_every == 0:
                        depth = 1 + depth_cycle % 3
                        depth_cycle += 1
                        # Wait until the daemon shows block n, then replace the top `depth` blocks by empty ones.
                        t_wait = time.perf_counter()
                        while newest[0] < n and time.perf_counter() - t_wait < 5:
                            await asyncio.sleep(0.005)
                        await rpc(s, node.url, "anvil_reorg", [depth, []])
                        t_reorg = time.perf_counter()
                        ancestor = n - depth
                        while time.perf_counter() - t_reorg < 10:
                            async with s.get(f"{api}/v1/events?chain=bench&from_block={ancestor + 1}&limit=1") as r:
                                if r.status == 200 and not orjson.loads(await r.read())["events"]:
                                    rollbacks.append(time.perf_counter() - t_reorg)
                                    break
                            await asyncio.sleep(args.probe_ms / 1000)
                        for k in range(ancestor + 1, n + 1):
                            appeared.pop(k, None)
                            sse_seen.pop(k, None)
                            api_seen.pop(k, None)
                    t_next += 1.0
                    await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
                await asyncio.sleep(2.0)
                stop.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stop_daemon(proc)
            await cluster.drop_database(db_url)
    lat_api = [api_seen[n] - t for n, t in appeared.items() if n in api_seen]
    lat_sse = [sse_seen[n] - t for n, t in appeared.items() if n in sse_seen]
    return {"blocks": len(appeared), "api": lat_api, "sse": lat_sse, "rollbacks": rollbacks,
            "missed_api": len(appeared) - len(lat_api), "missed_sse": len(appeared) - len(lat_sse)}


def deploy_on_demand(url: str) -> str:
    """deploy_token on a --no-mining anvil: mine the deployment ourselves."""
    import threading

    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("addr", deploy_token(url)))
    t.start()
    while t.is_alive():
        rpc_sync(url, "evm_mine")
        t.join(0.05)
    return box["addr"]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=300, help="blocks per mode")
    ap.add_argument("--per-block", type=int, default=100)
    ap.add_argument("--modes", default="ws,poll")
    ap.add_argument("--poll-interval", type=float, default=0.5)
    ap.add_argument("--probe-ms", type=float, default=5.0, help="how often /v1/events is polled for the newest block")
    ap.add_argument("--reorg-every", type=int, default=20, help="0: no reorgs")
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    rows, runs = [], {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for mode in args.modes.split(","):
                r = runs[mode] = await one_mode(cluster, mode, args, Path(tmp))
                ms = {k: (None if pct(r[k], 50) is None else round(1000 * pct(r[k], 50), 1),
                          None if pct(r[k], 99) is None else round(1000 * pct(r[k], 99), 1))
                      for k in ("api", "sse", "rollbacks")}
                target = "150" if mode == "ws" else f"{1000 * args.poll_interval + 100:.0f}"
                print(f"{mode}: {r['blocks']} blocks; /v1/events p50 {ms['api'][0]} ms p99 {ms['api'][1]} ms; "
                      f"SSE p50 {ms['sse'][0]} ms p99 {ms['sse'][1]} ms; rollbacks {len(r['rollbacks'])} "
                      f"p50 {ms['rollbacks'][0]} ms p99 {ms['rollbacks'][1]} ms; missed {r['missed_api']}/{r['missed_sse']}")
                rows += [
                    (f"{mode}: node -> /v1/events p50", ms["api"][0], "ms", f"{r['blocks']} blocks"),
                    (f"{mode}: node -> /v1/events p99", ms["api"][1], "ms", f"target <= {target}"),
                    (f"{mode}: node -> SSE p50", ms["sse"][0], "ms", ""),
                    (f"{mode}: node -> SSE p99", ms["sse"][1], "ms", f"target <= {target}"),
                    (f"{mode}: reorg (depth 1-3) -> rolled back in /v1/events p99", ms["rollbacks"][1], "ms",
                     f"{len(r['rollbacks'])} reorgs"),
                ]
    finally:
        await cluster.teardown()
    record("live", rows, args={"blocks": args.blocks, "per_block": args.per_block, "poll_interval": args.poll_interval,
                               "probe_ms": args.probe_ms, "reorg_every": args.reorg_every},
           runs={k: {kk: vv for kk, vv in v.items()} for k, v in runs.items()})


if __name__ == "__main__":
    asyncio.run(main())
