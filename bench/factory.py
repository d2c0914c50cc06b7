"""Factory children and call traces: what they cost a backfill.

Three figures, each from one anvil chain and one run:
1. events/s of `chainsettle index` over the Ticket events of 1,000 children
   of one factory, against the same number of Ticket events of one
   configured contract (same block layout: 10 transactions of 100 events);
2. the cost of reading call traces: debug_traceBlockByHash (callTracer) and
   trace_block (parity) per block of that layout, and `index` of a native
   wallet with traces on every block against traces off;
3. with `--against DIR` (another checkout, e.g. main), the backfill phase of
   plain ERC-20 Transfers (no factory, no traces) by this tree and by DIR,
   alternating, on the same chain: the regression check.

    .venv/bin/python bench/factory.py [--children 1000] [--per-child 100] [--against /work/main]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backfill import fill  # noqa: E402
from bench.results import record  # noqa: E402
from indexer.evm.rpc import EvmRpc  # noqa: E402
from indexer.evm.traces import Tracer  # noqa: E402
from tests.support.anvil import Anvil, rpc_sync  # noqa: E402
from tests.support.config import evm_chain, write_config  # noqa: E402
from tests.support.evm import ARTIFACTS, deploy, deploy_token  # noqa: E402
from tests.support.factory import ROUND_CREATED, buy_tx, create_tx, deploy_factory, factory_contract  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

TXS_PER_BLOCK = 10


def mine_batches(url: str, txs: list[dict], per_block: int) -> None:
    rpc_sync(url, "evm_setAutomine", [False])
    try:
        for i in range(0, len(txs), per_block):
            hashes = [rpc_sync(url, "eth_sendTransaction", [tx]) for tx in txs[i: i + per_block]]
            rpc_sync(url, "evm_mine", [])
            last = rpc_sync(url, "eth_getTransactionReceipt", [hashes[-1]])
            if last is None or last["status"] != "0x1":
                raise SystemExit(f"bench transaction failed in block of {i}")
    finally:
        rpc_sync(url, "evm_setAutomine", [True])


def head(url: str) -> int:
    return int(rpc_sync(url, "eth_blockNumber"), 16)


def index(tree: Path, python: str, config: Path, db_url: str, to_block: int) -> dict:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning", PYTHONDONTWRITEBYTECODE="1")
    cmd = [python, "-m", "daemon.cli", "--config", str(config), "index", "--chain", "bench", "--to", str(to_block)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"index in {tree} failed: {done.stderr.decode()[-2000:]}")
    out = orjson.loads([ln for ln in done.stdout.decode().splitlines() if ln.startswith("{")][-1])
    return {"events": out["new_events"], "phase_s": out["elapsed_seconds"], "process_s": time.perf_counter() - t0}


async def trace_cost(url: str, numbers: list[int], wallet: str) -> dict[str, float]:
    rpc = EvmRpc([url], chain="bench")
    out = {}
    try:
        blocks = await rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
        for mode in ("callTracer", "parity"):
            tracer = Tracer("bench", mode, "all")
            t0 = time.perf_counter()
            await tracer.transfers(rpc, blocks, frozenset({wallet}))
            out[mode] = (time.perf_counter() - t0) / len(numbers) * 1000
    finally:
        await rpc.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--per-child", type=int, default=100, help="Ticket events per child (one transaction)")
    ap.add_argument("--against", type=Path, help="another checkout whose `index` to compare on plain Transfers")
    ap.add_argument("--transfer-blocks", type=int, default=1000, help="blocks of 100 Transfers for --against")
    args = ap.parse_args()
    cluster = PgCluster()
    await cluster.setup_template()
    me = Path(sys.executable)
    try:
        with Anvil("--gas-limit", "100000000") as node, tempfile.TemporaryDirectory() as tmp:
            url, t0 = node.url, time.perf_counter()
            factory = deploy_factory(url)
            f_start = head(url)
            mine_batches(url, [create_tx(factory) for _ in range(args.children)], 50)
            children = sorted({"0x" + lg["topics"][1][-40:] for lg in rpc_sync(url, "eth_getLogs", [{
                "fromBlock": hex(f_start), "toBlock": "latest", "address": factory, "topics": [ROUND_CREATED]}])})
            assert len(children) == args.children
            mine_batches(url, [buy_tx(c, args.per_child) for c in children], TXS_PER_BLOCK)
            f_end = head(url)
            single = deploy(url, "TestRound", 1)
            s_start = head(url)
            mine_batches(url, [buy_tx(single, args.per_child) for _ in children], TXS_PER_BLOCK)
            s_end = head(url)
            rpc_sync(url, "anvil_mine", ["0x2"])
            print(f"filled: {args.children} children x {args.per_child} Tickets (blocks {f_start}..{f_end}), "
                  f"the same from one contract ({s_start}..{s_end}) in {time.perf_counter() - t0:.1f}s")

            fcfg = write_config(Path(tmp) / "factory.toml", {"chains": [evm_chain(
                "bench", url, finality_depth=1, max_logs_range=2000, contracts=[factory_contract(factory, f_start)])]})
            scfg = write_config(Path(tmp) / "single.toml", {"chains": [evm_chain(
                "bench", url, finality_depth=1, max_logs_range=2000, contracts=[{
                    "name": "Round", "address": single, "abi": str(ARTIFACTS / "TestRound.json"),
                    "start_block": s_start}])]})
            runs: dict[str, list[dict]] = {"factory": [], "single": []}
            for _ in range(2):
                for label, cfg, to in (("factory", fcfg, f_end), ("single", scfg, s_end)):
                    db = await cluster.new_database()
                    runs[label].append(index(ROOT, str(me), cfg, db, to))
                    await cluster.drop_database(db)
            rate = {k: statistics.median(r["events"] / r["phase_s"] for r in v) for k, v in runs.items()}
            for k, v in runs.items():
                phases = ", ".join(f"{r['phase_s']:.2f}s" for r in v)
                print(f"index {k}: {v[0]['events']} events; backfill phase {phases}; median {rate[k]:,.0f} events/s")
            print(f"{args.children} factory children / one configured contract: {rate['factory'] / rate['single']:.2f}")

            # Traces: every block of the single contract's range, the wallet named nowhere (all blocks).
            wallet = "0x" + "ee" * 20
            per_block = await trace_cost(url, list(range(s_start + 1, s_end + 1)), wallet)
            print(f"trace per block of {TXS_PER_BLOCK} txs x {args.per_child} logs: callTracer "
                  f"{per_block['callTracer']:.1f} ms, parity {per_block['parity']:.1f} ms")
            traced: dict[str, float] = {}
            for mode in ("off", "callTracer"):
                cfg = write_config(Path(tmp) / f"traces-{mode}.toml", {"chains": [evm_chain(
                    "bench", url, finality_depth=1, max_logs_range=2000, start_block=s_start, traces=mode,
                    trace_blocks="all", contracts=[{"name": "Round", "address": single,
                                                    "abi": str(ARTIFACTS / "TestRound.json"), "start_block": s_start}],
                    wallets=[{"name": "w", "address": wallet, "assets": ["native"]}])]})
                db = await cluster.new_database()
                r = index(ROOT, str(me), cfg, db, s_end)
                await cluster.drop_database(db)
                traced[mode] = r["phase_s"]
            blocks = s_end - s_start + 1
            per_block_e2e = (traced["callTracer"] - traced["off"]) / blocks * 1000
            print(f"index with a native wallet, traces on every block: {traced['callTracer']:.2f}s against "
                  f"{traced['off']:.2f}s off = {per_block_e2e:.1f} ms per block")

            rows = [
                ("factory children", args.children, "children", f"{args.per_child} events each"),
                ("index, Tickets of the children (backfill phase)", rate["factory"], "events/s", "median of 2"),
                ("index, same Tickets of one configured contract", rate["single"], "events/s", "median of 2"),
                ("children / one contract", round(rate["factory"] / rate["single"], 2), "ratio", "same run"),
                ("callTracer (debug_traceBlockByHash) per block", round(per_block["callTracer"], 1), "ms",
                 f"{TXS_PER_BLOCK} txs x {args.per_child} logs"),
                ("parity (trace_block) per block", round(per_block["parity"], 1), "ms", "same blocks"),
                ("index with traces on every block: extra per block", round(per_block_e2e, 1), "ms",
                 "callTracer, native wallet, against traces off"),
            ]

            if args.against:
                token = deploy_token(url)
                t_start = head(url)
                fill(url, token, args.transfer_blocks, 100)
                t_end = head(url)
                tcfg = write_config(Path(tmp) / "transfers.toml", {"chains": [evm_chain(
                    "bench", url, finality_depth=1, max_logs_range=2000,
                    contracts=[{"name": "Token", "address": token, "abi": "erc20", "start_block": t_start}])]})
                other = args.against / ".venv" / "bin" / "python"
                plain: dict[str, list[float]] = {"this": [], "against": []}
                trees = {"this": (ROOT, str(me)), "against": (args.against, str(other))}
                # The first index after a fill runs slower (README, Measured): a
                # warm-up run is dropped, then the order is ABBA.
                for label in ("warm-up", "this", "against", "against", "this"):
                    tree, py = trees.get(label, trees["against"])
                    db = await cluster.new_database(empty=True)  # each tree migrates its own schema
                    r = index(tree, py, tcfg, db, t_end)
                    await cluster.drop_database(db)
                    if label in plain:
                        plain[label].append(r["events"] / r["phase_s"])
                ratio = statistics.median(plain["this"]) / statistics.median(plain["against"])
                mine, theirs = (", ".join(f"{x:,.0f}" for x in plain[k]) for k in ("this", "against"))
                print(f"plain Transfers, backfill phase events/s: this tree {mine}; {args.against} {theirs}; "
                      f"this / that (medians) {ratio:.2f}")
                rows.append(("plain Transfers, this tree / " + args.against.name, round(ratio, 2), "ratio",
                             f"{args.transfer_blocks} blocks x 100, ABBA after a warm-up, median of 2"))
            record("factory", rows, runs=runs)
    finally:
        await cluster.teardown()


if __name__ == "__main__":
    asyncio.run(main())
