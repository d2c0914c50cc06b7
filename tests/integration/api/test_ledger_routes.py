"""The ledger routes: transfers (linked, replay, 409, 422 naming the account),
holds, payouts from an app account, balances and entry pages. Real Postgres."""

from __future__ import annotations

import pytest

from tests.support.api_data import client_for
from tests.support.ledger import ASSET, CHAIN, fund, ledger_settings, ready_chain

TOKEN = "ledger-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
A = "0x" + "0a" * 20
B = "0x" + "0b" * 20
UA, UB = f"user:{CHAIN}:{A}", f"user:{CHAIN}:{B}"


@pytest.fixture
async def client(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    settings = ledger_settings(tmp_path, accounts=[{"code": "app:prizes", "label": "prizes"}], payouts=True,
                               api={"admin_token": "env:CS_TEST_ADMIN_TOKEN"})
    await ready_chain(pool, settings)
    await fund(pool, "app:prizes", 100)
    async with client_for(settings, pool) as c:
        yield c


async def post(client, path: str, body: dict | None = None):
    resp = await client.post(path, json=body, headers=AUTH)
    return resp.status, await resp.json()


def tr(id_, debit, credit, amount, **kw) -> dict:
    return {"id": id_, "debit_account": debit, "credit_account": credit, "asset": ASSET, "amount": amount, **kw}


async def balances(client, account: str) -> dict:
    body = await (await client.get(f"/v1/accounts/{account}/balances", headers=AUTH)).json()
    return {k: v for k, v in body["balances"][0].items() if k in ("final", "held", "reserved", "available")}


async def test_transfers_holds_payouts_and_entries_over_http(client):
    status, body = await post(client, "/v1/admin/ledger/transfers",
                              {"transfers": [tr("t1", "app:prizes", UA, 30), tr("t2", "app:prizes", UB, "20")]})
    assert status == 201 and [t["amount"] for t in body["transfers"]] == ["30", "20"]
    status, again = await post(client, "/v1/admin/ledger/transfers",
                               {"transfers": [tr("t1", "app:prizes", UA, 30), tr("t2", "app:prizes", UB, "20")]})
    assert status == 200 and again["transfers"] == body["transfers"] and not again["created"]
    status, err = await post(client, "/v1/admin/ledger/transfers",
                             {"transfers": [tr("t1", "app:prizes", UA, 31), tr("t2", "app:prizes", UB, "20")]})
    assert (status, err["error"], err["field"]) == (409, "conflict", "transfers[0].amount")
    # One bad transfer: 422 naming the account and the reason, and nothing written.
    status, err = await post(client, "/v1/admin/ledger/transfers",
                             {"transfers": [tr("t3", UA, UB, 10), tr("t4", UB, UA, 10**6)]})
    assert (status, err["error"], err["field"], err["account"]) == (
        422, "exceeds_available", "transfers[1].debit_account", UB)
    status, err = await post(client, "/v1/admin/ledger/transfers", {"transfers": [tr("t5", "app:other", UA, 1)]})
    assert (status, err["error"], err["account"]) == (422, "unknown_account", "app:other")
    assert await balances(client, "app:prizes") == {"final": "50", "held": "0", "reserved": "0", "available": "50"}

    status, h = await post(client, "/v1/admin/ledger/holds", {**tr("h1", "app:prizes", UA, 40), "timeout_seconds": 60})
    assert status == 201 and h["hold"]["state"] == "pending"
    assert (await balances(client, "app:prizes"))["available"] == "10"
    status, p = await post(client, "/v1/admin/ledger/holds/h1/post", {"amount": "15"})
    assert status == 200 and p["hold"]["state"] == "posted" and p["hold"]["posted_amount"] == "15"
    status, err = await post(client, "/v1/admin/ledger/holds/h1/void")
    assert status == 409
    status, err = await post(client, "/v1/admin/ledger/holds/nope/void")
    assert status == 404
    assert await balances(client, "app:prizes") == {"final": "35", "held": "0", "reserved": "0", "available": "35"}

    # A payout paid from the app account reserves it, not the recipient's own account.
    payout = {"chain": CHAIN, "asset": "native", "to": B, "amount": "30", "key": "p1", "from_account": "app:prizes"}
    status, body = await post(client, "/v1/admin/payouts", payout)
    assert status == 201
    assert await balances(client, "app:prizes") == {"final": "35", "held": "0", "reserved": "30", "available": "5"}
    assert (await balances(client, UB))["available"] == "20"
    status, err = await post(client, "/v1/admin/payouts", {**payout, "key": "p2", "amount": "6"})
    assert (status, err["field"]) == (400, "amount")
    status, err = await post(client, "/v1/admin/payouts", {**payout, "amount": "29"})
    assert status == 409  # the key's payout differs

    # Entries: every posting of A, oldest first, in pages, with its cause.
    seen, cursor = [], "0:0"
    while True:
        page = await (await client.get(f"/v1/accounts/{UA}/entries?limit=1&cursor={cursor}", headers=AUTH)).json()
        seen += page["entries"]
        cursor = page["next"]
        if not page["more"]:
            break
    assert [(e["cause"], e["amount"]) for e in seen] == [("transfer", "-30"), ("transfer", "-15")]
    assert seen[1]["key"] == "hold:h1" and seen[0]["detail"]["id"] == "t1"
    tail = await (await client.get(f"/v1/accounts/{UA}/entries?cursor={cursor}", headers=AUTH)).json()
    assert tail["entries"] == [] and tail["next"] == cursor
    assert (await client.get(f"/v1/accounts/{UA}/entries?cursor=x", headers=AUTH)).status == 400
    assert (await client.get(f"/v1/accounts/{UA}/entries")).status == 401  # private: the accounts area
    # A cursor with a leading zero is the same position, not an octal number (a 500 before).
    assert (await client.get(f"/v1/accounts/{UA}/entries?cursor=0{cursor}", headers=AUTH)).status == 200
