"""Several chains indexed at once by one process, against one chain alone.

--chains anvil nodes, one per chain as in production (three chains are
three networks), each with an ERC-20 token and --blocks x 100 Transfers.
One process (`bench/_index_many.py`, the followers `chainsettle index`
builds) backfills first one chain, then all of them concurrently; prints
events/s of each and the ratio, the CPU each run used (daemon, Postgres,
nodes; bench/cpu.py) while the followers run (start-up and shutdown left
out), and Postgres's CPU per event. On a machine where the nodes and
Postgres share the cores with the daemon, the cores one chain keeps busy
bound what several can gain (2 cores / cores used by one chain). --waits
also samples what the Postgres backends wait on (pg_stat_activity every
5 ms): that is where several writers queue behind one another.

    .venv/bin/python bench/multichain.py [--chains 3] [--blocks 600] [--waits]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import asyncpg
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


class WaitSampler:
    """Counts (state, wait event, statement) of the database's client backends, every 5 ms, in a thread."""

    QUERY = ("SELECT state, wait_event_type || ':' || wait_event AS wait, left(query, 12) AS q FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.counts: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.db_url)
        try:
            while not self._stop.is_set():
                for r in await conn.fetch(self.QUERY):
                    self.counts[(r["state"], r["wait"] or "on CPU", r["q"] if r["state"] == "active" else "")] += 1
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    def __enter__(self) -> "WaitSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, label: str) -> None:
        total = sum(self.counts.values()) or 1
        print(f"{label}: what the Postgres backends were doing ({total} samples)")
        for (state, wait, q), n in self.counts.most_common(10):
            print(f"  {n / total:6.1%}  {state:20s} {wait:26s} {q}")


def run_many(config: Path, db_url: str, chains: list[str], to_block: int, nodes: list[int],
             postmaster: int | None, waits: bool = False) -> dict:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
    proc: subprocess.Popen | None = None
    out = None
    sampler = WaitSampler(db_url) if waits else contextlib.nullcontext()
    with CpuMeter(lambda: proc.pid if proc else None, nodes, postmaster) as cpu, tempfile.TemporaryFile() as err, \
            sampler:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_index_many.py"), str(config), str(to_block),
                                 *chains], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        # Reading lines as they come has no timeout of its own: a hung run is killed.
        watchdog = threading.Timer(900, proc.kill)
        watchdog.start()
        try:
            # CPU counts between the two lines the indexer prints: start-up
            # (imports, the pool) and shutdown are the same for one chain or
            # several, and would blur what the followers themselves cost.
            for line in proc.stdout:
                if line.strip() == "started":
                    cpu.mark_start()
                elif line.startswith("{"):
                    cpu.mark_end()
                    out = orjson.loads(line)
            proc.wait()
        finally:
            watchdog.cancel()
        err.seek(0)
        stderr = err.read().decode()
    if proc.returncode != 0 or out is None:
        raise SystemExit(f"index failed: {stderr[-2000:]}")
    if waits:
        sampler.report(f"{len(chains)} chain{'s' if len(chains) > 1 else ''}")
    return {**out, "cpu": cpu.seconds, "cores": cpu.cores}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=600, help="blocks of 100 Transfers per chain")
    ap.add_argument("--waits", action="store_true", help="sample the Postgres backends' wait events")
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
            one = run_many(config, db, names[:1], last, pids[:1], postmaster_pid(cluster), args.waits)
            await cluster.drop_database(db)
            db = await cluster.new_database()
            many = run_many(config, db, names, last, pids, postmaster_pid(cluster), args.waits)
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
    # Postgres's share per event: flat means its writers do not get in each
    # other's way; rising means they do (WAL insertion and writes are one
    # stream per server, whatever the number of connections).
    pg1, pgn = (r["cpu"]["postgres"] / r["events"] * 1e6 for r in (one, many))
    print(f"Postgres CPU per event: {pg1:.1f} us one chain, {pgn:.1f} us {args.chains} chains")
    record("multichain", [
        ("one chain, backfill", r1, "events/s", f"{one['events']} events"),
        (f"{args.chains} chains at once, one process", rn, "events/s", f"{many['events']} events"),
        (f"{args.chains} chains / one chain", round(rn / r1, 2), "ratio", "target >= 1.6"),
        ("cores busy, one chain (daemon + Postgres + node)", round(one["cores"], 2), "cores", f"of {cores}"),
        (f"cores busy, {args.chains} chains", round(many["cores"], 2), "cores", f"of {cores}"),
        ("ceiling: cores / cores busy with one chain", round(cores / one["cores"], 2), "ratio",
         "what any number of chains can gain here"),
        ("Postgres CPU per event, one chain", round(pg1, 1), "us", "indexing only, start-up left out"),
        (f"Postgres CPU per event, {args.chains} chains", round(pgn, 1), "us", "one WAL stream for all writers"),
    ])


if __name__ == "__main__":
    asyncio.run(main())
