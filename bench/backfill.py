"""Backfill benchmark: ERC-20 Transfer events from a local anvil into Postgres.

Prints events/s end to end (the `chainsettle index` command in a subprocess,
so start-up, decoding, COPY and commits all count), its peak RSS, and for
scale a bare eth_getLogs fetch of the same logs in this process. Memory is
measured for half and all of the range: flat means the two peaks match.

    .venv/bin/python bench/backfill.py [--blocks 2000] [--per-block 100]
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
import asyncpg
import orjson
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._write_alone import ceiling, write_alone  # noqa: E402
from bench.cpu import CpuMeter, postmaster_pid  # noqa: E402
from bench.results import record  # noqa: E402
from indexer.chain_state import heights  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import batch_transfer, deploy_token  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402


def fill(url: str, token: str, blocks: int, per_block: int) -> None:
    rng = random.Random(1)
    recipients = ["0x" + rng.randbytes(20).hex() for _ in range(per_block)]
    for _ in range(blocks):
        batch_transfer(url, token, recipients, [rng.randrange(1, 10**20) for _ in range(per_block)])


async def bare_fetch(url: str, token: str, last: int, span: int = 100) -> tuple[int, float]:
    async with aiohttp.ClientSession() as s:
        t0, n = time.perf_counter(), 0
        for a in range(0, last + 1, span):
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                    "params": [{"fromBlock": hex(a), "toBlock": hex(min(last, a + span - 1)), "address": token}]}
            async with s.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as r:
                n += len(orjson.loads(await r.read())["result"])
        return n, time.perf_counter() - t0


def roles(by_role: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in sorted(by_role.items(), key=lambda kv: -kv[1]) if v >= 0.01)


def node_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def run_index(config: Path, db_url: str, to_block: int, profile: str | None = None,
              loop: str = "uvloop") -> tuple[float, int, str, float]:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning", CHAINSETTLE_EVENT_LOOP=loop)
    cmd = [sys.executable, "-m", "daemon.cli", "--config", str(config), "index", "--chain", "bench", "--to", str(to_block)]
    if profile:
        # py-spy writes folded stacks (one line per stack and its sample count); its own output goes to stderr.
        cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "200", "-f", "raw", "-o", profile, "--", *cmd]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text, errors = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"index failed: {errors[-2000:]}")
    return (elapsed, usage.ru_maxrss // 1024, [ln for ln in text.splitlines() if ln.startswith("{")][-1],
            usage.ru_utime + usage.ru_stime)


async def first_commit(db_url: str, t0: float, done: asyncio.Event) -> float | None:
    """Seconds from the process start to the first committed cursor (polled every 5 ms)."""
    while not done.is_set():
        try:
            conn = await asyncpg.connect(db_url)
            break
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.005)
    else:
        return None
    try:
        while not done.is_set():
            h = await heights(conn, "bench")
            if h is not None and h.cursor is not None:
                return time.perf_counter() - t0
            await asyncio.sleep(0.005)
        return None
    finally:
        await conn.close()


async def index_run(config: Path, db_url: str, to_block: int, profile: str | None, event_loop: str = "uvloop",
                    node_pid: int | None = None, postmaster: int | None = None) -> dict:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    t0 = time.perf_counter()
    watcher = asyncio.create_task(first_commit(db_url, t0, done))
    try:
        with CpuMeter(None, [node_pid] if node_pid else [], postmaster) as cpu:
            elapsed, rss_mb, out, daemon_cpu = await loop.run_in_executor(
                None, run_index, config, db_url, to_block, profile, event_loop)
    finally:
        done.set()
    startup = await watcher
    report = orjson.loads(out)
    return {"events": report["new_events"], "process_s": elapsed, "phase_s": report["elapsed_seconds"],
            "rss_mib": rss_mb, "first_commit_s": startup, "cpu": {**cpu.seconds, "daemon": daemon_cpu},
            "postgres_roles": cpu.postgres_roles}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=2000, help="blocks of transfers (20000 x 100 = 2,000,000 events)")
    ap.add_argument("--per-block", type=int, default=100)
    ap.add_argument("--profile", help="record the full-range index run with py-spy into this file (folded stacks)")
    ap.add_argument("--name", default="backfill", help="the entry in bench/results.json")
    ap.add_argument("--compare-asyncio", action="store_true",
                    help="index the full range once more on the stock asyncio loop (uvloop's share)")
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    try:
        with Anvil("--gas-limit", "100000000") as node, tempfile.TemporaryDirectory() as tmp:
            token = deploy_token(node.url)
            t0 = time.perf_counter()
            fill(node.url, token, args.blocks, args.per_block)
            rpc_sync(node.url, "anvil_mine", ["0x10"])
            last = int(rpc_sync(node.url, "eth_blockNumber"), 16)
            print(f"filled {args.blocks} blocks x {args.per_block} transfers in {time.perf_counter() - t0:.1f}s")

            postmaster = postmaster_pid(cluster)
            node_cpu, thread_cpu = node_seconds(node.proc.pid), time.thread_time()
            n, secs = await bare_fetch(node.url, token, last)
            fetch_cpu = {"daemon": time.thread_time() - thread_cpu, "node": node_seconds(node.proc.pid) - node_cpu,
                         "postgres": 0.0}
            print(f"bare eth_getLogs fetch: {n} logs in {secs:.2f}s = {n / secs:,.0f} logs/s; CPU this process "
                  f"{fetch_cpu['daemon']:.2f}s, anvil {fetch_cpu['node']:.2f}s")

            config = write_config(Path(tmp) / "bench.toml", {"chains": [
                evm_chain("bench", node.url, token, finality_depth=1, max_logs_range=2000)]})
            runs = {}
            for label, to_block in (("half", last // 2), ("all", last)):
                db_url = await cluster.new_database()
                r = runs[label] = await index_run(config, db_url, to_block, args.profile if label == "all" else None,
                                                  node_pid=node.proc.pid, postmaster=postmaster)
                await cluster.drop_database(db_url)
                print(f"chainsettle index ({label}): {r['events']} events; process {r['process_s']:.2f}s = "
                      f"{r['events'] / r['process_s']:,.0f} events/s incl. start-up; backfill phase {r['phase_s']:.2f}s = "
                      f"{r['events'] / r['phase_s']:,.0f} events/s; first commit after {r['first_commit_s'] or 0:.2f}s; "
                      f"peak RSS {r['rss_mib']} MiB; CPU daemon {r['cpu']['daemon']:.2f}s, Postgres {r['cpu']['postgres']:.2f}s, "
                      f"anvil {r['cpu']['node']:.2f}s (Postgres: {roles(r['postgres_roles'])})")
            db_url = await cluster.new_database()
            w = await write_alone(config, db_url, node.url, token, last, postmaster)
            await cluster.drop_database(db_url)
            print(f"write path alone: {w['events']} events in {w['commits']} commits, {w['seconds']:.2f}s = "
                  f"{w['events'] / w['seconds']:,.0f} events/s; CPU this process {w['cpu']['daemon']:.2f}s, "
                  f"Postgres {w['cpu']['postgres']:.2f}s = {w['cores']:.2f} cores busy; decoding the rows took "
                  f"{w['decode_cpu']:.2f} CPU-s (Postgres: {roles(w['postgres_roles'])})")
            extra = []
            if args.compare_asyncio:
                db_url = await cluster.new_database()
                r = runs["all-asyncio"] = await index_run(config, db_url, last, None, event_loop="asyncio")
                await cluster.drop_database(db_url)
                ratio = (runs["all"]["events"] / runs["all"]["phase_s"]) / (r["events"] / r["phase_s"])
                print(f"chainsettle index (all, asyncio loop): backfill phase {r['phase_s']:.2f}s; uvloop / asyncio: {ratio:.2f}")
                extra.append(("backfill phase, uvloop / stock asyncio loop", round(ratio, 2), "ratio", "same run"))
            a, h = runs["all"], runs["half"]
            bare = n / secs
            e2e, phase = a["events"] / a["process_s"], a["events"] / a["phase_s"]
            print(f"end to end (process incl. start-up) / bare fetch: {e2e / bare:.2f}; backfill phase / bare fetch: {phase / bare:.2f}")
            print(f"peak RSS all / half range: {a['rss_mib'] / h['rss_mib']:.2f}")
            cores = os.cpu_count() or 2
            best = ceiling(secs, fetch_cpu, w["seconds"], w["cpu"], w["decode_cpu"],
                           a["first_commit_s"] or 0.0, cores)
            # The same with the daemon's own work (parsing, decoding, COPY
            # encoding) free: what the node and Postgres alone leave room for.
            free = ceiling(secs, {**fetch_cpu, "daemon": 0.0}, w["seconds"], {**w["cpu"], "daemon": 0.0}, 0.0,
                           a["first_commit_s"] or 0.0, cores)
            print(f"ceiling here (fetch, decode and write overlapped perfectly after the start-up, {cores} cores): "
                  f"{a['events'] / best:,.0f} events/s = {a['events'] / best / bare:.2f} of the bare fetch; "
                  f"end to end reached {e2e * best / a['events']:.2f} of it; with a daemon that cost no CPU: "
                  f"{a['events'] / free / bare:.2f} of the bare fetch")
            record(args.name, [
                ("events indexed (full range)", a["events"], "events", f"{args.blocks} blocks x {args.per_block}"),
                ("bare eth_getLogs fetch + JSON parse", bare, "logs/s", "scale"),
                ("chainsettle index, process incl. start-up", e2e, "events/s", ""),
                ("chainsettle index, backfill phase", phase, "events/s", ""),
                ("end to end / bare fetch", round(e2e / bare, 2), "ratio", "target >= 0.75"),
                ("backfill phase / bare fetch", round(phase / bare, 2), "ratio", "target >= 0.75"),
                ("start-up to first commit", a["first_commit_s"], "s", "target < 0.5"),
                ("peak RSS, full range", a["rss_mib"], "MiB", ""),
                ("peak RSS full / half range", round(a["rss_mib"] / h["rss_mib"], 2), "ratio", "target <= 1.1"),
                ("write path alone (same rows, nothing fetched)", w["events"] / w["seconds"], "events/s",
                 f"{w['cores']:.2f} cores busy"),
                ("write path alone / bare fetch", round(w["events"] / w["seconds"] / bare, 2), "ratio", ""),
                ("ceiling end to end / bare fetch", round(a["events"] / best / bare, 2), "ratio",
                 f"perfect overlap on {cores} cores after the start-up"),
                ("end to end / ceiling", round(e2e * best / a["events"], 2), "ratio", "how much of it is reached"),
                ("ceiling with a daemon costing no CPU / bare fetch", round(a["events"] / free / bare, 2), "ratio",
                 "the node's and Postgres's share alone"),
                *extra,
            ], runs=runs)
    finally:
        await cluster.teardown()


if __name__ == "__main__":
    asyncio.run(main())
