"""One hostile client cannot starve the followers or the payout workers.

The daemon's pool runs a real follower on anvil and a real EVM payout
worker; the API has its own pool (`create_api_pool`, as `chainsettle run`
builds it). One client fires 50 concurrent slow-filter requests, again and
again, for the whole test: each asks for the largest page (500 rows) of a
large chain (the filters that scanned the table before are refused now). Meanwhile deposits are mined and payouts requested.
Asserted is progress: every block indexed, every payout paid; and that
the client got answers or clear refusals (429 / 503), never a hang.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from aiohttp.test_utils import TestClient, TestServer

from api.app import make_app
from api.server import create_api_pool
from indexer.models import Cursor
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_pipeline import OWNER, Env, credit_users
from tests.support.api_data import address, block_hash, event_row, register_chain
from tests.support.batcher import balance, fresh_address
from tests.support.evm import send

BULK_BLOCKS, PER_BLOCK = 2_000, 100  # 200,000 rows on a chain nobody follows
# The heaviest request the API still accepts: a full page (max_page_size rows)
# of a large chain, from its oldest row. Filters that used to scan the whole
# table (address / event without a chain) are refused with a 400 now, and a
# block bound is a range of the natural-key index.
SLOW = "/v1/events?chain=bulk&limit=500"


async def fill_bulk(pool) -> None:
    store = await register_chain(pool, "bulk")
    cursor = None
    for start in range(1, BULK_BLOCKS + 1, 500):
        end = start + 499
        rows = [event_row("bulk", n, i, addr=address(i % 7)) for n in range(start, end + 1) for i in range(PER_BLOCK)]
        await store.commit_range(from_block=start, to_block=end, events=rows, expected=cursor,
                                 cursor=Cursor(end, block_hash("bulk", end)), final_number=end)
        cursor = Cursor(end, block_hash("bulk", end))
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE events")


async def hammer(client: TestClient, stop: asyncio.Event, statuses: Counter) -> None:
    while not stop.is_set():
        resps = await asyncio.gather(*(client.get(SLOW) for _ in range(50)))
        for r in resps:
            statuses[r.status] += 1
            await r.read()


async def test_fifty_slow_requests_from_one_client_leave_followers_and_payouts_moving(anvil, pool, db_url, tmp_path):
    env = Env(anvil, pool, tmp_path)
    await env.start()
    await fill_bulk(pool)
    api_pool = await create_api_pool(env.settings, db_url)
    client = TestClient(TestServer(make_app(env.settings, api_pool)))
    await client.start_server()
    stop, load_stop = asyncio.Event(), asyncio.Event()
    statuses: Counter = Counter()
    load = asyncio.create_task(hammer(client, load_stop, statuses))
    follower = asyncio.create_task(env.follower.run(stop))
    worker = asyncio.create_task(env.worker.run(stop))
    rng = random.Random(4)
    recipients = {fresh_address().lower(): (i + 1) * 10**15 for i in range(4)}
    try:
        while sum(statuses.values()) < 50:  # the load is on before anything else happens
            await asyncio.sleep(0.05)
        await credit_users(pool, "anvil", recipients)
        for i, (to, amount) in enumerate(recipients.items()):
            await request_payout(pool, env.settings, chain="anvil", asset="native", to=to, amount=amount, key=f"load{i}")
        for _ in range(10):  # deposits the follower must index while the load goes on
            await asyncio.to_thread(send, anvil.url, OWNER, "0x" + rng.randbytes(20).hex(), "0x", 10**12)
        head = int(anvil.rpc("eth_blockNumber", []), 16)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120  # a bound for a hang, not a performance claim
        while True:
            cursor = await pool.fetchval("SELECT cursor_number FROM chain_state WHERE chain = 'anvil'")
            paid = await pool.fetchval("SELECT count(*) FROM payout_requests WHERE state = 'paid'")
            if cursor is not None and cursor >= head and paid == len(recipients):
                break
            for t in (follower, worker, load):
                if t.done():
                    t.result()
            assert loop.time() < deadline, f"no progress under load: cursor {cursor}/{head}, paid {paid}, {statuses}"
            await asyncio.sleep(0.2)
        assert not load.done()  # the load was still going when everything had moved
    finally:
        load_stop.set()
        stop.set()
        await asyncio.gather(load, follower, worker, return_exceptions=True)
        await client.close()
        await api_pool.close()
        await env.close()
    for to, amount in recipients.items():
        assert balance(anvil, to) == amount
    # The client was answered or refused, each time, with a status it can act on.
    assert set(statuses) <= {200, 429, 503}, statuses
    assert statuses[200] >= 1 and statuses[429] >= 50, statuses
    assert sum(statuses.values()) >= 100
