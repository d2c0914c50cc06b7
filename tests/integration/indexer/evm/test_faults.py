"""Faulty endpoints slow the EVM follower down but never change what it stores.

The follower talks to anvil only through fault-injecting proxies
(tests/support/fault_proxy.py); what it stores is compared row for row
with eth_getLogs asked of anvil directly and decoded with eth_abi.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import REGISTRY

from indexer.errors import RpcErrorKind
from indexer.evm.follower import EvmFollower
from indexer.evm.rpc import classify_rpc_error
from tests.integration.indexer.evm.test_backfill import independent_rows, stored_rows
from tests.support.anvil import rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import batch_transfer, deploy_token
from tests.support.fault_proxy import HTTP_FAULTS, SPAN_STYLES, FaultProxy

CAP = 250  # the count-limited proxy's eth_getLogs cap; one block holds more
RATES = {
    "rpc_error": 0.04, "http_500": 0.03, "http_503": 0.03, "http_429": 0.04, "timeout": 0.02,
    "truncated": 0.03, "cut_json": 0.03, "reset": 0.02, "wrong_id": 0.02,
}
TIMEOUT = 0.4  # the chain's request_timeout; "timeout" faults answer after 0.6 s


@pytest.fixture(scope="module")
def filled(anvil):
    """3,001 Transfer events over 30 blocks, then one block with 400 (over CAP)."""
    token = deploy_token(anvil.url)
    rng = random.Random(3)
    for _ in range(30):
        batch_transfer(anvil.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(100)],
                       [rng.randrange(1, 10**24) for _ in range(100)])
    receipt = batch_transfer(anvil.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(400)], [5] * 400)
    rpc_sync(anvil.url, "anvil_mine", ["0x4"])
    return {"token": token, "big_block": int(receipt["blockNumber"], 16)}


@pytest.fixture
async def proxies(anvil):
    journal: list = []
    ps = [FaultProxy(anvil.url, seed=i, name=f"p{i}", journal=journal) for i in range(2)]
    for p in ps:
        p.timeout_sleep = TIMEOUT + 0.2
        await p.start()
    yield ps
    for p in ps:
        await p.stop()


def chain_cfg(rpc: list[str], token: str, **extra) -> dict:
    extra.setdefault("finality_depth", 3)
    extra.setdefault("poll_interval", 0.05)
    return evm_chain("local", rpc, token, request_timeout=TIMEOUT, **extra)


def node_head(url: str) -> dict:
    return rpc_sync(url, "eth_getBlockByNumber", ["latest", False])


async def wait_synced(pool, url: str, task: asyncio.Task, timeout: float = 30) -> None:
    """Until the stored cursor is anvil's head block, hash included."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        h = node_head(url)
        row = await pool.fetchrow("SELECT cursor_number, cursor_hash FROM chain_state WHERE chain = 'local'")
        if row and row["cursor_number"] == int(h["number"], 16) and row["cursor_hash"] == h["hash"]:
            return
        if task.done():
            task.result()
            raise AssertionError("follower task ended")
        if loop.time() > deadline:
            raise AssertionError(f"follower did not reach head {int(h['number'], 16)}: {dict(row) if row else None}")
        await asyncio.sleep(0.05)


