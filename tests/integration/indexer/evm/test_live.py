"""Live follow: newHeads over WebSocket wakes the follower; polling is the fallback."""

from __future__ import annotations

import asyncio

from indexer.evm.follower import EvmFollower
from tests.integration.indexer.evm.test_reorgs import wait_synced
from tests.support.config import evm_chain, make_settings
from tests.support.evm import batch_transfer, deploy_token


async def _follow_and_watch(pool, settings, node_url: str, token: str) -> None:
    follower = EvmFollower(settings.chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        await wait_synced(pool, node_url, timeout=20)
        for i in range(3):
            batch_transfer(node_url, token, ["0x" + f"{i + 1:040x}"], [i + 1])
            # The poll interval is 30 s: only a newHeads wake-up gets here in time.
            await wait_synced(pool, node_url, timeout=10)
        assert follower._heads is not None and follower._heads.connected
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await follower.close()


async def test_newheads_wakes_the_follower(anvil, pool, tmp_path):
    token = deploy_token(anvil.url)
    cfg = evm_chain("local", anvil.url, token, finality_depth=2, poll_interval=30, ws=anvil.ws_url)
    settings = make_settings(tmp_path, {"chains": [cfg]})
    await _follow_and_watch(pool, settings, anvil.url, token)
    count = await pool.fetchval("SELECT count(*) FROM events WHERE chain = 'local'")
    assert count == 4  # the mint and three transfers


async def test_polling_follow_sees_every_block(anvil, pool, tmp_path):
    token = deploy_token(anvil.url)
    settings = make_settings(tmp_path, {"chains": [evm_chain("local", anvil.url, token, finality_depth=2, poll_interval=0.1)]})
    follower = EvmFollower(settings.chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        for i in range(5):
            batch_transfer(anvil.url, token, ["0x" + f"{i + 1:040x}"], [1])
        await wait_synced(pool, anvil.url)
        assert await pool.fetchval(
            "SELECT count(*) FROM events WHERE chain = 'local' AND address = $1", token.lower()) == 6
        status = await pool.fetchval("SELECT status FROM chain_state WHERE chain = 'local'")
        assert status["state"] == "following" and status["endpoints"][0]["healthy"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await follower.close()
