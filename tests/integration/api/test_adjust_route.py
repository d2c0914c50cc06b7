"""POST /v1/admin/ledger/adjustments: balanced, audited, idempotent by key;
bad input is a 400 naming the field; amounts are integer strings."""

from __future__ import annotations

import pytest

from settlement.ledger.books import balances_as_of
from tests.support.api_data import USER, WALLET, api_settings, chain_cfg, client_for, seed_settlement, seeded

TOKEN = "adjust-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
W = f"wallet:anvil:{WALLET}"
U = f"user:anvil:{USER}"
BODY = {"chain": "anvil", "debit": "adjustment:anvil:writeoff", "credit": W, "asset": "anvil:native",
        "amount": str(10**24), "author": "ops-bob", "reason": "sent to cold storage by hand",
        "tx_hash": "0x" + "ab" * 32, "key": "ticket-7"}


@pytest.fixture
async def client(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("CS_ADJUST_ADMIN_TOKEN", TOKEN)
    await seeded(pool, "anvil", blocks=8, head=10, final=6)
    await seed_settlement(pool)
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"admin_token": "env:CS_ADJUST_ADMIN_TOKEN"})
    async with client_for(settings, pool) as c:
        yield c


async def post(client, body: dict, headers: dict = AUTH):
    resp = await client.post("/v1/admin/ledger/adjustments", json=body, headers=headers)
    return resp.status, await resp.json()


async def test_books_once_balanced_and_audited(client, pool):
    status, doc = await post(client, BODY)
    assert status == 201 and doc["created"] is True, doc
    adj = doc["adjustment"]
    assert (adj["amount"], adj["debit"], adj["credit"], adj["block_number"], adj["key"], adj["author"]) == (
        str(10**24), "adjustment:anvil:writeoff", W, 6, "ticket-7", "ops-bob")
    assert doc["actor"].startswith("api:")
    actor = doc["actor"]
    assert await post(client, BODY) == (200, {**doc, "created": False})
    status, doc = await post(client, {**BODY, "amount": "5"})
    assert status == 409 and doc["field"] == "key"
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, "anvil", 6)
        assert b[("adjustment:anvil:writeoff", "anvil:native")] == 10**24
        assert sum(v for (_, a), v in b.items() if a == "anvil:native") == 0
        rows = await conn.fetch("SELECT actor, subject, details FROM audit_log WHERE action = 'ledger.adjustment'")
        assert [(r["actor"], r["subject"]) for r in rows] == [("ops-bob", "manual:ticket-7")]
        assert rows[0]["details"]["postings"][0]["amount"] == str(10**24)
        assert rows[0]["details"]["via"] == actor
    resp = await client.get(f"/v1/accounts/{W}/balances", headers=AUTH)
    assert (await resp.json())["balances"][0]["balance"] == str(150 - 10**24)


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": "1.5"}, "amount"),
    ({"amount": "1e3"}, "amount"),
    ({"amount": "0"}, "amount"),
    ({"amount": -3}, "amount"),
    ({"amount": 1.5}, "amount"),
    ({"asset": "anvil:Nope"}, "asset"),
    ({"asset": "other:native"}, "asset"),
    ({"debit": "user:anvil:0x" + "99" * 20}, "debit"),
    ({"debit": "nope:anvil:x"}, "debit"),
    ({"credit": "wallet:other:0x" + "aa" * 20}, "credit"),
    ({"credit": "adjustment:anvil:writeoff"}, "credit"),
    ({"chain": "nope"}, "chain"),
    ({"reason": "a\x00b"}, "reason"),
    ({"reason": "   "}, "reason"),
    ({"author": ""}, "author"),
    ({"tx_hash": "0x12"}, "tx_hash"),
    ({"key": "has space"}, "key"),
    ({"block": 99}, "block"),
    ({"extra": 1}, "extra"),
])
async def test_bad_input_is_a_400_naming_the_field(client, pool, change, field):
    status, doc = await post(client, {**BODY, **change})
    assert (status, doc["field"]) == (400, field), doc
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'manual' "
                               "AND idempotency_key = 'manual:ticket-7'") == 0


@pytest.mark.parametrize("missing", ["author", "reason", "key", "amount", "debit"])
async def test_required_fields(client, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    status, doc = await post(client, body)
    assert (status, doc["field"]) == (400, missing)


async def test_a_user_account_is_not_taken_below_zero(client):
    # U is owed 150, of which 100 at final heights, and 12 of that reserved by an open payout:
    # an adjustment may take what is available (88), as a transfer or a payout could.
    status, doc = await post(client, {**BODY, "debit": U, "amount": "89", "key": "too-much"})
    assert (status, doc["field"]) == (400, "amount") and "88 is available" in doc["message"], doc
    status, doc = await post(client, {**BODY, "debit": U, "credit": "adjustment:anvil:goodwill", "amount": "88",
                                      "key": "all-of-it"})
    assert status == 201, doc


async def test_admin_only(client):
    status, _ = await post(client, BODY, headers={})
    assert status == 401


async def test_an_adjustment_cannot_spend_what_a_hold_reserves(client):
    """The adjustment takes the balance-row lock transfers and holds take, and counts what they reserve."""
    other = "user:anvil:0x" + "0c" * 20
    resp = await client.post("/v1/admin/ledger/holds", headers=AUTH, json={
        "id": "bet-1", "debit_account": U, "credit_account": other, "asset": "anvil:native", "amount": "60"})
    assert resp.status == 201, await resp.text()
    status, doc = await post(client, {**BODY, "debit": U, "amount": "29", "key": "past-the-hold"})
    assert (status, doc["field"]) == (400, "amount") and "28 is available" in doc["message"], doc
    status, doc = await post(client, {**BODY, "debit": U, "credit": "adjustment:anvil:goodwill", "amount": "28",
                                      "key": "up-to-the-hold"})
    assert status == 201, doc
    resp = await client.post("/v1/admin/ledger/holds/bet-1/post", headers=AUTH, json={})
    assert resp.status == 200 and (await resp.json())["hold"]["state"] == "posted"
