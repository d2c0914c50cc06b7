"""The invoice API and CLI on a real database: create (idempotent by
app_ref), bad input named by field, read the state, the `invoice` feed
event an app waits for, verify-payment input errors, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.api_data import client_for, read_sse
from tests.support.config import evm_chain, make_settings

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "invoice-admin-token"
SHOP = "0x" + "5b" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings_for(tmp_path, db_url: str):
    return make_settings(tmp_path, {
        "database": {"url": db_url},
        "api": {"admin_token": "env:TEST_INVOICE_ADMIN_TOKEN"},
        "chains": [evm_chain("anvil", "http://127.0.0.1:9", "0x" + "77" * 20,
                             wallets=[{"name": "shop", "address": SHOP, "assets": ["Token", "native"]}])],
    })


BODY = {"chain": "anvil", "asset": "Token", "amount": "1000", "wallet": SHOP, "app_ref": "order-1",
        "account": "user:lottery", "match_method": "payer", "payer": "0x" + "a1" * 20, "expires_in": 600}


async def test_create_read_feed_and_errors(pool, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_INVOICE_ADMIN_TOKEN", TOKEN)
    settings = settings_for(tmp_path, db_url)
    async with client_for(settings, pool) as client:
        r = await client.post("/v1/admin/invoices", json=BODY)
        assert r.status == 401
        r = await client.post("/v1/admin/invoices", json=BODY, headers=AUTH)
        assert r.status == 201, await r.text()
        inv = (await r.json())["invoice"]
        assert (inv["state"], inv["amount"], inv["received"], inv["shortfall"]) == ("new", "1000", "0", "1000")
        r = await client.post("/v1/admin/invoices", json=BODY, headers=AUTH)
        assert r.status == 200 and (await r.json())["invoice"]["id"] == inv["id"]
        r = await client.post("/v1/admin/invoices", json={**BODY, "amount": "5"}, headers=AUTH)
        assert r.status == 409 and (await r.json())["field"] == "app_ref"
        for change, field in (({"amount": "-1"}, "amount"), ({"wallet": "0x" + "99" * 20}, "wallet"),
                              ({"asset": "Nope"}, "asset"), ({"match_method": "memo", "memo": "x"}, "match_method"),
                              ({"payer": None}, "payer"), ({"account": "wallet:x"}, "account"),
                              ({"chain": "nope"}, "chain"), ({"extra": 1}, "extra"),
                              ({"expires_in": 10**8}, "expires_in"), ({"tolerance": "1000"}, "tolerance")):
            r = await client.post("/v1/admin/invoices", json={**BODY, "app_ref": "bad", **change}, headers=AUTH)
            body = await r.json()
            assert (r.status, body.get("field")) == (400, field), (change, body)

        # Read the state by id or by the app's reference.
        for ref in (inv["id"], "order-1"):
            r = await client.get(f"/v1/admin/invoices/{ref}", headers=AUTH)
            assert r.status == 200 and (await r.json())["invoice"]["id"] == inv["id"]
        r = await client.get("/v1/admin/invoices/nope", headers=AUTH)
        assert r.status == 404

        # The feed carries every state change as an `invoice` event (to the admin token: issue 26).
        resp = await client.get("/v1/stream?last_event_id=0.0", headers=AUTH)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE invoices SET state = 'paid', received = 1000 WHERE id = $1", inv["id"])
        msgs = [m for m in await read_sse(resp, 2) if m["event"] == "invoice"]
        resp.close()
        assert [m["data"]["state"] for m in msgs] == ["new", "paid"]
        assert msgs[-1]["data"]["previous_state"] == "new" and msgs[-1]["data"]["app_ref"] == "order-1"

        # verify-payment: bad input names its field.
        for change, field in (({"tx_hash": "0x12"}, "tx_hash"), ({"chain": "nope"}, "chain"),
                              ({"asset": None}, "asset"), ({"to": "nowhere"}, "to"),
                              ({"invoice": "missing", "to": None, "asset": None, "min_amount": None}, "invoice"),
                              ({"invoice": inv["id"]}, "to"),  # an invoice brings its own expectation
                              ({"invoice": "order-1", "to": None, "asset": None, "min_amount": None}, "invoice"),
                              ({"min_amount": 0}, "min_amount"),  # 0 would turn any transfer into paid_final
                              ({"min_amount": "0"}, "min_amount"),
                              ({"invoice": inv["id"], "to": None, "asset": None, "min_amount": None,
                                "claim_key": "k"}, "claim_key")):
            body = {"chain": "anvil", "tx_hash": "0x" + "ab" * 32, "to": SHOP, "asset": "Token", "min_amount": 1,
                    **change}
            body = {k: v for k, v in body.items() if v is not None}  # None: leave the field out
            r = await client.post("/v1/verify-payment", json=body)
            out = await r.json()
            assert r.status in (400, 404) and out.get("field") == field, (change, out)
    r = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'invoice.created' AND actor LIKE 'api:%'")
    assert r == 1


def test_cli_create_and_show(db_url, tmp_path):
    make_settings(tmp_path, {"database": {"url": db_url}, "chains": [evm_chain(
        "anvil", "http://127.0.0.1:9", wallets=[{"name": "shop", "address": SHOP, "assets": ["native"]}])]})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "daemon.cli", "--config", str(tmp_path / "chainsettle.toml"), "invoices"]
    out = subprocess.run(base + ["create", "--chain", "anvil", "--asset", "native", "--amount", "12345", "--wallet",
                                 SHOP, "--app-ref", "cli-1", "--account", "user:app", "--match", "amount"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"created": true' in out.stdout
    out = subprocess.run(base + ["show", "cli-1"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and '"state": "new"' in out.stdout, out.stderr
    out = subprocess.run(base + ["create", "--chain", "anvil", "--asset", "native", "--amount", "5", "--wallet",
                                 SHOP, "--app-ref", "cli-2", "--account", "user:app", "--match", "memo",
                                 "--memo", "x"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode != 0 and "match_method" in out.stderr
