"""Backfill equals eth_getLogs row for row, and replay inserts nothing."""

from __future__ import annotations

import random

import pytest
from eth_abi import decode
from eth_utils import keccak

from indexer.evm.follower import EvmFollower
from tests.support.anvil import rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import batch_transfer, deploy_token

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


@pytest.fixture(scope="module")
def filled_chain(anvil):
    """A token with 10,100 Transfer events over 101 blocks, plus noise from a second token."""
    token = deploy_token(anvil.url)
    other = deploy_token(anvil.url)  # not configured: its events must not appear
    rng = random.Random(7)
    for i in range(101):
        recipients = ["0x" + rng.randbytes(20).hex() for _ in range(100)]
        amounts = [rng.randrange(1, 10**24) for _ in range(100)]
        batch_transfer(anvil.url, token, recipients, amounts)
        if i % 10 == 0:
            batch_transfer(anvil.url, other, recipients[:3], amounts[:3])
    rpc_sync(anvil.url, "anvil_mine", ["0x5"])  # make everything final (depth 3)
    return token


def independent_rows(url: str, token: str) -> list[tuple]:
    """Expected rows computed straight from eth_getLogs with eth_abi."""
    logs = rpc_sync(url, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest", "address": token, "topics": [TRANSFER]}])
    rows = []
    for lg in logs:
        (value,) = decode(["uint256"], bytes.fromhex(lg["data"][2:]))
        rows.append((
            int(lg["blockNumber"], 16), lg["blockHash"].lower(), lg["transactionHash"].lower(),
            int(lg["transactionIndex"], 16), int(lg["logIndex"], 16), lg["address"].lower(), "Transfer",
            {"from": "0x" + lg["topics"][1][-40:], "to": "0x" + lg["topics"][2][-40:], "value": str(value)},
        ))
    return sorted(rows)


async def stored_rows(pool, chain: str) -> list[tuple]:
    rows = await pool.fetch(
        """SELECT block_number, block_hash, tx_hash, tx_index, log_index, address, event, args
           FROM events WHERE chain = $1""", chain)
    return sorted(tuple(r) for r in rows)


async def test_backfill_equals_getlogs_and_replay_inserts_nothing(anvil, filled_chain, pool, tmp_path):
    token = filled_chain
    settings = make_settings(tmp_path, {"chains": [evm_chain("local", anvil.url, token, finality_depth=3, max_logs_range=40)]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        new = await follower.backfill()
    finally:
        await follower.close()
    expected = independent_rows(anvil.url, token)
    assert len(expected) == 10_101  # 101 batches of 100, plus the mint
    assert new == len(expected)
    assert await stored_rows(pool, "local") == expected

    head = int(rpc_sync(anvil.url, "eth_blockNumber"), 16)
    state = await pool.fetchrow("SELECT cursor_number, cursor_hash, final_number FROM chain_state WHERE chain = 'local'")
    assert state["cursor_number"] == head - 2  # depth 3: head-2 is the highest final block
    assert state["final_number"] == state["cursor_number"]
    block = rpc_sync(anvil.url, "eth_getBlockByNumber", [hex(state["cursor_number"]), False])
    assert state["cursor_hash"] == block["hash"]

    # Replaying the whole range, and indexing again from the cursor, inserts nothing.
    again = EvmFollower(settings.chains[0], pool)
    try:
        assert await again.backfill(from_block=0) == 0
        assert await again.backfill() == 0
    finally:
        await again.close()
    assert await stored_rows(pool, "local") == expected


async def test_backfill_recovers_deleted_rows_on_replay(anvil, filled_chain, pool, tmp_path):
    settings = make_settings(tmp_path, {"chains": [evm_chain("local", anvil.url, filled_chain, finality_depth=3)]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        await follower.backfill()
        await pool.execute("DELETE FROM events WHERE chain = 'local' AND block_number BETWEEN 10 AND 12")
        restored = await follower.backfill(from_block=10, to_block=12)
    finally:
        await follower.close()
    assert restored == 300
    assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled_chain)
