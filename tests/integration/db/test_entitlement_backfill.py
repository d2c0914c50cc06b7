"""Migration 0027 on a database with distributions booked the old way (the hub holding every open
share): each still-owed share moves to its recipient's entitlement, nothing else moves."""

from __future__ import annotations

import shutil

from db import connect, migrate
from db.migrate import MIGRATIONS_DIR, discover

A, B, C, D = (f"0x{i:040x}" for i in (0xA, 0xB, 0xC, 0xD))
OLD = """
INSERT INTO assets (id, chain, name, kind) VALUES ('anvil:native', 'anvil', 'native', 'native');
INSERT INTO ledger_accounts (code, kind) VALUES ('app:pool', 'app'), ('app:dist.d', 'app'),
    ('external:anvil:paid', 'external');
INSERT INTO distribution_snapshots (id, kind, body, holders, total_weight, created_by)
VALUES ('s', 'list', '{}', 4, 4, 't');
INSERT INTO distributions (id, snapshot_id, asset_id, pool_account, account, total, remainder, remainder_account,
                           mode, body, recipients, created_by)
VALUES ('d', 's', 'anvil:native', 'app:pool', 'app:dist.d', 40, 0, 'app:pool', 'push', '{}', 4, 't');
INSERT INTO distribution_shares (distribution_id, idx, recipient, amount, state, payout_key) VALUES
    ('d', 0, '{A}', 10, 'owed', NULL), ('d', 1, '{B}', 15, 'owed', NULL),
    ('d', 2, '{C}', 5, 'paid', 'distribution:d:2'), ('d', 3, '{D}', 10, 'requested', 'distribution:d:3');
-- the old booking: the pool paid 40 into the hub, the hub paid share 2 out
WITH t AS (INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, chain, block_number)
           VALUES ('distribution:d', 'transfer', '{}', 'anvil', 0) RETURNING id)
INSERT INTO postings (transaction_id, account_id, asset_id, amount, internal)
SELECT t.id, a.id, 'anvil:native', CASE a.code WHEN 'app:pool' THEN 40 ELSE -40 END, true
FROM t, ledger_accounts a WHERE a.code IN ('app:pool', 'app:dist.d');
WITH t AS (INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, chain, block_number, author, reason)
           VALUES ('paid:d:2', 'manual', '{}', 'anvil', 0, 't', 'share 2 paid') RETURNING id)
INSERT INTO postings (transaction_id, account_id, asset_id, amount, internal)
SELECT t.id, a.id, 'anvil:native', CASE a.code WHEN 'app:dist.d' THEN 5 ELSE -5 END, false
FROM t, ledger_accounts a WHERE a.code IN ('app:dist.d', 'external:anvil:paid');
INSERT INTO ledger_account_balances (account_id, asset_id, posted)
SELECT id, 'anvil:native', CASE code WHEN 'app:pool' THEN 40 ELSE -40 END FROM ledger_accounts
WHERE code IN ('app:pool', 'app:dist.d');
""".replace("{A}", A).replace("{B}", B).replace("{C}", C).replace("{D}", D)


async def test_0027_moves_open_shares_from_the_hub_to_entitlements(pg_cluster, tmp_path):
    before = tmp_path / "before"
    before.mkdir()
    for m in discover():
        if m.version < 27:
            shutil.copy(m.path, before / m.path.name)
    url = await pg_cluster.new_database(empty=True)
    conn = await connect(url)
    try:
        await migrate(conn, before)
        await conn.execute(OLD)
        assert [m.version for m in await migrate(conn, MIGRATIONS_DIR)][0] == 27

        async def final(code: str) -> int:  # natural sign: what the account is owed
            return -int(await conn.fetchval(
                "SELECT COALESCE(sum(p.amount), 0) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id "
                "WHERE a.code = $1", code))

        assert await final(f"entitlement:d:{A}") == 10 and await final(f"entitlement:d:{B}") == 15
        # paid and requested shares stay as they were: the requested one's payout pays from the hub
        assert await conn.fetchval("SELECT count(*) FROM ledger_accounts WHERE kind = 'entitlement'") == 2
        assert await final("app:dist.d") == 10
        posted = {r["code"]: int(r["posted"]) for r in await conn.fetch(
            "SELECT a.code, b.posted FROM ledger_account_balances b JOIN ledger_accounts a ON a.id = b.account_id")}
        assert posted == {"app:pool": 40, "app:dist.d": -15, f"entitlement:d:{A}": -10, f"entitlement:d:{B}": -15}
        assert await conn.fetchval("SELECT count(*) FROM distribution_shares WHERE state = 'owed'") == 2
    finally:
        await conn.close()
        await pg_cluster.drop_database(url)