async def follow_new_blocks(follower: EvmFollower, pool, url: str, token: str, seed: int, blocks: int = 4) -> None:
    """Live-follow: new transfers while run() is going; returns once indexed to the head."""
    rng = random.Random(seed)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        for _ in range(blocks):
            batch_transfer(url, token, ["0x" + rng.randbytes(20).hex() for _ in range(20)], [rng.randrange(1, 99)] * 20)
            await asyncio.sleep(0.1)
        await wait_synced(pool, url, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def honoured(journal: list) -> list[tuple[int, int]]:
    """Hinted ranges that a later eth_getLogs asked for exactly (on any endpoint)."""
    out = []
    for i, (kind, _, a, b) in enumerate(journal):
        if kind == "hint" and a < b and any(k == "getlogs" and (x, y) == (a, b) for k, _, x, y in journal[i + 1:]):
            out.append((a, b))
    return out


async def test_faulty_and_limited_endpoints_change_nothing(anvil, filled, proxies, pool, tmp_path):
    faulty, limited = proxies
    # Every kind at least once (scripted), then at random; the Infura-style
    # count cap hints a range; the other endpoint caps the span, coreth-style.
    faulty.set_faults(rates=RATES, script=list(HTTP_FAULTS))
    faulty.limits.max_logs = CAP
    faulty.limits.count_style = "infura"
    limited.limits.max_span = 10
    limited.limits.span_style = "coreth"
    limited.limits.max_logs = CAP
    limited.limits.count_style = "alchemy"
    settings = make_settings(tmp_path, {"chains": [chain_cfg([faulty.url, limited.url], filled["token"])]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        new = await follower.backfill()
        assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled["token"])
        assert new == len(independent_rows(anvil.url, filled["token"]))
        await follow_new_blocks(follower, pool, anvil.url, filled["token"], seed=1)
    finally:
        await follower.close()
    assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled["token"])
    assert await pool.fetchval("SELECT count(*) FROM raw_logs") == 0

    # Faults did happen, and the faulty endpoint lost its place to the honest one.
    assert sum(faulty.stats.faults[k] for k in HTTP_FAULTS) >= 1
    health = {h["endpoint"].split(":")[0]: h for h in follower.rpc.health()}
    assert health["0"]["errors"] >= 1
    assert limited.stats.requests > faulty.stats.requests
    # Too-large answers shrank the range, and hinted ranges were asked for.
    limits_hit = faulty.stats.faults["count_limit"] + limited.stats.faults["count_limit"] + limited.stats.faults["span_limit"]
    assert limits_hit > 0
    assert honoured(faulty.journal), "no hinted range was asked for"
    spans = [b - a + 1 for a, b in faulty.stats.getlogs + limited.stats.getlogs]
    assert max(spans) > 10 and min(spans) <= 2
    assert follower.sizer.ceiling <= 10
    # The block over the cap came from its receipts.
    assert faulty.stats.calls["eth_getBlockReceipts"] + limited.stats.calls["eth_getBlockReceipts"] >= 1
    big = await pool.fetchval("SELECT count(*) FROM events WHERE block_number = $1", filled["big_block"])
    assert big == 400


async def test_span_limit_hint_caps_the_range(anvil, filled, proxies, pool, tmp_path):
    """A maximum span read from the error text becomes the sizer's ceiling."""
    p = proxies[0]
    p.limits.max_span = 7
    p.limits.span_style = "quicknode"
    settings = make_settings(tmp_path, {"chains": [chain_cfg([p.url], filled["token"], max_logs_range=1000)]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        await follower.backfill()
    finally:
        await follower.close()
    cursor = await pool.fetchval("SELECT cursor_number FROM chain_state WHERE chain = 'local'")
    assert cursor == int(node_head(anvil.url)["number"], 16) - 2
    assert await stored_rows(pool, "local") == [r for r in independent_rows(anvil.url, filled["token"]) if r[0] <= cursor]
    assert p.stats.faults["span_limit"] >= 1
    spans = [b - a + 1 for a, b in p.stats.getlogs]
    first_error = next(i for i, s in enumerate(spans) if s > 7)
    # After the first refusal the follower never asks for more than the hinted span.
    assert all(s <= 7 for s in spans[first_error + 1:])
    assert follower.sizer.size <= 7


async def test_receipts_fallback_without_get_block_receipts(anvil, filled, proxies, pool, tmp_path):
    """A block over the cap, on an endpoint without eth_getBlockReceipts: one receipt per transaction."""
    p = proxies[0]
    p.limits.max_logs = CAP
    p.limits.count_style = "geth"  # no hint: plain halving down to one block
    p.unsupported = {"eth_getBlockReceipts"}
    big = filled["big_block"]
    settings = make_settings(tmp_path, {"chains": [chain_cfg([p.url], filled["token"])]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        await follower.backfill(from_block=big - 3, to_block=big + 1)
    finally:
        await follower.close()
    expected = [r for r in independent_rows(anvil.url, filled["token"]) if big - 3 <= r[0] <= big + 1]
    assert await stored_rows(pool, "local") == expected
    assert p.stats.calls["eth_getTransactionReceipt"] >= 1
    assert await pool.fetchval("SELECT count(*) FROM events WHERE block_number = $1", big) == 400


async def test_only_faulty_endpoints_still_converge(anvil, filled, proxies, pool, tmp_path):
    """No honest endpoint at all: every one fails often, but each answers eventually."""
    for i, p in enumerate(proxies):
        script = [k for kind in HTTP_FAULTS[i::2] for k in (kind, "ok")]
        p.set_faults(rates=RATES, script=script)
        p.limits.max_logs = 300 + 100 * i
        p.limits.count_style = ("geth", "alchemy")[i]
    settings = make_settings(tmp_path, {"chains": [chain_cfg([p.url for p in proxies], filled["token"])]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        await follow_new_blocks(follower, pool, anvil.url, filled["token"], seed=2)
    finally:
        await follower.close()
    assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled["token"])
    # Every kind of fault was met, and many faults in all.
    seen = set().union(*(set(p.stats.faults) for p in proxies))
    assert set(HTTP_FAULTS) <= seen
    assert sum(sum(p.stats.faults[k] for k in HTTP_FAULTS) for p in proxies) > len(HTTP_FAULTS)


@pytest.mark.parametrize("lie", [1000, 2])
async def test_lying_head_endpoint_changes_nothing(anvil, filled, proxies, pool, tmp_path, lie):
    """One endpoint claims a head above the real one (and has none of the blocks it made up)."""
    liar, honest = proxies
    liar.head_lie = lie
    settings = make_settings(tmp_path, {"chains": [chain_cfg([liar.url, honest.url], filled["token"])]})
    follower = EvmFollower(settings.chains[0], pool)
    try:
        await follow_new_blocks(follower, pool, anvil.url, filled["token"], seed=3 + lie)
        state = await pool.fetchrow("SELECT cursor_number, final_number FROM chain_state WHERE chain = 'local'")
    finally:
        await follower.close()
    assert liar.stats.faults["head_lie"] > 0
    assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled["token"])
    real_head = int(node_head(anvil.url)["number"], 16)
    # The made-up blocks were never asked for, and nothing was declared
    # final on the liar's word: finality depth 3 below the real head.
    assert max(liar.stats.blocks_asked + honest.stats.blocks_asked) <= real_head
    assert max(b for _, b in liar.stats.getlogs + honest.stats.getlogs) <= real_head
    assert state["final_number"] <= real_head - 2
    assert state["cursor_number"] == real_head


async def test_every_endpoint_down_keeps_retrying_then_recovers(anvil, filled, proxies, pool, tmp_path):
    settings = make_settings(tmp_path, {"chains": [chain_cfg([p.url for p in proxies], filled["token"], max_attempts=2)]})
    follower = EvmFollower(settings.chains[0], pool)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        await wait_synced(pool, anvil.url, task)
        for p in proxies:
            await p.go_down()
        rng = random.Random(4)
        batch_transfer(anvil.url, filled["token"], ["0x" + rng.randbytes(20).hex() for _ in range(10)], [3] * 10)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while follower.state != "retrying":
            assert loop.time() < deadline, f"state stayed {follower.state}"
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.5)  # several retry rounds, all failing
        assert follower.state == "retrying"
        assert not task.done()
        status = await pool.fetchval("SELECT status FROM chain_state WHERE chain = 'local'")
        assert status["state"] == "retrying"
        assert "all 2 endpoints failed" in status["last_error"]
        assert not any(e["healthy"] for e in status["endpoints"])
        assert REGISTRY.get_sample_value("chainsettle_follower_up", {"chain": "local"}) == 0
        for p in proxies:
            await p.come_up()
        await wait_synced(pool, anvil.url, task, timeout=60)
        assert follower.state == "following"
        assert REGISTRY.get_sample_value("chainsettle_follower_up", {"chain": "local"}) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await follower.close()
    assert await stored_rows(pool, "local") == independent_rows(anvil.url, filled["token"])


@pytest.mark.parametrize("style", SPAN_STYLES)
def test_every_emulated_provider_text_is_understood(style):
    """What the proxy says for each provider is read as "too large", with a usable hint."""
    p = FaultProxy("http://127.0.0.1:9")
    p.limits.max_span = 2000
    p.limits.span_style = style
    err = p._span_error(100, 5099)
    kind, hint = classify_rpc_error(err["code"], err["message"])
    assert kind is RpcErrorKind.RANGE_TOO_LARGE
    assert hint is None or hint == 2000
