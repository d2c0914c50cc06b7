"""An ERC-721 holder snapshot from a real follower on anvil: after transfers, a burn and a
reorg of blocks above finality, a snapshot above the final height is refused, and one at a
final height equals the chain's own ownerOf at that height."""

from __future__ import annotations

from collections import Counter

import pytest
from eth_abi import decode

from daemon.followers import make_follower
from settlement.distributions.snapshots import SnapshotRefused, SnapshotRequest, create_snapshot, snapshot_weights
from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.batcher import fresh_address
from tests.support.config import evm_chain, make_settings
from tests.support.evm import call, calldata, deploy, send

D1, D2, D3 = (DEV_ACCOUNTS[i][0].lower() for i in (1, 2, 3))
OWNER = DEV_ACCOUNTS[0][0]


def owners_at(url: str, nft: str, tokens: range, block: int) -> dict[str, int]:
    out: Counter = Counter()
    for t in tokens:
        owner = "0x" + decode(["address"], bytes.fromhex(call(url, nft, "ownerOf(uint256)", ["uint256"], [t],
                                                              hex(block))[2:]))[0][2:].lower()
        if owner != "0x" + "00" * 20:
            out[owner] += 1
    return dict(out)


async def test_erc721_snapshot_after_transfers_and_a_reorg(anvil, pool, tmp_path):
    nft = deploy(anvil.url, "TestNFT", frm=OWNER).lower()
    start = int(anvil.rpc("eth_blockNumber", []), 16)
    settings = make_settings(tmp_path, {"database": {"url": "postgresql://unused"}, "chains": [evm_chain(
        "anvil", anvil.url, finality_depth=3, poll_interval=0.2, start_block=start,
        contracts=[{"name": "nft", "address": nft, "abi": "erc721", "start_block": start}])]})
    follower = make_follower(settings.chain("anvil"), pool, settings)

    async def index(mine: int = 0) -> int:
        if mine:
            rpc_sync(anvil.url, "anvil_mine", [hex(mine)])
        await follower.backfill()
        for _ in range(20):
            if await follower.step():
                break
        async with pool.acquire() as conn:
            return await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = 'anvil'")

    def tx(frm: str, sig: str, types: list[str], args: list) -> None:
        send(anvil.url, frm, nft, calldata(sig, types, args))

    x = fresh_address().lower()
    try:
        for tok, to in ((1, D1), (2, D1), (3, D2), (4, D2), (5, D3), (6, x)):
            tx(OWNER, "mint(address,uint256)", ["address", "uint256"], [to, tok])
        h0 = await index(mine=4)
        tx(D1, "transferFrom(address,address,uint256)", ["address", "address", "uint256"], [D1, D2, 2])
        tx(D3, "burn(uint256)", ["uint256"], [5])
        await index(mine=4)
        # A transfer above finality, then a reorg replaces it with another one.
        snap = rpc_sync(anvil.url, "evm_snapshot")
        tx(D2, "transferFrom(address,address,uint256)", ["address", "address", "uint256"], [D2, D3, 3])
        final = await index()
        head = int(anvil.rpc("eth_blockNumber", []), 16)
        assert head > final
        with pytest.raises(SnapshotRefused) as exc:
            await create_snapshot(pool, settings, SnapshotRequest("above", "erc721", chain="anvil", contract=nft,
                                                                  height=head), "t")
        assert exc.value.field == "height"
        assert rpc_sync(anvil.url, "evm_revert", [snap])
        rpc_sync(anvil.url, "anvil_mine", ["0x2"])
        tx(D2, "transferFrom(address,address,uint256)", ["address", "address", "uint256"], [D2, D1, 4])
        await index()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM reorgs WHERE chain = 'anvil'") >= 1
        h = await index(mine=4)
        for sid, height in (("at-h0", h0), ("at-h", h)):
            await create_snapshot(pool, settings, SnapshotRequest(sid, "erc721", chain="anvil", contract=nft,
                                                                  height=height, opening=()), "t")
            async with pool.acquire() as conn:
                got = dict(await snapshot_weights(conn, sid))
            assert got == owners_at(anvil.url, nft, range(1, 7), height), sid
        assert got == {D1: 2, D2: 2, x: 1}  # 3 stayed with D2: the reorged transfer never happened
    finally:
        await follower.close()
