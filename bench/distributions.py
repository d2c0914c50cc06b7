"""Distributions (issue 28): gas per claim and per pushed recipient, tree build time, snapshot time.

- gas per Merkle claim at the ClaimDistributor (native coin, new recipients: each
  claim pays a fresh account, the first claim of a 256-leaf bitmap word writes it),
  and per voucher redeem;
- gas per pushed recipient: one PayoutBatcher batch of --push recipients / n;
- allocation and StandardMerkleTree build time for --recipients (default 100,000),
  plus the proof of one leaf;
- booking time of a distribution to --recipients (one transaction: the pool
  to the hub, the hub to one entitlement account per recipient), against
  the time of its list snapshot;
- snapshot time of an ERC-20 with --transfers final Transfer events (default
  1,000,000, COPYed into a fresh database on this box's Postgres) and of an
  ERC-721 with the same number of transfers.

Figures, not pass/fail.

    .venv/bin/python bench/distributions.py [--recipients 100000] [--transfers 1000000] [--claims 40] [--push 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.payouts import gas_of_batch  # noqa: E402
from bench.results import record  # noqa: E402
from db import create_pool  # noqa: E402
from indexer.store import Store  # noqa: E402
from settlement.distributions import claim_abi as ca  # noqa: E402
from settlement.distributions.allocate import allocate  # noqa: E402
from settlement.distributions.merkle import claim_tree  # noqa: E402
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot  # noqa: E402
from settlement.payouts.evm.signer import LocalKeySigner  # noqa: E402
from tests.support.anvil import DEV_ACCOUNTS, Anvil  # noqa: E402
from tests.support.batcher import RELAYER, fresh_address, latest_timestamp  # noqa: E402
from tests.support.config import make_settings  # noqa: E402
from tests.support.evm import deploy, send  # noqa: E402
from tests.support.pg import PgCluster  # noqa: E402

OWNER = DEV_ACCOUNTS[0][0]
SIGNER = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1][2:]))
CHAIN = "bench"
TOKEN = "0x" + "70" * 20
NFT = "0x" + "71" * 20


def gas_figures(claims: int, push: int) -> list[tuple]:
    rows = []
    with Anvil("--gas-limit", "60000000") as anvil:
        d = deploy(anvil.url, "ClaimDistributor", DEV_ACCOUNTS[1][0], frm=OWNER).lower()
        shares = [(i, fresh_address().lower(), 10**12 + i) for i in range(1024)]
        tree = claim_tree(shares)
        total = sum(a for _, _, a in shares)
        send(anvil.url, OWNER, d, "0x" + ca.create_epoch(1, tree.root, ca.NATIVE, total,
                                                         latest_timestamp(anvil) + 86400, OWNER).hex())
        send(anvil.url, OWNER, d, "0x" + ca.fund_epoch(1, total).hex(), value=total)
        gas = []
        for k in range(claims):
            i, a, amt = tree.values[k][0]
            r = send(anvil.url, RELAYER, d, "0x" + ca.claim(1, int(i), a, int(amt), tree.proof(k)).hex())
            gas.append(int(r["gasUsed"], 16))
        rows.append(("gas per Merkle claim (1,024 leaves, mean)", sum(gas) / len(gas), "gas",
                     f"{claims} claims, fresh recipients; first of a bitmap word {gas[0]:,}"))
        chain_id = int(anvil.rpc("eth_chainId", []), 16)
        send(anvil.url, OWNER, d, "0x" + ca.fund_vouchers(ca.NATIVE, 10**18).hex(), value=10**18)
        vg = []
        for _ in range(10):
            now = latest_timestamp(anvil)
            v = ca.Voucher(os.urandom(32), fresh_address(), ca.NATIVE, 10**12, now - 10, now + 3600)
            r = send(anvil.url, RELAYER, d, "0x" + ca.redeem(v, ca.sign_voucher(v, chain_id, d, SIGNER)).hex())
            vg.append(int(r["gasUsed"], 16))
        rows.append(("gas per voucher redeem (mean)", sum(vg) / len(vg), "gas", "fresh recipients"))
        batcher = deploy(anvil.url, "PayoutBatcher", OWNER, DEV_ACCOUNTS[1][0])
        send(anvil.url, OWNER, batcher, value=10**20)
        g = gas_of_batch(anvil, batcher, push)
        rows.append((f"gas per pushed recipient (batch of {push}, native)", g / push, "gas",
                     f"batch total {g:,}"))
    return rows


def tree_figures(n: int) -> list[tuple]:
    rng = random.Random(28)
    weights = [("0x" + rng.randbytes(20).hex(), rng.randrange(1, 10**6)) for _ in range(n)]
    t0 = time.perf_counter()
    alloc = allocate(10**24, weights, seed="bench")
    t1 = time.perf_counter()
    tree = claim_tree([(i, a, amt) for i, (a, amt) in enumerate(alloc.shares)])
    t2 = time.perf_counter()
    dump = tree.dump()
    t3 = time.perf_counter()
    proof = tree.proof(n // 2)
    return [(f"allocate {n:,} recipients", t1 - t0, "s", "largest remainder, exact"),
            (f"StandardMerkleTree build, {n:,} leaves", t2 - t1, "s", "Python, keccak via eth_utils"),
            ("tree dump (standard-v1)", t3 - t2, "s", f"{len(dump['tree']):,} nodes"),
            ("proof length", len(proof), "hashes", "")]


async def snapshot_figures(transfers: int) -> list[tuple]:
    cluster = PgCluster()
    await cluster.setup_template()
    rows = []
    try:
        db_url = await cluster.new_database()
        pool = await create_pool(db_url, min_size=1, max_size=2)
        try:
            await Store(pool, CHAIN, []).ensure_chain("evm", 31337)
            rng = random.Random(1)
            holders = ["0x" + rng.randbytes(20).hex() for _ in range(max(100, transfers // 20))]
            zero = "0x" + "00" * 20
            per_block = 100
            t0 = time.perf_counter()
            for contract, kind in ((TOKEN, "erc20"), (NFT, "erc721")):
                recs = []
                owners: list[str] = []  # erc721: token id -> owner
                for k in range(transfers):
                    b, li = divmod(k, per_block)
                    if kind == "erc20":
                        frm = zero if k < len(holders) else rng.choice(holders)
                        args = {"from": frm, "to": rng.choice(holders), "value": str(rng.randrange(1, 1000))}
                    else:
                        to = rng.choice(holders)
                        if len(owners) < len(holders) or rng.random() < 0.3:  # mint
                            args = {"from": zero, "to": to, "tokenId": str(len(owners))}
                            owners.append(to)
                        else:
                            tok = rng.randrange(len(owners))
                            args = {"from": owners[tok], "to": to, "tokenId": str(tok)}
                            owners[tok] = to
                    recs.append((CHAIN, b + 1, f"0x{b + 1:064x}", f"0x{k:064x}", 0, li, contract, "Transfer",
                                 args))
                async with pool.acquire() as conn:
                    await conn.copy_records_to_table(
                        "events", records=recs,
                        columns=["chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "address",
                                 "event", "args"])
            final = transfers // per_block + 1
            async with pool.acquire() as conn:
                await conn.execute("UPDATE chain_state SET final_number = $1, cursor_number = $1 WHERE chain = $2",
                                   final, CHAIN)
                await conn.execute("ANALYZE events")
            load = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                settings = make_settings(Path(tmp), {"chains": [{
                    "name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:9"],
                    "contracts": [{"name": "tok", "address": TOKEN, "abi": "erc20"},
                                  {"name": "nft", "address": NFT, "abi": "erc721"}]}]})
                for contract, kind in ((TOKEN, "erc20"), (NFT, "erc721")):
                    t = time.perf_counter()
                    view, _ = await create_snapshot(pool, settings, SnapshotRequest(
                        f"s-{kind}", kind, chain=CHAIN, contract=contract, height=final), "bench")
                    rows.append((f"snapshot {kind}, {transfers:,} final Transfers", time.perf_counter() - t, "s",
                                 f"{view['holders']:,} holders stored"))
            rows.append(("(load of the synthetic events, COPY)", load, "s", "not part of a snapshot"))
        finally:
            await pool.close()
            await cluster.drop_database(db_url)
    finally:
        await cluster.teardown()
    return rows


async def booking_figures(n: int) -> list[tuple]:
    from settlement.distributions.book import DistributionRequest, create_distribution
    from tests.support.ledger import fund

    cluster = PgCluster()
    await cluster.setup_template()
    try:
        db_url = await cluster.new_database()
        pool = await create_pool(db_url, min_size=1, max_size=2)
        try:
            await Store(pool, CHAIN, []).ensure_chain("evm", 31337)
            async with pool.acquire() as conn:
                await conn.execute("INSERT INTO assets (id, chain, name, kind) VALUES ($1, $2, 'native', 'native')",
                                   f"{CHAIN}:native", CHAIN)
                await conn.execute("UPDATE chain_state SET final_number = 1, cursor_number = 1 WHERE chain = $1",
                                   CHAIN)
            await fund(pool, "app:pool", 10**30, asset=f"{CHAIN}:native")
            rng = random.Random(2)
            weights = tuple(("0x" + rng.randbytes(20).hex(), rng.randrange(1, 10**6)) for _ in range(n))
            with tempfile.TemporaryDirectory() as tmp:
                settings = make_settings(Path(tmp), {"chains": [{
                    "name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:9"]}],
                    "ledger": {"accounts": [{"code": "app:pool"}]}})
                t0 = time.perf_counter()
                await create_snapshot(pool, settings, SnapshotRequest("s", "list", weights), "bench")
                t1 = time.perf_counter()
                view, _ = await create_distribution(pool, settings, DistributionRequest(
                    "d", "s", "app:pool", f"{CHAIN}:native", 10**24), "bench")
                t2 = time.perf_counter()
            async with pool.acquire() as conn:
                accounts = await conn.fetchval("SELECT count(*) FROM ledger_accounts WHERE kind = 'entitlement'")
            return [(f"list snapshot, {n:,} recipients", t1 - t0, "s", ""),
                    (f"distribution booked, {n:,} shares", t2 - t1, "s",
                     f"{accounts:,} entitlement accounts in one transaction; "
                     f"{(t2 - t1) / max(t1 - t0, 1e-9):.2f}x the snapshot")]
        finally:
            await pool.close()
            await cluster.drop_database(db_url)
    finally:
        await cluster.teardown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--transfers", type=int, default=1_000_000)
    ap.add_argument("--claims", type=int, default=40)
    ap.add_argument("--push", type=int, default=100)
    ap.add_argument("--skip", default="", help="comma list of gas,tree,booking,snapshot to leave out")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    rows = []
    if "gas" not in skip:
        rows += gas_figures(args.claims, args.push)
    if "tree" not in skip:
        rows += tree_figures(args.recipients)
    if "booking" not in skip:
        rows += asyncio.run(booking_figures(args.recipients))
    if "snapshot" not in skip:
        rows += asyncio.run(snapshot_figures(args.transfers))
    record("distributions", rows)


if __name__ == "__main__":
    main()
