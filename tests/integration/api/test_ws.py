"""The WebSocket feed (issue 27, item 4) on a real database: channels and who may read them, cursors
that resume without gaps or repeats across random disconnects (with `reverted` after a reorg
the store rolls back, as a follower does), a slow client cut off without holding back a fast
one, `cursor_too_old`, origin checks."""

from __future__ import annotations

import asyncio
import random

import aiohttp
import orjson

from delivery.messages import parse_position
from indexer.models import Cursor
from tests.integration.api.test_admin import AUTH, admin_settings, credit
from tests.support.api_data import address, block_hash, client_for, commit_blocks, event_row, register_chain, seeded
from tests.support.wallet import new_account, sign_in, with_signin

DEADLINE = 30.0


def ws_settings(tmp_path, monkeypatch, **api):
    base = admin_settings(tmp_path, monkeypatch, max_inflight_per_client=64, sse_heartbeat=0.3,
                          stream_slots_per_client=20, **api)
    return with_signin(base, monkeypatch, withdrawals={"cooldown_seconds": 0, "limits": [
        {"chain": "anvil", "asset": "native", "min": "1", "per_request": "1000", "per_day": "100000"}]})


async def open_ws(client, channels, cursor=None, token=None, headers=None):
    ws = await client.ws_connect("/v1/ws", headers=headers)
    await ws.send_str(orjson.dumps({"op": "subscribe", "channels": channels, "cursor": cursor,
                                    "token": token}).decode())
    first = orjson.loads((await ws.receive(DEADLINE)).data)
    return ws, first


async def next_frame(ws) -> dict | None:
    msg = await ws.receive(DEADLINE)
    if msg.type != aiohttp.WSMsgType.TEXT:
        return None
    return orjson.loads(msg.data)


async def read_until_quiet(ws, out: list[dict]) -> None:
    """Messages until a heartbeat (nothing new for a heartbeat's time)."""
    while True:
        frame = await next_frame(ws)
        assert frame is not None, "closed"
        if frame["type"] == "heartbeat":
            return
        out.append(frame)


def key(frame: dict) -> tuple:
    return frame["cursor"], frame["id"], frame["finality"]


async def resume_randomly(client, channels, cursor, want: int, rng: random.Random, token=None) -> list[dict]:
    """Read `want` messages, disconnecting after a random few each time, resuming from the last cursor."""
    got: list[dict] = []
    while len(got) < want:
        ws, hello = await open_ws(client, channels, cursor, token)
        assert hello["type"] == "subscribed", hello
        for _ in range(rng.randint(1, 7)):
            frame = await next_frame(ws)
            if frame is None or frame["type"] == "heartbeat":
                break
            got.append(frame)
            cursor = frame["cursor"]
            if len(got) >= want:
                break
        await ws.close()
    return got


async def test_resume_from_any_cursor_sees_each_message_once_in_order_with_reverted(tmp_path, pool, monkeypatch):
    settings = ws_settings(tmp_path, monkeypatch, sse_poll_interval=0.05)
    rng = random.Random(27)
    store = await register_chain(pool, "anvil")
    await commit_blocks(store, 0, 0, [], final_number=0)
    async with client_for(settings, pool) as client:
        steady, hello = await open_ws(client, ["feed"])
        start = hello["cursor"]
        # Phase 1: blocks 1..30, two events each, final height moving up behind them.
        for b in range(1, 31, 3):
            evs = [event_row("anvil", n, i, addr=address(300 + i)) for n in range(b, b + 3) for i in range(2)]
            await commit_blocks(store, b - 1, b + 2, evs, final_number=max(0, b - 6))
        reference: list[dict] = []
        while len([f for f in reference if f["finality"] == "observed"]) < 60:
            await read_until_quiet(steady, reference)
        await asyncio.sleep(0.5)
        await read_until_quiet(steady, reference)
        resumed = await resume_randomly(client, ["feed"], start, len(reference), rng)
        assert [key(f) for f in resumed] == [key(f) for f in reference]
        assert len({key(f) for f in reference}) == len(reference)  # never twice
        # Phase 2: a reorg above block 26 (the store's rollback, as a follower does), then a new branch.
        mid = reference[-1]["cursor"]
        await store.rollback_to(Cursor(26, block_hash("anvil", 26)), Cursor(30, block_hash("anvil", 30)))
        evs = [event_row("anvil", n, i, addr=address(400 + i), tx_index=1) for n in range(27, 33) for i in range(2)]
        await commit_blocks(store, 26, 32, evs, final_number=26)
        phase2: list[dict] = []
        while len([f for f in phase2 if f["finality"] == "reverted"]) < 8 or len(
                [f for f in phase2 if f["finality"] == "observed"]) < 12:
            await read_until_quiet(steady, phase2)
        resumed = await resume_randomly(client, ["feed"], mid, len(phase2), rng)
        assert [key(f) for f in resumed] == [key(f) for f in phase2]
        reverted = [f for f in phase2 if f["finality"] == "reverted"]
        assert {f["data"]["block_number"] for f in reverted} == {27, 28, 29, 30}
        observed_ids = {f["id"].removesuffix("_observed") for f in reference if f["finality"] == "observed"}
        assert {f["id"].removesuffix("_reverted") for f in reverted} <= observed_ids  # seen, then reverted
        positions = [parse_position(f["cursor"]) for f in reference + phase2]
        assert positions == sorted(positions)  # one total order
        await steady.close()


