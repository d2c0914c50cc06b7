"""The lifecycle outbox of 0010, written by triggers in the writing transaction (no relay running)."""

from __future__ import annotations

from tests.support.delivery import ensure_chain, insert_events, set_final

A = "0x" + "aa" * 20


async def lifecycle(pool) -> list[tuple[str, int]]:
    return [(r["stage"], r["event_id"]) for r in await pool.fetch("SELECT stage, event_id FROM delivery_outbox ORDER BY tx, id")]


async def test_final_reverted_and_late_inserts(pool):
    await ensure_chain(pool)
    async with pool.acquire() as conn, conn.transaction():
        ids = await insert_events(conn, "local", [(1, 0, A), (2, 0, A), (3, 0, A)])
    assert await lifecycle(pool) == []
    await set_final(pool, "local", 2)
    assert await lifecycle(pool) == [("final", ids[0]), ("final", ids[1])]
    # Rolled back with its transaction: nothing stays behind.
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        await conn.execute("UPDATE chain_state SET final_number = 3 WHERE chain = 'local'")
        await tr.rollback()
    assert len(await lifecycle(pool)) == 2
    # A replay restoring a missed log below the final height: final in the same transaction.
    async with pool.acquire() as conn, conn.transaction():
        late = await insert_events(conn, "local", [(2, 5, A)])
        tx = await conn.fetchval("SELECT pg_current_xact_id()::text")
    row = await pool.fetchrow("SELECT stage, event_id, tx::text AS tx FROM delivery_outbox ORDER BY id DESC LIMIT 1")
    assert (row["stage"], row["event_id"], row["tx"]) == ("final", late[0], tx)
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
    # A final event removed by hand is no reorg: nothing announced.
    before = len(await lifecycle(pool))
    await pool.execute("DELETE FROM events WHERE id = $1", ids[0])
    assert len(await lifecycle(pool)) == before


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
