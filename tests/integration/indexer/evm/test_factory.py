"""Factory children: discovered from the factory's events, indexed from their creation block."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess

import pytest

from indexer.evm import fetch
from indexer.evm.follower import EvmFollower
from tests.integration.indexer.evm.test_integrity import wait_final
from tests.integration.indexer.evm.test_kill import ROOT, cli, daemon_env
from tests.integration.indexer.evm.test_reorgs import wait_synced
from tests.support.anvil import Anvil, rpc_sync
from tests.support.api_data import client_for
from tests.support.config import evm_chain, make_settings, write_config
from tests.support.evm import calldata
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
from tests.support.fault_proxy import FaultProxy


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

    # Listed by the API (keyset pages by address) and counted in the status.
    async with client_for(settings, pool) as client:
        seen, after = [], None
        while True:
            resp = await client.get("/v1/chains/local/children", params={"limit": "3", **({"after": after} if after else {})})
            assert resp.status == 200
            page = await resp.json()
            seen += page["children"]
            if not (after := page["next"]):
                break
        assert {c["address"]: c["block_number"] for c in seen} == canonical(anvil.url, factory)[0]
        assert all(c["factory"] == "Rounds" and c["final"] for c in seen)
        assert (await client.get("/v1/chains/nope/children")).status == 404
        status = await (await client.get("/v1/status")).json()
        assert status["chains"][0]["factory_children"] == len(seen)


def rounds_of(url: str, factory: str) -> int:
    return int(rpc_sync(url, "eth_call", [{"to": factory, "data": calldata("rounds()", [], [])}, "latest"]), 16)


async def assert_children_match_their_announcements(pool) -> None:
    """Every stored child has its RoundCreated row at its key, and every RoundCreated row its child."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        orphans = await conn.fetchval(
            """SELECT count(*) FROM factory_children c WHERE NOT EXISTS (
                 SELECT 1 FROM events e WHERE e.chain = c.chain AND e.block_number = c.block_number
                   AND e.block_hash = c.block_hash AND e.log_index = c.log_index AND e.event = 'RoundCreated'
                   AND e.args->>'round' = c.address)""")
        unannounced = await conn.fetchval(
            """SELECT count(*) FROM events e WHERE e.event = 'RoundCreated' AND NOT EXISTS (
                 SELECT 1 FROM factory_children c WHERE c.chain = e.chain AND c.address = e.args->>'round')""")
        # No child's events before its creation block.
        early = await conn.fetchval(
            """SELECT count(*) FROM events e JOIN factory_children c ON c.chain = e.chain AND c.address = e.address
               WHERE e.block_number < c.block_number""")
    assert (orphans, unannounced, early) == (0, 0, 0)


async def test_live_children_under_reorgs_and_sigkills(pool, db_url, tmp_path):
    """50 children over a live run with reorgs of depth 1-3 (some removing creations) and SIGKILLs."""
    await live_run(29, pool, db_url, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(30, 35))
async def test_live_children_soak(pool, db_url, tmp_path, seed):
    await live_run(seed, pool, db_url, tmp_path)


async def live_run(seed: int, pool, db_url, tmp_path) -> None:
    rng = random.Random(seed)
    with Anvil() as node:
        factory = deploy_factory(node.url)
        deployed = head_number(node.url)
        rpc_sync(node.url, "anvil_mine", ["0x8"])  # reorgs never reach the factory's deployment
        cfg = evm_chain("local", node.url, finality_depth=5, poll_interval=0.05,
                        contracts=[factory_contract(factory, deployed)])
        config = write_config(tmp_path / "chainsettle.toml", {"chains": [cfg]})
        env = daemon_env(db_url)
        log = tmp_path / "run.log"
        proc = None
        kills = reorgs = removed = 0
        try:
            proc = start_daemon(config, env, log)
            while rounds_of(node.url, factory) < 50 or kills < 4 or removed < 3:
                children = list(canonical(node.url, factory)[0])
                if not children or rng.random() < 0.5:
                    create(node.url, factory, tickets=rng.randrange(3))
                else:
                    buy(node.url, rng.choice(children), rng.randrange(1, 4))
                if rng.random() < 0.15:
                    if rng.random() < 0.5:
                        await wait_synced(pool, node.url)  # else: while the daemon may be mid-range
                    depth = rng.randrange(1, 4)
                    before = set(canonical(node.url, factory)[0])
                    txs = [[create_tx(factory, rng.randrange(3)) if rng.random() < 0.3 or not children
                            else buy_tx(rng.choice(children)), rng.randrange(depth)]
                           for _ in range(rng.randrange(0, 3))]
                    rpc_sync(node.url, "anvil_reorg", [depth, txs])
                    reorgs += 1
                    removed += len(before - set(canonical(node.url, factory)[0]))
                if rng.random() < 0.08:
                    await asyncio.sleep(rng.uniform(0, 0.3))
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    kills += 1
                    await assert_children_match_their_announcements(pool)
                    proc = start_daemon(config, env, log)
                assert proc.poll() is None, log.read_text()[-3000:]
            await wait_synced(pool, node.url, timeout=60)
            want = canonical(node.url, factory)
            got = await stored(pool)
            assert len(want[0]) >= 50
            assert got[0] == want[0]
            assert got[1] == want[1]
            await assert_children_match_their_announcements(pool)
            assert await pool.fetchval("SELECT count(*) FROM reorgs WHERE chain = 'local'") >= 1
            assert reorgs >= 5 and removed >= 3 and kills >= 4
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def start_daemon(config, env, log) -> subprocess.Popen:
    with log.open("ab") as err:
        return subprocess.Popen(cli(config, "run"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)


@pytest.mark.parametrize("confirm", [3, 0], ids=["confirm-window", "bloom-only"])
async def test_children_announced_in_logs_a_lagging_backend_left_out(anvil, pool, tmp_path, confirm):
    """The announcing log itself can be what a lagging backend leaves out: found by the re-queries, child and all.

    Without a confirmation window the bloom re-query is the only way back.
    """
    proxy = FaultProxy(anvil.url, seed=29, name="lb")
    await proxy.start()
    proxy.lag_newest_logs = 0.6
    factory = deploy_factory(anvil.url)
    cfg = evm_chain("local", proxy.url, finality_depth=1, confirmation_blocks=confirm, poll_interval=0.05,
                    request_timeout=5, contracts=[factory_contract(factory, head_number(anvil.url))])
    follower = EvmFollower(make_settings(tmp_path, {"chains": [cfg]}).chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    rng = random.Random(3)
    try:
        rounds: list[str] = []
        for _ in range(40):
            if not rounds or rng.random() < 0.5:
                rounds.append(created(await asyncio.to_thread(create, anvil.url, factory, rng.randrange(3))))
            else:
                await asyncio.to_thread(buy, anvil.url, rng.choice(rounds), 1)
            await asyncio.sleep(rng.choice((0, 0.02, 0.05)))
        await asyncio.to_thread(rpc_sync, anvil.url, "anvil_mine", ["0x4"])
        await wait_final(pool, head_number(anvil.url) - confirm, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await follower.close()
        await proxy.stop()
    got, want = await stored(pool), canonical(anvil.url, factory)
    assert got[0] == want[0]
    assert sorted(set(want[1]) - set(got[1])) == [] and sorted(set(got[1]) - set(want[1])) == []
    assert got[1] == want[1]
    assert proxy.stats.faults["lagging_logs"] >= 3
