"""The Redis Streams sink against a real redis-server: once per message id, bounded, redeliverable."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from config.section_deliveries import DeliverySettings
from delivery import admin
from delivery.sinks import Outgoing, RedisSink
from tests.support.delivery import ensure_chain, insert_events, running_relay, set_final, settings_for
from tests.support.redis import RedisServer


@pytest.fixture
def redis_server():
    with RedisServer() as r:
        yield r


async def test_a_resend_after_a_crash_adds_nothing(redis_server):
    sink = RedisSink(redis_server.url, "s", DeliverySettings(redis_maxlen=100))
    try:
        msg = Outgoing(1, "ev_local_1_observed", b'{"a":1}', 0)
        first = await sink.send(msg, "chain_event.observed")
        again = await sink.send(msg, "chain_event.observed")   # the relay died before recording `first`
        assert first.ok and again.ok and "already added" in again.response_head
        assert first.response_head.split()[-1] == again.response_head.split()[-1]
        r = redis_server.client()
        assert r.xlen("s") == 1
        # A redelivery is a new generation: added again, deliberately.
        assert "added" == (await sink.send(Outgoing(1, msg.msg_id, msg.body, 1), "x")).response_head.split()[0]
        assert r.xlen("s") == 2
        for i in range(2000):   # MAXLEN ~ keeps the stream bounded
            await sink.send(Outgoing(10 + i, f"m{i}", b"{}", 0), "x")
        assert r.xlen("s") < 300
        r.close()
    finally:
        await sink.close()


async def test_relay_streams_every_stage_in_order_and_redelivers_a_range(pool, db_url, tmp_path, redis_server):
    settings = settings_for(tmp_path, [{"id": "stream", "sink": "redis", "url": redis_server.url,
                                        "stream": "cs:events", "ordering": "strict", "start": "earliest"}])
    await ensure_chain(pool)
    r = redis_server.client()
    try:
        async with running_relay(settings, pool, db_url):
            async with pool.acquire() as conn, conn.transaction():
                ids = await insert_events(conn, "local", [(1, 0, "0x" + "aa" * 20), (2, 0, "0x" + "bb" * 20)])
            await set_final(pool, "local", 2)
            expected = [f"ev_local_{i}_observed" for i in ids] + [f"ev_local_{i}_final" for i in ids]
            for _ in range(100):
                if r.xlen("cs:events") == 4:
                    break
                await asyncio.sleep(0.05)
            entries = r.xrange("cs:events")
            assert [f[b"id"].decode() for _, f in entries] == expected
            docs = [orjson.loads(f[b"body"]) for _, f in entries]
            assert [d["type"] for d in docs] == ["chain_event.observed"] * 2 + ["chain_event.final"] * 2
            assert docs[0]["event_id"] == docs[2]["event_id"]          # one id through the lifecycle
            assert await admin.redeliver(pool, "ops", "stream", from_block=2, to_block=2) == 2
            for _ in range(100):
                if r.xlen("cs:events") == 6:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            tail = [f[b"id"].decode() for _, f in r.xrange("cs:events")][4:]
            assert tail == [f"ev_local_{ids[1]}_observed", f"ev_local_{ids[1]}_final"]
    finally:
        r.close()
