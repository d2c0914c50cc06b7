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
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def run_index(config: Path, db_url: str, to_block: int) -> tuple[float, int, str]:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "index", "--chain", "bench",
                             "--to", str(to_block)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"index failed: {err[-2000:]}")
    return elapsed, usage.ru_maxrss // 1024, out.strip()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=2000)
    ap.add_argument("--per-block", type=int, default=100)
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

            n, secs = await bare_fetch(node.url, token, last)
            print(f"bare eth_getLogs fetch: {n} logs in {secs:.2f}s = {n / secs:,.0f} logs/s")

            config = write_config(Path(tmp) / "bench.toml", {"chains": [
                evm_chain("bench", node.url, token, finality_depth=1, max_logs_range=2000)]})
            results = []
            for label, to_block in (("half", last // 2), ("all", last)):
                db_url = await cluster.new_database()
                elapsed, rss_mb, out = run_index(config, db_url, to_block)
                report = orjson.loads(out)
                count, phase = report["new_events"], report["elapsed_seconds"]
                results.append((label, count, phase, rss_mb))
                print(f"chainsettle index ({label}): {count} events; process {elapsed:.2f}s = {count / elapsed:,.0f} events/s "
                      f"incl. start-up; backfill phase {phase:.2f}s = {count / phase:,.0f} events/s; peak RSS {rss_mb} MiB")
            (_, c_all, t_all, rss_all) = results[1]
            print(f"end-to-end / bare fetch throughput: {(c_all / t_all) / (n / secs):.2f}")
            print(f"peak RSS all / half range: {rss_all / results[0][3]:.2f}")
    finally:
        await cluster.teardown()


if __name__ == "__main__":
    asyncio.run(main())
