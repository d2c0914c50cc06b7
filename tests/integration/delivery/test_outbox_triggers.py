"""The lifecycle outbox of 0010 and the finality rows of 0013, written by triggers
in the writing transaction (no relay running), and what fan-out makes of them."""

from __future__ import annotations

from delivery.fanout import read_after
from delivery.messages import FINAL
from tests.support.delivery import ensure_chain, insert_events, set_final

A = "0x" + "aa" * 20


async def lifecycle(pool) -> list[tuple[str, int]]:
    return [(r["stage"], r["event_id"]) for r in await pool.fetch("SELECT stage, event_id FROM delivery_outbox ORDER BY tx, id")]


async def finality(pool) -> list[tuple]:
    return [tuple(r) for r in await pool.fetch(
        "SELECT tx::text, above_block, upto_block, id_lo, id_hi FROM delivery_finality ORDER BY tx, id")]


async def finals(pool, limit: int = 500) -> list[tuple[int, int]]:
    """(transaction, event id) of every final message fan-out reads, page by page as a relay does."""
    out, pos = [], (0, 0, 0)
    async with pool.acquire() as conn:
        horizon = await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        while page := await read_after(conn, pos, horizon, limit):
            out += [(m.position[0], m.position[2]) for m in page if m.position[1] == FINAL]
            assert all(m.stage == "final" for m in page if m.position[1] == FINAL)
            pos = page[-1].position
    return out


async def test_final_reverted_and_late_inserts(pool):
    await ensure_chain(pool)
    async with pool.acquire() as conn, conn.transaction():
        ids = await insert_events(conn, "local", [(1, 0, A), (2, 0, A), (3, 0, A)])
    assert await lifecycle(pool) == [] and await finality(pool) == []
    await set_final(pool, "local", 2)
    # One row for the move, not one per event; fan-out expands it to exactly those.
    [(tx, above, upto, lo, hi)] = await finality(pool)
    assert (above, upto, lo, hi) == (-1, 2, ids[0], ids[1])
    assert await finals(pool) == [(int(tx), ids[0]), (int(tx), ids[1])]
    assert await lifecycle(pool) == []
    # Rolled back with its transaction: nothing stays behind.
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        await conn.execute("UPDATE chain_state SET final_number = 3 WHERE chain = 'local'")
        await tr.rollback()
    assert len(await finality(pool)) == 1
    # A replay restoring a missed log below the final height: final in the same transaction.
    async with pool.acquire() as conn, conn.transaction():
        late = await insert_events(conn, "local", [(2, 5, A)])
        late_tx = await conn.fetchval("SELECT pg_current_xact_id()::text")
    assert (await finality(pool))[-1] == (late_tx, -1, 2, late[0], late[0])
    assert (await finals(pool))[-1] == (int(late_tx), late[0])
    # A reorg above the final height: reverted for exactly those, with the ledger entries that went.
    await pool.execute("INSERT INTO assets (id, chain, name, kind, contract, symbol, decimals) "
                       "VALUES ('local:t', 'local', 't', 'erc20', $1, 'T', 18)", A)
    a1 = await pool.fetchval("INSERT INTO ledger_accounts (code, kind) VALUES ('user:local:0x01', 'user') RETURNING id")
    a2 = await pool.fetchval("INSERT INTO ledger_accounts (code, kind) VALUES ('wallet:local:0x02', 'wallet') RETURNING id")
    async with pool.acquire() as conn, conn.transaction():
        lt = await conn.fetchval(
            "INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, event_id, chain, block_number) "
            "VALUES ('ev-3', 'event', '{}'::jsonb, $1, 'local', 3) RETURNING id", ids[2])
        await conn.execute("INSERT INTO postings (transaction_id, account_id, asset_id, amount) "
                           "VALUES ($1, $2, 'local:t', 7), ($1, $3, 'local:t', -7)", lt, a1, a2)
    async with pool.acquire() as conn, conn.transaction():   # as indexer/store rollback_to does
        await conn.execute("DELETE FROM ledger_transactions WHERE chain = 'local' AND block_number > 2")
        await conn.execute("DELETE FROM events WHERE chain = 'local' AND block_number > 2")
    row = await pool.fetchrow("SELECT stage, event_id, payload FROM delivery_outbox ORDER BY id DESC LIMIT 1")
    assert (row["stage"], row["event_id"]) == ("reverted", ids[2])
    assert row["payload"]["address"] == A and row["payload"]["block_number"] == 3
    assert row["payload"]["ledger_reversal"] == [{"idempotency_key": "ev-3", "postings": [
        {"account": "user:local:0x01", "asset_id": "local:t", "amount": "7"},
        {"account": "wallet:local:0x02", "asset_id": "local:t", "amount": "-7"}]}]
    assert await pool.fetchval("SELECT count(*) FROM delivery_reversal_stage") == 0
    assert await pool.fetchval("SELECT count(*) FROM delivery_reversal_postings") == 0
    # A writer that says its rows are above the final height is believed and
    # not looked at (indexer/store's direct path checks before it says so).
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('chainsettle.events_above_final', 'on', true)")
        above = await insert_events(conn, "local", [(4, 0, A)])
    assert len(await finality(pool)) == 2   # no row for it
    # ...and only for its own transaction.
    async with pool.acquire() as conn, conn.transaction():
        late2 = await insert_events(conn, "local", [(1, 7, A)])
    assert (await finality(pool))[-1][1:] == (-1, 2, late2[0], late2[0])
    # A move over stored and late rows: each final event once, in commit order.
    await set_final(pool, "local", 4)
    got = await finals(pool)
    assert [e for _, e in got] == [ids[0], ids[1], late[0], late2[0], above[0]]
    assert await finals(pool, limit=1) == got       # pages of one: the cursor never skips or repeats
    # A final event removed by hand is no reorg: nothing announced.
    before = len(await lifecycle(pool))
    await pool.execute("DELETE FROM events WHERE id = $1", ids[0])
    assert len(await lifecycle(pool)) == before
    assert [e for _, e in await finals(pool)] == [ids[1], late[0], late2[0], above[0]]


async def test_retention_prunes_only_old_delivered_messages(pool, tmp_path):
    from delivery.relay import Relay
    from tests.support.delivery import settings_for
    await pool.execute("INSERT INTO delivery_subscriptions (id, origin, sink, url, finality, ordering, cursor_tx) "
                       "VALUES ('s', 'api', 'webhook', 'https://x.example/h', 'instant', 'strict', '0')")
    await pool.execute("""INSERT INTO delivery_messages (subscription_id, msg_id, type, key, body, committed_at,
                              state, delivered_at)
                          VALUES ('s', 'old', 'ping', 'k', '\\x7b7d', now(), 'delivered', now() - interval '2 hours'),
                                 ('s', 'new', 'ping', 'k', '\\x7b7d', now(), 'delivered', now()),
                                 ('s', 'dead', 'ping', 'k', '\\x7b7d', now() - interval '3 hours', 'dead', NULL),
                                 ('s', 'wait', 'ping', 'k', '\\x7b7d', now() - interval '3 hours', 'pending', NULL)""")
    relay = Relay(settings_for(tmp_path, [], retention=3600), pool, "", None)
    await relay.prune()
    left = {r["msg_id"] for r in await pool.fetch("SELECT msg_id FROM delivery_messages")}
    assert left == {"new", "dead", "wait"}
