"""Nothing lost across SIGKILLs: `chainsettle run` delivers to a flaky webhook and a real Redis
stream while it is killed at random moments and restarted.

At the end the receiver, deduplicating by webhook-id, has every message of
every indexed event (observed and final) exactly once and in commit order
(strict ordering); the Redis stream holds each message id exactly once, in
the same order; every signature verifies with `standardwebhooks`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.anvil import Anvil, rpc_sync
from tests.support.config import evm_chain, write_config
from tests.support.delivery import FAST, SECRET, webhook
from tests.support.evm import batch_transfer, deploy_token
from tests.support.receiver import Receiver
from tests.support.redis import RedisServer

ROOT = Path(__file__).resolve().parents[3]
KILLS = int(os.environ.get("CHAINSETTLE_DELIVERY_KILLS", "5"))


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


@pytest.fixture
def redis_server():
    with RedisServer() as r:
        yield r


def start(config: Path, db_url: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_")}
    env.update(DATABASE_URL=db_url, CHAINSETTLE_LOG__FORMAT="json", PYTHONUNBUFFERED="1", WH_SECRET=SECRET)
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                            cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def flaky(rng: random.Random):
    def behaviour(n: int, msg_id: str):
        x = rng.random()
        if x < 0.15:
            return 500, {}, 0.0
        if x < 0.18:
            return 429, {"Retry-After": "0"}, 0.0
        if x < 0.20:
            return 200, {}, 0.7   # answered after the timeout: counted failed, sent again
        return 200, {}, 0.0
    return behaviour


async def expected_order(pool) -> list[str]:
    """Every event's observed and final message, in the feed's commit order, read from the sources."""
    rows = await pool.fetch("""
        SELECT tx, 0 AS source, id, id AS event_id, 'observed' AS stage FROM events
        UNION ALL
        SELECT tx, 2, id, event_id, stage FROM delivery_outbox
        UNION ALL
        -- finality rows (0013), each event at its first row's position
        SELECT * FROM (SELECT DISTINCT ON (e.id) r.tx, 3, e.id, e.id, 'final' FROM delivery_finality r
                       JOIN events e ON e.chain = r.chain AND e.id BETWEEN r.id_lo AND r.id_hi
                                    AND e.block_number > r.above_block AND e.block_number <= r.upto_block
                       ORDER BY e.id, r.tx) f
        ORDER BY 1, 2, 3""")
    return [f"ev_local_{r['event_id']}_{r['stage']}" for r in rows]


async def test_sigkill_during_delivery_loses_nothing(node, pool, db_url, tmp_path, redis_server):
    rng = random.Random(int(os.environ.get("CHAINSETTLE_SEED", "13")))
    token = deploy_token(node.url)
    receiver = await Receiver(flaky(rng)).start()
    config = write_config(tmp_path / "chainsettle.toml", {
        "api": {"enabled": False},
        "chains": [evm_chain("local", node.url, token, finality_depth=2, poll_interval=0.05)],
        "delivery": {**FAST, "timeout": 0.4},
        "deliveries": [webhook("app", receiver.url, ordering="strict", start="earliest"),
                       {"id": "stream", "sink": "redis", "url": redis_server.url, "stream": "chainsettle:events",
                        "ordering": "strict", "start": "earliest"}],
    })
    log = tmp_path / "run.log"
    r = redis_server.client()
    loop = asyncio.get_running_loop()
    try:
        for round_ in range(KILLS):
            for _ in range(3):
                batch_transfer(node.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(4)], [1, 2, 3, 4])
            proc = start(config, db_url, log)
            # Kill once this run has delivered something new, or at a random moment (start-up included).
            before = len(receiver.accepted)
            deadline = loop.time() + rng.uniform(0.5, 4.0)
            while loop.time() < deadline and proc.poll() is None:
                if len(receiver.accepted) > before + rng.randrange(1, 10):
                    await asyncio.sleep(rng.uniform(0, 0.05))
                    break
                await asyncio.sleep(0.01)
            assert proc.poll() is None, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        # Finalise everything, then let one run finish the work.
        for _ in range(3):
            rpc_sync(node.url, "evm_mine", [])
        proc = start(config, db_url, log)
        try:
            head = int(rpc_sync(node.url, "eth_blockNumber", []), 16)
            for _ in range(600):
                if await pool.fetchval("SELECT final_number FROM chain_state WHERE chain = 'local'") == head - 1:
                    break
                await asyncio.sleep(0.05)
            expected = await expected_order(pool)
            assert len(expected) == 2 * await pool.fetchval("SELECT count(*) FROM events")
            await receiver.wait_for(lambda: set(receiver.first_seen()) >= set(expected), 90)
            for _ in range(900):
                if r.xlen("chainsettle:events") >= len(expected):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assert receiver.first_seen() == expected
        assert len(receiver.accepted) >= len(expected)
        wh = Webhook(SECRET)
        for rec in receiver.accepted:
            wh.verify(rec.body, rec.headers)
        entries = r.xrange("chainsettle:events")
        ids = [fields[b"id"].decode() for _, fields in entries]
        assert ids == expected                              # once per id, in order, across the kills
        bodies = {rec.msg_id: rec.body for rec in receiver.accepted}
        for _, fields in entries[:50]:
            assert fields[b"body"] == bodies[fields[b"id"].decode()]   # the same payload bytes
            assert orjson.loads(fields[b"body"])["type"] == fields[b"type"].decode()
    finally:
        r.close()
        await receiver.stop()
