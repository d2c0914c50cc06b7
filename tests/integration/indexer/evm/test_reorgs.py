"""Reorgs injected with anvil_reorg during live follow."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys

import pytest

from indexer.errors import ChainHalted
from indexer.evm.follower import EvmFollower
from tests.integration.indexer.evm.test_backfill import independent_rows, stored_rows
from tests.support.anvil import Anvil, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import DEPLOYER, batch_transfer, calldata, deploy_token


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


def head(url: str) -> dict:
    return rpc_sync(url, "eth_getBlockByNumber", ["latest", False])


async def wait_synced(pool, url: str, chain: str = "local", timeout: float = 30) -> None:
    """Until the stored cursor is the node's head block, hash included."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        h = head(url)
        row = await pool.fetchrow("SELECT cursor_number, cursor_hash FROM chain_state WHERE chain = $1", chain)
        if row and row["cursor_number"] == int(h["number"], 16) and row["cursor_hash"] == h["hash"]:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"follower did not reach head {int(h['number'], 16)}: {dict(row) if row else None}")
        await asyncio.sleep(0.05)


def transfer_tx(token: str, rng: random.Random) -> dict:
    to = "0x" + rng.randbytes(20).hex()
    return {"from": DEPLOYER, "to": token, "gas": hex(100_000),
            "data": calldata("transfer(address,uint256)", ["address", "uint256"], [to, rng.randrange(1, 10**9)])}


async def test_reorgs_depth_1_to_10_leave_the_canonical_chain(node, pool, tmp_path):
    rng = random.Random(11)
    token = deploy_token(node.url)
    cfg = evm_chain("local", node.url, token, finality_depth=12, poll_interval=0.05)
    settings = make_settings(tmp_path, {"chains": [cfg]})
    follower = EvmFollower(settings.chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        for depth in range(1, 11):
            for _ in range(depth + 2):
                batch_transfer(node.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(5)], [1, 2, 3, 4, 5])
            await wait_synced(pool, node.url)
            before = await stored_rows(pool, "local")
            # Replace the last `depth` blocks: different transfers, in other blocks.
            txs = [[transfer_tx(token, rng), rng.randrange(depth)] for _ in range(rng.randrange(1, 4))]
            rpc_sync(node.url, "anvil_reorg", [depth, txs])
            await wait_synced(pool, node.url)
            after = await stored_rows(pool, "local")
            assert after == independent_rows(node.url, token), f"depth {depth}"
            assert after != before
        reorgs = await pool.fetch("SELECT depth FROM reorgs WHERE chain = 'local' ORDER BY id")
        assert len(reorgs) >= 10
        assert max(r["depth"] for r in reorgs) >= 10
        # Everything final is what the chain says; nothing above the cursor.
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await follower.close()


async def test_reorg_deeper_than_finality_halts_and_keeps_final_data(node, pool, db_url, tmp_path):
    rng = random.Random(5)
    token = deploy_token(node.url)
    settings = make_settings(tmp_path, {"chains": [evm_chain("local", node.url, token, finality_depth=3, poll_interval=0.05)]})
    follower = EvmFollower(settings.chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        for _ in range(8):
            batch_transfer(node.url, token, ["0x" + rng.randbytes(20).hex()], [7])
        await wait_synced(pool, node.url)
        final_before = await pool.fetch("SELECT * FROM final_events ORDER BY id")
        final_number = await pool.fetchval("SELECT final_number FROM chain_state WHERE chain = 'local'")
        assert final_number == int(head(node.url)["number"], 16) - 2
        rpc_sync(node.url, "anvil_reorg", [6, [[transfer_tx(token, rng), 0]]])
        with pytest.raises(ChainHalted):
            await asyncio.wait_for(task, 20)
        state = await pool.fetchrow("SELECT halted_reason, final_number FROM chain_state WHERE chain = 'local'")
        assert "final" in state["halted_reason"]
        assert state["final_number"] == final_number
        assert await pool.fetch("SELECT * FROM final_events ORDER BY id") == final_before
        # A restart refuses to follow a halted chain until an operator clears it.
        again = EvmFollower(settings.chains[0], pool)
        with pytest.raises(ChainHalted):
            await again.start()
        await again.close()
        # `chains unhalt` clears it, with an audit row naming who and why.
        env = dict(os.environ, DATABASE_URL=db_url)
        out = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(tmp_path / "chainsettle.toml"),
                              "chains", "unhalt", "local", "--reason", "investigated", "--actor", "ops"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert await pool.fetchval("SELECT halted_reason FROM chain_state WHERE chain = 'local'") is None
        row = await pool.fetchrow("SELECT actor, details FROM audit_log WHERE action = 'chain.unhalt'")
        assert row["actor"] == "ops" and row["details"]["note"] == "investigated"
        assert "final" in row["details"]["previous_reason"]
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, 10)
        await follower.close()


async def test_final_events_view_marks_what_may_still_change(node, pool, tmp_path):
    token = deploy_token(node.url)
    settings = make_settings(tmp_path, {"chains": [evm_chain("local", node.url, token, finality_depth=4, poll_interval=0.05)]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        for _ in range(6):
            batch_transfer(node.url, token, ["0x" + "ab" * 20], [1])
            await follower.step()
        n = int(head(node.url)["number"], 16)
        tops = await pool.fetchrow(
            "SELECT (SELECT max(block_number) FROM events) AS all_top, (SELECT max(block_number) FROM final_events) AS final_top")
        assert tops["all_top"] == n
        assert tops["final_top"] == n - 3
    finally:
        await follower.close()
