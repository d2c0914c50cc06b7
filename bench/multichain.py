"""Several chains indexed at once by one process, against one chain alone.

--chains anvil nodes, one per chain as in production (three chains are
three networks), each with an ERC-20 token and --blocks x 100 Transfers.
One process (`bench/_index_many.py`, the followers `chainsettle index`
builds) backfills first one chain, then all of them concurrently; prints
events/s of each and the ratio, and the CPU each run used (daemon,
Postgres, nodes; bench/cpu.py): on a machine where the nodes and Postgres
share the cores with the daemon, the cores one chain keeps busy bound what
several can gain (2 cores / cores used by one chain).

    .venv/bin/python bench/multichain.py [--chains 3] [--blocks 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backfill import fill  # noqa: E402
from bench.cpu import CpuMeter, postmaster_pid  # noqa: E402
from bench.results import record  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import deploy_token  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402


def run_many(config: Path, db_url: str, chains: list[str], to_block: int, nodes: list[int],
             postmaster: int | None) -> dict:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
    proc: subprocess.Popen | None = None
    with CpuMeter(lambda: proc.pid if proc else None, nodes, postmaster) as cpu:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_index_many.py"), str(config), str(to_block),
                                 *chains], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout, stderr = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"index failed: {stderr[-2000:]}")
    out = orjson.loads(stdout.strip().splitlines()[-1])
    return {**out, "cpu": cpu.seconds, "cores": cpu.cores}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=600, help="blocks of 100 Transfers per chain")
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    try:
        with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
            names, chains, lasts, pids = [], [], [], []
            for i in range(args.chains):
                node = stack.enter_context(Anvil("--gas-limit", "100000000"))
                pids.append(node.proc.pid)
                token = deploy_token(node.url, symbol=f"T{i}")
                fill(node.url, token, args.blocks, 100)
                rpc_sync(node.url, "anvil_mine", ["0x10"])
                lasts.append(int(rpc_sync(node.url, "eth_blockNumber"), 16))
                names.append(f"bench{i}")
                chains.append(evm_chain(f"bench{i}", node.url, token, finality_depth=1, max_logs_range=2000))
            last = min(lasts)
            config = write_config(Path(tmp) / "multi.toml", {"chains": chains})
            db = await cluster.new_database()
            one = run_many(config, db, names[:1], last, pids[:1], postmaster_pid(cluster))
            await cluster.drop_database(db)
            db = await cluster.new_database()
            many = run_many(config, db, names, last, pids, postmaster_pid(cluster))
            await cluster.drop_database(db)
    finally:
        await cluster.teardown()
    r1, rn = one["events"] / one["seconds"], many["events"] / many["seconds"]
    cores = os.cpu_count() or 2
    for label, r in (("one chain", one), (f"{args.chains} chains", many)):
        c = r["cpu"]
        print(f"{label}: {r['events']} events in {r['seconds']:.2f}s = {r['events'] / r['seconds']:,.0f} events/s; "
              f"CPU daemon {c['daemon']:.2f}s, Postgres {c['postgres']:.2f}s, nodes {c['node']:.2f}s "
              f"= {r['cores']:.2f} of {cores} cores busy")
    print(f"{args.chains} chains / one chain: {rn / r1:.2f}x; the cores allow at most {cores / one['cores']:.2f}x")
    record("multichain", [
        ("one chain, backfill", r1, "events/s", f"{one['events']} events"),
        (f"{args.chains} chains at once, one process", rn, "events/s", f"{many['events']} events"),
        (f"{args.chains} chains / one chain", round(rn / r1, 2), "ratio", "target >= 1.6"),
        ("cores busy, one chain (daemon + Postgres + node)", round(one["cores"], 2), "cores", f"of {cores}"),
        (f"cores busy, {args.chains} chains", round(many["cores"], 2), "cores", f"of {cores}"),
        ("ceiling: cores / cores busy with one chain", round(cores / one["cores"], 2), "ratio",
         "what any number of chains can gain here"),
    ])


if __name__ == "__main__":
    asyncio.run(main())
