"""Factory children: discovered from the factory's events, indexed from their creation block."""

from __future__ import annotations

import pytest

from indexer.evm import fetch
from indexer.evm.follower import EvmFollower
from tests.support.anvil import rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.factory import (
    buy,
    buy_tx,
    canonical,
    create,
    create_tx,
    created,
    deploy_factory,
    factory_contract,
    mine_together,
    stored,
)


def head_number(url: str) -> int:
    return int(rpc_sync(url, "eth_blockNumber", []), 16)


@pytest.mark.parametrize("chunk", [1000, 2], ids=["one-request", "address-chunks"])
async def test_backfill_finds_children_and_their_events_from_the_creating_block(anvil, pool, tmp_path,
                                                                                monkeypatch, chunk):
    monkeypatch.setattr(fetch, "ADDRESS_CHUNK", chunk)
    factory = deploy_factory(anvil.url)
    start = head_number(anvil.url)
    rounds = []
    for i in range(7):
        # Tickets in the creating transaction: the child emits before it is announced.
        rounds.append(created(create(anvil.url, factory, tickets=i % 3)))
        # and in later blocks, some of them inside the range that created it
        buy(anvil.url, rounds[0], 2)
        if i % 2:
            buy(anvil.url, rounds[-1], 1)
        # A block with a log of the factory and one of the newest child: the
        # bloom check cannot tell that the child's log is missing.
        mine_together(anvil.url, [create_tx(factory), buy_tx(rounds[-1])])
    rpc_sync(anvil.url, "anvil_mine", ["0x3"])
    # A narrow range: children appear in ranges whose successors are already fetched ahead.
    cfg = evm_chain("local", anvil.url, finality_depth=1, max_logs_range=2,
                    contracts=[factory_contract(factory, start)])
    settings = make_settings(tmp_path, {"chains": [cfg]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        await follower.backfill()
    finally:
        await follower.close()
    want_children, want_keys = canonical(anvil.url, factory)
    got_children, got_keys = await stored(pool)
    assert set(rounds) < set(want_children)
    assert got_children == want_children
    assert got_keys == want_keys
    events = {k[5] for k in got_keys}
    assert events == {"RoundCreated", "Opened", "Ticket"}
    # Opened is emitted in the constructor: in the creating block, before RoundCreated.
    opened = {k[4]: k[0] for k in got_keys if k[5] == "Opened"}
    assert opened == want_children

    # A replay inserts nothing; a restarted follower knows the children.
    again = EvmFollower(settings.chains[0], pool)
    try:
        assert await again.backfill(from_block=start) == 0
        buy(anvil.url, rounds[3], 4)
        rpc_sync(anvil.url, "anvil_mine", ["0x1"])
        assert await again.backfill() == 4
    finally:
        await again.close()
    assert await stored(pool) == canonical(anvil.url, factory)
