"""Payout gauges read terminal states from trigger-kept totals (0015): they
must equal a full count of the tables after any mix of transitions, in
single-row and many-row statements, deletes and a TRUNCATE."""

from __future__ import annotations

import random
import shutil

from prometheus_client import REGISTRY

from db import connect, migrate
from db.migrate import MIGRATIONS_DIR
from settlement.payouts.requests import BATCH_STATES, REQUEST_STATES, Q, refresh_gauges

CHAINS = ("alpha", "beta")
# Batch ids are 0x + 64 hex: the chain's number, then the batch's.
BATCH_ID = "'0x' || lpad(to_hex(CASE chain WHEN 'alpha' THEN 1 ELSE 2 END), 32, '0') || lpad(to_hex({g}), 32, '0')"
BATCH_NO = "('x' || right(batch_id, 8))::bit(32)::int"


def gauge(name: str, chain: str, state: str) -> float:
    return REGISTRY.get_sample_value(name, {"chain": chain, "state": state})


async def full_counts(conn, table: str) -> dict[tuple[str, str], int]:
    return {(r["chain"], r["state"]): r["n"]
            for r in await conn.fetch(f"SELECT chain, state, count(*) AS n FROM {table} GROUP BY 1, 2")}


async def assert_gauges_match(conn) -> None:
    await refresh_gauges(conn, CHAINS)
    req = await full_counts(conn, "payout_requests")
    bat = await full_counts(conn, "payout_batches")
    for chain in CHAINS:
        for state in REQUEST_STATES:
            assert gauge("chainsettle_payouts", chain, state) == req.get((chain, state), 0), (chain, state)
        for state in BATCH_STATES:
            assert gauge("chainsettle_payout_batches", chain, state) == bat.get((chain, state), 0), (chain, state)


def request_set(state: str) -> str:
    """The columns a request in `state` needs to pass the table's checks."""
    batch = {"pending": "NULL", "batched": BATCH_ID.format(g=0), "paid": BATCH_ID.format(g=0)}.get(state, "batch_id")
    reason = "'why'" if state in ("held", "cancelled") else "NULL"
    return f"state = '{state}', batch_id = {batch}, reason = {reason}"


def batch_set(state: str) -> str:
    executed = "1" if state == "confirmed" else "NULL"
    return f"state = '{state}', executed_block = {executed}, approved_by = NULL, signature = '0xsig'"


async def insert_rows(conn, chain: str, n_requests: int, n_batches: int, start: int) -> None:
    await conn.execute(
        "INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total,"
        " gas_limit, expiry, state, signature)"
        f" SELECT {BATCH_ID.format(g='g')}, chain, 'native', '0x' || repeat('00', 20), 0, '0x' || repeat('11', 20),"
        "        '0x' || repeat('11', 20), 1, 7, 90000, 2000000000, 'signed', '0xsig'"
        " FROM generate_series($2::int, $2::int + $3 - 1) g, (SELECT $1::text AS chain) c", chain, start, n_batches)
    await conn.execute(
        "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by)"
        " SELECT $1 || '-' || g, $1, 'native', '0x' || lpad(to_hex(g), 40, '0'), 5, 'test'"
        " FROM generate_series($2::int, $2::int + $3 - 1) g", chain, start, n_requests)


