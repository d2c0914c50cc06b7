"""Several chains indexed at once by one process, against one chain alone.

One anvil, --chains ERC-20 tokens with --blocks x 100 Transfers each; each
token is its own configured chain (same node, its own contract). One
process (`bench/_index_many.py`, the followers `chainsettle index` builds)
backfills first one chain, then all of them concurrently; prints events/s
of each and the ratio.

    .venv/bin/python bench/multichain.py [--chains 3] [--blocks 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backfill import fill  # noqa: E402
from bench.results import record  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import deploy_token  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402


def run_many(config: Path, db_url: str, chains: list[str], to_block: int) -> dict:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "_index_many.py"), str(config), str(to_block), *chains],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"index failed: {out.stderr[-2000:]}")
    return orjson.loads(out.stdout.strip().splitlines()[-1])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--blocks", type=int, default=600, help="blocks of 100 Transfers per chain")
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    try:
        with Anvil("--gas-limit", "100000000") as node, tempfile.TemporaryDirectory() as tmp:
            names, chains = [], []
            for i in range(args.chains):
                token = deploy_token(node.url, symbol=f"T{i}")
                fill(node.url, token, args.blocks, 100)
                names.append(f"bench{i}")
                chains.append(evm_chain(f"bench{i}", node.url, token, finality_depth=1, max_logs_range=2000))
            rpc_sync(node.url, "anvil_mine", ["0x10"])
            last = int(rpc_sync(node.url, "eth_blockNumber"), 16)
            config = write_config(Path(tmp) / "multi.toml", {"chains": chains})
            db = await cluster.new_database()
            one = run_many(config, db, names[:1], last)
            await cluster.drop_database(db)
            db = await cluster.new_database()
            many = run_many(config, db, names, last)
            await cluster.drop_database(db)
    finally:
        await cluster.teardown()
    r1, rn = one["events"] / one["seconds"], many["events"] / many["seconds"]
    print(f"one chain: {one['events']} events in {one['seconds']:.2f}s = {r1:,.0f} events/s")
    print(f"{args.chains} chains in one process: {many['events']} events in {many['seconds']:.2f}s = {rn:,.0f} events/s "
          f"= {rn / r1:.2f}x")
    record("multichain", [
        ("one chain, backfill", r1, "events/s", f"{one['events']} events"),
        (f"{args.chains} chains at once, one process", rn, "events/s", f"{many['events']} events"),
        (f"{args.chains} chains / one chain", round(rn / r1, 2), "ratio", "target >= 1.6"),
    ])


if __name__ == "__main__":
    asyncio.run(main())
