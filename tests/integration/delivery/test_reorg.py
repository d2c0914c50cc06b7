"""A reorg after `observed` was delivered: `reverted` for exactly the removed events; `final` never sees them."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from indexer.evm.follower import EvmFollower
from tests.integration.indexer.evm.test_reorgs import transfer_tx, wait_synced
from tests.support.anvil import Anvil, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.delivery import FAST, SECRET, running_relay, webhook
from tests.support.evm import batch_transfer, deploy_token
from tests.support.receiver import Receiver


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


def stages(receiver: Receiver) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"observed": set(), "final": set(), "reverted": set()}
    seen = set()
    for r in receiver.accepted:
        if r.msg_id in seen:
            continue
        seen.add(r.msg_id)
        doc = orjson.loads(r.body)
        out[doc["stage"]].add(doc["event_id"])
    return out


async def test_reorg_reverts_exactly_the_removed_events(node, pool, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("WH_SECRET", SECRET)
    rng = random.Random(3)
    token = deploy_token(node.url)
    instant = await Receiver().start()
    final = await Receiver().start()
    chain = evm_chain("local", node.url, token, finality_depth=6, poll_interval=0.05)
    settings = make_settings(tmp_path, {
        "chains": [chain], "delivery": FAST,
        "deliveries": [webhook("instant", instant.url, ordering="strict", start="earliest"),
                       webhook("final", final.url, finality="final", start="earliest")]})
    follower = EvmFollower(settings.chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        async with running_relay(settings, pool, db_url):
            for _ in range(4):
                batch_transfer(node.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(3)], [1, 2, 3])
            await wait_synced(pool, node.url)
            before = {f"ev_local_{i}" for i in await pool.fetchval("SELECT array_agg(id) FROM events")}
            await instant.wait_for(lambda: stages(instant)["observed"] >= before)
            assert stages(final)["observed"] == set() and stages(final)["final"] <= before

            # Replace the last 2 blocks with one other transfer.
            rpc_sync(node.url, "anvil_reorg", [2, [[transfer_tx(token, rng), 0]]])
            await wait_synced(pool, node.url)
            after = {f"ev_local_{i}" for i in await pool.fetchval("SELECT array_agg(id) FROM events")}
            removed = before - after
            assert removed, "the reorg removed nothing"
            await instant.wait_for(lambda: stages(instant)["reverted"] >= removed)

            # Mine past the finality depth: everything left becomes final.
            for _ in range(8):
                rpc_sync(node.url, "evm_mine", [])
            await wait_synced(pool, node.url)
            await final.wait_for(lambda: stages(final)["final"] >= after)
            await instant.wait_for(lambda: stages(instant)["final"] >= after)
            await asyncio.sleep(0.5)
        got, fin = stages(instant), stages(final)
        assert got["reverted"] == removed                      # exactly the removed ones
        assert got["observed"] == after | removed
        assert got["final"] == after                            # never final for a removed event
        assert fin["final"] == after and not (fin["final"] & removed)
        assert fin["observed"] == set() and fin["reverted"] == set()
        # A reverted message carries the event as it was, under the same id as its observed one.
        for r in instant.accepted:
            doc = orjson.loads(r.body)
            if doc["stage"] == "reverted":
                assert doc["type"] == "chain_event.reverted" and doc["data"]["address"] == token.lower()
                assert "ledger_reversal" in doc["data"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await follower.close()
        await instant.stop()
        await final.stop()