async def test_gauges_equal_full_counts_through_random_transitions(pool):
    rng = random.Random(16)
    async with pool.acquire() as conn:
        for chain in CHAINS:
            await insert_rows(conn, chain, 60, 12, 0)
        await assert_gauges_match(conn)
        for step in range(40):
            chain = rng.choice(CHAINS)
            if rng.random() < 0.5:  # one statement moving many rows into one state
                state = rng.choice(REQUEST_STATES)
                await conn.execute(f"UPDATE payout_requests SET {request_set(state)}"
                                   f" WHERE chain = $1 AND id % 7 = $2", chain, rng.randrange(7))
            else:  # rows one by one, in a transaction, to different states
                async with conn.transaction():
                    ids = await conn.fetch("SELECT id FROM payout_requests WHERE chain = $1 ORDER BY random() LIMIT 5",
                                           chain)
                    for r in ids:
                        await conn.execute(f"UPDATE payout_requests SET {request_set(rng.choice(REQUEST_STATES))}"
                                           " WHERE id = $1", r["id"])
            batch_state = rng.choice(BATCH_STATES)
            await conn.execute(f"UPDATE payout_batches SET {batch_set(batch_state)}"
                               f" WHERE chain = $1 AND {BATCH_NO} <> 0 AND {BATCH_NO} % 3 = $2", chain, rng.randrange(3))
            if step % 10 == 9:  # rows leave the tables too, and new ones come in
                await conn.execute("DELETE FROM payout_requests WHERE chain = $1 AND id % 11 = $2",
                                   chain, rng.randrange(11))
                deleted = await conn.execute(f"DELETE FROM payout_batches WHERE chain = $1 AND {BATCH_NO} = $2",
                                             chain, 1 + rng.randrange(11))
                assert deleted == "DELETE 1"
                await insert_rows(conn, chain, 10, 2, 1000 + step * 10)
            await assert_gauges_match(conn)
        # Terminal rows are there: the totals carry the gauges, not a count.
        assert await conn.fetchval("SELECT sum(n) FROM payout_state_totals") > 0
        await conn.execute("TRUNCATE payout_items, payout_requests, payout_batches CASCADE")
        await assert_gauges_match(conn)
        await insert_rows(conn, "alpha", 5, 2, 5000)
        await conn.execute(f"UPDATE payout_requests SET {request_set('paid')}")
        await conn.execute(f"UPDATE payout_batches SET {batch_set('confirmed')}")
        await assert_gauges_match(conn)
        assert gauge("chainsettle_payouts", "alpha", "paid") == 5


async def test_the_gauge_query_reads_open_rows_only(pool):
    """With the history paid, the counts read the open states' partial
    index and the totals, never the whole table."""
    async with pool.acquire() as conn:
        await insert_rows(conn, "alpha", 20_000, 3, 0)
        await conn.execute(f"UPDATE payout_requests SET {request_set('paid')} WHERE id % 1000 <> 0")
        await conn.execute("ANALYZE payout_requests")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + Q.request_counts))
        assert "payout_requests_open_states" in plan and "Seq Scan on payout_requests" not in plan, plan


async def test_reverted_batches_move_to_the_open_count_on_upgrade(pg_cluster, tmp_path):
    """0016: a database migrated to 0015 kept reverted batches in the totals;
    after 0016 they are counted as open, and the gauges still equal a count."""
    up_to_0015 = tmp_path / "migrations"
    up_to_0015.mkdir()
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(f.name[:4]) <= 15:
            shutil.copy(f, up_to_0015 / f.name)
    conn = await connect(await pg_cluster.new_database(empty=True))
    try:
        await migrate(conn, up_to_0015)
        await insert_rows(conn, "alpha", 4, 6, 0)
        await conn.execute(f"UPDATE payout_batches SET {batch_set('reverted')} WHERE {BATCH_NO} < 4")
        await conn.execute(f"UPDATE payout_batches SET {batch_set('confirmed')} WHERE {BATCH_NO} = 4")
        assert await conn.fetchval("SELECT n FROM payout_state_totals WHERE state = 'reverted'") == 4
        applied = await migrate(conn)
        assert [m.version for m in applied][:1] == [16]  # then any later migration
        assert await conn.fetchval("SELECT count(*) FROM payout_state_totals WHERE state = 'reverted'") == 0
        await assert_gauges_match(conn)
        assert gauge("chainsettle_payout_batches", "alpha", "reverted") == 4
        # Out of reverted (expiry) and into it again, after the upgrade.
        await conn.execute(f"UPDATE payout_batches SET {batch_set('expired')} WHERE {BATCH_NO} < 2")
        await conn.execute(f"UPDATE payout_batches SET {batch_set('reverted')} WHERE {BATCH_NO} = 5")
        await assert_gauges_match(conn)
        assert gauge("chainsettle_payout_batches", "alpha", "reverted") == 3
    finally:
        await conn.close()