async def test_channels_refuse_what_the_token_cannot_read(tmp_path, pool, monkeypatch):
    settings = ws_settings(tmp_path, monkeypatch, cors_origins=["https://app.example"])
    await seeded(pool, "anvil", blocks=10)
    alice, bob = new_account(), new_account()
    await credit(pool, alice.address.lower(), 5000)
    await credit(pool, bob.address.lower(), 5000)
    async with client_for(settings, pool) as client:
        sa, sb = await sign_in(client, alice), await sign_in(client, bob)
        info = await (await client.get("/v1/ws")).json()  # a plain GET describes the protocol
        assert info["channels"] == ["feed", "account", "admin"]
        for channels, token, headers, error in ((["account"], None, None, "unauthorized"),
                                                (["account"], None, AUTH, "forbidden"),
                                                (["admin"], sa["token"], None, "forbidden"),
                                                (["feed"], "forged.token.here", None, "unauthorized"),
                                                (["nope"], None, None, "bad_request")):
            ws, frame = await open_ws(client, channels, token=token, headers=headers)
            assert (frame["type"], frame["error"]) == ("error", error), (channels, frame)
            await ws.receive(DEADLINE)
            assert ws.closed and ws.close_code >= 4400
        ws, frame = await open_ws(client, ["feed"], cursor="not-a-cursor")
        assert frame["error"] == "bad_request" and "cursor" in frame["message"]
        await ws.close()
        # A browser from another origin is refused before the upgrade; an allowed one is not.
        try:
            await client.ws_connect("/v1/ws", headers={"Origin": "https://evil.example"})
            raise AssertionError("connected from a refused origin")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        ws, frame = await open_ws(client, ["feed"], headers={"Origin": "https://app.example"})
        assert frame["type"] == "subscribed"
        await ws.close()

        # The account channel: Alice's withdrawal and balance reach Alice, not Bob; the feed channel
        # without the admin token carries no payout at all.
        wa, hello = await open_ws(client, ["account"], token=sa["token"])
        assert hello["type"] == "subscribed"
        wb, _ = await open_ws(client, ["account", "feed"], token=sb["token"])
        wadmin, _ = await open_ws(client, ["admin"], headers=AUTH)
        r = await client.post("/v1/me/withdrawals", json={"chain": "anvil", "asset": "native", "amount": "40",
                                                          "key": "ws1"}, headers={"Authorization": f"Bearer {sa['token']}"})
        assert r.status == 201, await r.text()
        mine = []
        while not any(f["type"] == "balance" for f in mine):
            frame = await next_frame(wa)
            if frame["type"] != "heartbeat":
                mine.append(frame)
        payout = next(f for f in mine if f["type"] == "payout")
        assert (payout["channel"], payout["finality"], payout["data"]["amount"]) == ("account", "final", "40")
        balance = next(f for f in mine if f["type"] == "balance")
        assert balance["data"]["balances"][0]["available"] == "4960"
        admin_frame = None
        while admin_frame is None:
            frame = await next_frame(wadmin)
            if frame["type"] == "payout":
                admin_frame = frame
        assert admin_frame["cursor"] == payout["cursor"]  # one order, one cursor, every channel
        theirs = []
        await read_until_quiet(wb, theirs)
        await read_until_quiet(wb, theirs)
        assert not any(f["type"] in ("payout", "balance") for f in theirs), theirs
        # A revoked session cannot subscribe.
        await client.post("/v1/auth/logout", headers={"Authorization": f"Bearer {sb['token']}"})
        ws, frame = await open_ws(client, ["account"], token=sb["token"])
        assert frame["error"] == "unauthorized"
        for w in (wa, wb, wadmin, ws):
            await w.close()


async def test_cursor_too_old_is_said_explicitly(tmp_path, pool, monkeypatch):
    settings = ws_settings(tmp_path, monkeypatch, ws_max_catch_up=100)
    store = await register_chain(pool, "anvil")
    evs = [event_row("anvil", n, i, addr=address(500 + i)) for n in range(1, 81) for i in range(2)]
    await commit_blocks(store, 0, 80, evs, final_number=0)
    async with client_for(settings, pool) as client:
        ws, hello = await open_ws(client, ["feed"], cursor="0.0")
        assert hello["type"] == "subscribed"
        frames = []
        while True:
            frame = await next_frame(ws)
            if frame is None:
                break
            frames.append(frame)
            if frame["type"] == "error":
                break
        assert frames[-1]["error"] == "cursor_too_old", frames[-1]
        await ws.receive(DEADLINE)
        assert ws.close_code == 4410


