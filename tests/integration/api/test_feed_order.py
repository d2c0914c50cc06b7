"""The feed's outbox reads order by transaction id as a number, not as text: a row of transaction
999 comes before one of transaction 1000 (found by the WebSocket work: an unqualified `tx` in
ORDER BY named the text output column, so a resume across a power of ten skipped rows)."""

from __future__ import annotations

from api.feed import EVENT, Feed
from delivery.fanout import read_after


async def _row(pool, n: int) -> int:
    return int(await pool.fetchval(
        "INSERT INTO feed_outbox (kind, subject, chain, payload) VALUES ('payout_control', $1, NULL, '{}'::jsonb) "
        "RETURNING tx::text", str(n)))


async def test_outbox_rows_across_a_power_of_ten_of_transaction_ids(pool):
    first = await _row(pool, 1)
    boundary = 10 ** len(str(first))
    while int(await pool.fetchval("SELECT pg_current_xact_id()::text")) < boundary:  # each its own transaction
        pass
    second = await _row(pool, 2)
    assert len(str(second)) > len(str(first))  # "1000..." sorts before "999..." as text
    origin = (first - 1, EVENT, 0)
    feed = Feed(pool, 1.0)
    assert [i.position[0] for i in await feed.fetch_after(origin, 10)] == [first, second]
    async with pool.acquire() as conn:
        horizon = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        assert [m.position[0] for m in await read_after(conn, origin, horizon, 10)] == [first, second]
