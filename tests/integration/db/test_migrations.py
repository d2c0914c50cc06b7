from db import connect, migrate
from db.migrate import discover


async def test_fresh_migrate_yields_expected_schema(pg_cluster):
    url = await pg_cluster.new_database(empty=True)
    conn = await connect(url)
    try:
        applied = await migrate(conn)
        assert [m.version for m in applied] == [m.version for m in discover()]
        assert await migrate(conn) == []  # a second run applies nothing
        cols = await conn.fetch(
            """SELECT column_name, data_type FROM information_schema.columns
               WHERE table_name = 'events' ORDER BY ordinal_position"""
        )
        types = {r["column_name"]: r["data_type"] for r in cols}
        assert types["chain"] == "text"
        assert types["block_number"] == "bigint"
        assert types["block_hash"] == "text"
        assert types["tx_hash"] == "text"
        assert types["tx_index"] == "integer"
        assert types["log_index"] == "integer"
        assert types["address"] == "text"
        assert types["event"] == "text"
        assert types["args"] == "jsonb"
        idx = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'events_natural_key'"
        )
        assert "UNIQUE" in idx and "(chain, block_number, block_hash, log_index, tx_index, address)" in idx
        tables = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert {"chain_state", "blocks", "events", "raw_logs", "reorgs", "audit_log", "final_events"} <= tables
    finally:
        await conn.close()
        await pg_cluster.drop_database(url)