async def test_a_slow_client_is_cut_off_and_the_others_get_everything(tmp_path, pool, monkeypatch):
    settings = ws_settings(tmp_path, monkeypatch, ws_send_queue=100, sse_poll_interval=0.05)
    store = await register_chain(pool, "anvil")
    await commit_blocks(store, 0, 0, [], final_number=0)
    big = "x" * 30_000
    blocks = 300
    async with client_for(settings, pool) as client:
        slow, hello = await open_ws(client, ["feed"])
        assert hello["type"] == "subscribed"
        # Then it stops reading, at the socket: what the server sends piles up in the kernel's buffers.
        transport = slow._conn.transport
        transport.pause_reading()
        fast, _ = await open_ws(client, ["feed"])

        async def read_fast() -> list[dict]:
            got: list[dict] = []
            while len(got) < blocks:
                frame = await next_frame(fast)
                assert frame is not None, "the fast client was cut off"
                if frame["type"] != "heartbeat":
                    got.append(frame)
            return got

        reading = asyncio.create_task(read_fast())
        for b in range(1, blocks + 1, 10):
            evs = [event_row("anvil", n, 0, addr=address(600), args={"from": address(1), "to": address(2),
                                                                     "value": "1", "memo": big})
                   for n in range(b, b + 10)]
            await commit_blocks(store, b - 1, b + 9, evs, final_number=0)
        got = await reading
        assert [f["data"]["block_number"] for f in got] == list(range(1, blocks + 1))
        # The slow one was cut off: reading again, it finds the end of its connection before the end of the data.
        transport.resume_reading()
        seen = 0
        while True:
            msg = await slow.receive(DEADLINE)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            kind = orjson.loads(msg.data)["type"]
            seen += kind == "chain_event"
            assert kind != "heartbeat", f"the slow client was never cut off ({seen} messages)"
        assert seen < blocks
        metrics = await (await client.get("/metrics")).text()
        dropped = [line for line in metrics.splitlines() if line.startswith("chainsettle_api_ws_dropped_clients_total")]
        assert dropped and float(dropped[0].split()[-1]) >= 1
        await fast.close()


async def test_a_reorg_on_anvil_reaches_a_resuming_client_as_reverted(tmp_path, pool, monkeypatch):
    """A follower on anvil, a reorg (anvil_reorg), then finality: a client that disconnects at random
    points and resumes sees exactly what a client that stayed connected saw: every event observed,
    then `reverted` for the removed ones and `final` for the rest, once each, in order."""
    from indexer.evm.follower import EvmFollower
    from tests.integration.indexer.evm.test_reorgs import transfer_tx, wait_synced
    from tests.support.anvil import Anvil, rpc_sync
    from tests.support.config import evm_chain
    from tests.support.evm import batch_transfer, deploy_token

    rng = random.Random(11)
    with Anvil() as node:
        token = deploy_token(node.url)
        base = ws_settings(tmp_path, monkeypatch, sse_poll_interval=0.05)
        cfg = base.model_copy(update={"chains": [
            type(base.chains[0]).model_validate(evm_chain("anvil", node.url, token, finality_depth=6,
                                                          poll_interval=0.05))]})
        follower = EvmFollower(cfg.chains[0], pool)
        stop = asyncio.Event()
        task = asyncio.create_task(follower.run(stop))
        try:
            async with client_for(cfg, pool) as client:
                steady, hello = await open_ws(client, ["feed"])
                start = hello["cursor"]
                for _ in range(4):
                    batch_transfer(node.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(3)], [1, 2, 3])
                await wait_synced(pool, node.url, "anvil")
                before = set(await pool.fetchval("SELECT array_agg(id) FROM events"))
                phase1: list[dict] = []
                while {int(f["id"].split("_")[2]) for f in phase1 if f["finality"] == "observed"} < before:
                    await read_until_quiet(steady, phase1)
                resumed = await resume_randomly(client, ["feed"], start, len(phase1), rng)
                assert [key(f) for f in resumed] == [key(f) for f in phase1]
                mid = phase1[-1]["cursor"]

                rpc_sync(node.url, "anvil_reorg", [2, [[transfer_tx(token, rng), 0]]])
                await wait_synced(pool, node.url, "anvil")
                for _ in range(8):
                    rpc_sync(node.url, "evm_mine", [])
                await wait_synced(pool, node.url, "anvil")
                after = set(await pool.fetchval("SELECT array_agg(id) FROM events"))
                removed = before - after
                assert removed, "the reorg removed nothing"
                phase2: list[dict] = []

                def ids(frames, finality):
                    return {int(f["id"].split("_")[2]) for f in frames if f["finality"] == finality}

                while ids(phase2, "reverted") < removed or ids(phase1 + phase2, "final") < after:
                    await read_until_quiet(steady, phase2)
                resumed = await resume_randomly(client, ["feed"], mid, len(phase2), rng)
                assert [key(f) for f in resumed] == [key(f) for f in phase2]
                everything = phase1 + phase2
                assert len({key(f) for f in everything}) == len(everything)       # once each
                assert ids(everything, "reverted") == removed                        # exactly the removed ones
                assert not (ids(everything, "final") & removed)                      # never final
                assert ids(everything, "observed") == after | removed
                await steady.close()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
