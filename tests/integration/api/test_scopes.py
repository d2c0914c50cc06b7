"""Read scopes (issue 26, item 5) against a real database: who may read what, on REST, the feed and OpenAPI.

Public: status, chain events, the stream's public kinds, what the operator
publishes in `[api] public`. The admin token: everything. A signed-in
wallet: its own account under /v1/me (test_wallet.py), elsewhere a 403.
Every private route is found by walking the served /openapi.json, so a new
route cannot forget its scope.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

from config import Secret
from config.section_invoices import SigninSettings
from settlement.intents.scheduler import IntentScheduler
from settlement.ledger.pauses import pause_asset
from settlement.signin.tokens import sign_token
from tests.integration.api.test_admin import AUTH, BATCHER, USER, admin_settings, recon_run
from tests.integration.api.test_intents import body as intent_body
from tests.integration.api.test_routing import PUBLIC_PATHS, WALLET_PATHS
from tests.integration.settlement.distributions.support import seed_rows as seed_distribution_rows
from tests.support.api_data import (
    BATCH,
    address,
    api_settings,
    chain_cfg,
    client_for,
    commit_blocks,
    event_row,
    read_sse,
    seed_settlement,
    seeded,
)
from tests.support.api_data import (
    USER as SEEDED,
)

SIGNIN_KEY = "scopes-signin-key-for-tests"
INVOICE = {"chain": "anvil", "asset": "native", "amount": "1000", "wallet": BATCHER, "app_ref": "order-secret",
           "account": "user:lottery", "match_method": "payer", "payer": "0x" + "a1" * 20, "expires_in": 600}
PRIVATE_KINDS = {"payout", "batch", "invoice", "intent"}


def last(message: dict) -> bool:
    return message["data"].get("event") == "Last"


def scoped_settings(tmp_path, monkeypatch, **api):
    """Admin token, payouts, and wallet sign-in (whose tokens read only their own account, under /v1/me)."""
    monkeypatch.setenv("CS_SCOPES_SIGNIN_KEY", SIGNIN_KEY)
    settings = admin_settings(tmp_path, monkeypatch, **api)
    signin = SigninSettings(domain="shop.example", uri="https://shop.example", token_key="env:CS_SCOPES_SIGNIN_KEY")
    return settings.model_copy(update={"invoices": settings.invoices.model_copy(update={"signin": signin})})


def wallet_token() -> dict[str, str]:
    now = int(time.time())
    token = sign_token(Secret(SIGNIN_KEY, "literal"), {"iss": "shop.example", "sub": USER.lower(), "chain": "anvil",
                                            "method": "eoa", "iat": now, "exp": now + 600, "jti": "t1"})
    return {"Authorization": f"Bearer {token}"}


async def seed_private(client, pool, settings) -> dict[str, str]:
    """One of each private thing, made the way the app makes them; the concrete path of each private GET."""
    ids = await seed_settlement(pool)
    await seed_distribution_rows(pool, "anvil")  # id "1": what the walk's default path id reads
    r = await client.post("/v1/admin/invoices", json=INVOICE, headers=AUTH)
    assert r.status == 201, await r.text()
    invoice = (await r.json())["invoice"]["id"]
    # An intent due in an hour; run then, with nothing to pay from, its occurrence is delayed (an `intent` message).
    due = datetime.now(UTC) + timedelta(hours=1)
    r = await client.post("/v1/admin/intents", json=intent_body(cron=None, interval_seconds=3600, name="hourly",
                                                                timezone="UTC", start=due.isoformat()), headers=AUTH)
    assert r.status == 201, await r.text()
    intent = (await r.json())["intent"]["id"]
    await IntentScheduler(pool, settings, clock=lambda: due + timedelta(seconds=30)).tick()
    assert await pool.fetchval("SELECT count(*) FROM feed_outbox WHERE kind = 'intent'") >= 1
    r = await client.post("/v1/admin/replay", json={"chain": "anvil", "from_block": 1, "to_block": 2}, headers=AUTH)
    assert r.status == 202, await r.text()
    replay = (await r.json())["replay"]["id"]
    r = await client.post("/v1/admin/deliveries", json={"id": "app", "sink": "webhook",
                                                        "url": "https://hooks.example/x"}, headers=AUTH)
    assert r.status == 201, await r.text()
    return {"/v1/accounts/{id}/": f"user:anvil:{SEEDED}", "/v1/payouts/{id}": "req-1", "/v1/batches/{id}": BATCH,
            "/v1/intents/{id}/": str(intent), "/v1/admin/intents/{id}": str(intent),
            "/v1/admin/invoices/{id}": invoice, "/v1/admin/replay/{id}": str(replay),
            "/v1/admin/deliveries/{id}": "app", "/v1/entitlements/{account}": SEEDED, "_ids": ids}


def concrete(path: str, seeded_ids: dict) -> str:
    for prefix, value in seeded_ids.items():
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return re.sub(r"\{[^}]+\}", str(value), path)
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_private_route_refuses_without_the_right_token(tmp_path, pool, monkeypatch):
    settings = scoped_settings(tmp_path, monkeypatch)
    await seeded(pool, "anvil", blocks=10)
    async with client_for(settings, pool) as client:
        known = await seed_private(client, pool, settings)
        spec = await (await client.get("/openapi.json")).json()
        private_gets = []
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if path in PUBLIC_PATHS:
                    assert "security" not in op, (method, path)
                    continue
                if path in WALLET_PATHS:  # the wallet's own account (test_wallet.py walks these with tokens)
                    assert op["security"] == [{"wallet": []}], (method, path)
                    assert (await client.request(method.upper(), path)).status == 401, path
                    assert (await client.request(method.upper(), path, headers=AUTH)).status == 403, path
                    continue
                assert op["security"] == [{"admin": []}], (method, path)
                assert {"401", "403"} <= set(op["responses"]), (method, path)
                url = concrete(path, known)
                anonymous = await client.request(method.upper(), url)
                assert anonymous.status == 401, (method, url, await anonymous.text())
                assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await anonymous.json())["field"] == "Authorization"
                wrong = await client.request(method.upper(), url, headers={"Authorization": "Bearer nope"})
                assert wrong.status == 401, (method, url)
                wallet = await client.request(method.upper(), url, headers=wallet_token())
                assert wallet.status == 403, (method, url, await wallet.text())
                assert (await wallet.json())["error"] == "forbidden"
                if method == "get":
                    private_gets.append(path)
                    admin = await client.get(url, headers=AUTH)
                    needs_query = any(q["required"] and q["in"] == "query" for q in op.get("parameters", []))
                    if needs_query:  # answered, not refused (the walk cannot invent a valid cursor)
                        assert admin.status not in (401, 403) and admin.status < 500, (url, await admin.text())
                    else:
                        assert admin.status == 200, (url, await admin.text())
        # The private reads of issue 26, and the admin ones, all came through the walk.
        for path in ("/v1/accounts/{id}/balances", "/v1/accounts/{id}/payouts", "/v1/payouts/{id}", "/v1/batches/{id}",
                     "/v1/reconciliation", "/v1/deliveries", "/v1/intents/{id}/occurrences", "/v1/admin/invoices/{id}",
                     "/v1/admin/payouts/held", "/v1/admin/deliveries"):
            assert path in private_gets, path
        # Public routes answer anyone, a wallet token included.
        for path in ("/v1/status", "/v1/events", "/openapi.json", "/health", "/"):
            assert (await client.get(path)).status == 200, path
            assert (await client.get(path, headers=wallet_token())).status == 200, path


async def test_status_is_aggregates_only_without_a_token(tmp_path, pool, monkeypatch):
    settings = scoped_settings(tmp_path, monkeypatch)
    await seeded(pool, "anvil", blocks=10)
    async with client_for(settings, pool) as client:
        await seed_private(client, pool, settings)
        async with pool.acquire() as conn:
            await pause_asset(conn, "anvil:native", f"run 1: user:anvil:{USER} holds 5", "reconciler")
        anonymous = await client.get("/v1/status")
        text = await anonymous.text()
        admin = await (await client.get("/v1/status", headers=AUTH)).json()
    assert anonymous.status == 200
    for secret in (SEEDED.lower(), "req-1", "order-secret", "user:lottery", BATCH):
        assert secret not in text.lower(), secret
    body = await anonymous.json()
    assert body["reconciliation"]["paused_assets"][0]["reason"] is None
    assert {(q["state"], q["count"]) for q in body["payouts"]["queue"]} >= {("pending", 2)}
    assert body["assets"][0]["symbol"] == "ETH"
    assert USER in admin["reconciliation"]["paused_assets"][0]["reason"]


async def test_private_reads_answer_401_when_no_admin_token_is_configured(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    await seeded(pool)
    async with client_for(settings, pool) as client:
        spec = await (await client.get("/openapi.json")).json()
        assert not any(p.startswith("/v1/admin/") for p in spec["paths"])
        assert spec["paths"]["/v1/payouts/{id}"]["get"]["security"] == [{"admin": []}]
        for path in ("/v1/payouts/1", "/v1/accounts/1/balances", "/v1/reconciliation", "/v1/deliveries",
                     "/v1/intents/1/occurrences"):
            resp = await client.get(path)
            assert resp.status == 401, path
            resp = await client.get(path, headers={"Authorization": "Bearer anything"})
            assert resp.status == 401, path


async def test_an_area_the_operator_publishes_is_readable_by_anyone(tmp_path, pool, monkeypatch):
    settings = scoped_settings(tmp_path, monkeypatch, public=["payouts", "deliveries"])
    await seeded(pool)
    async with client_for(settings, pool) as client:
        await seed_settlement(pool)
        assert (await client.get("/v1/payouts/req-1")).status == 200
        assert (await client.get(f"/v1/batches/{BATCH}")).status == 200
        assert (await client.get("/v1/deliveries")).status == 200
        assert (await client.get(f"/v1/accounts/user:anvil:{SEEDED}/balances")).status == 401
        assert (await client.get("/v1/reconciliation")).status == 401
        assert (await client.get("/v1/admin/payouts/held")).status == 401  # /v1/admin/ is never published
        spec = await (await client.get("/openapi.json")).json()
        assert "security" not in spec["paths"]["/v1/payouts/{id}"]["get"]
        assert "security" in spec["paths"]["/v1/accounts/{id}/balances"]["get"]


async def test_the_feed_replayed_without_a_token_carries_no_private_rows(tmp_path, pool, monkeypatch):
    settings = scoped_settings(tmp_path, monkeypatch, sse_poll_interval=0.05)
    store, _ = await seeded(pool, "anvil", blocks=10)
    async with client_for(settings, pool) as client:
        await seed_private(client, pool, settings)
        run = await recon_run(pool, "mismatch", 3)
        async with pool.acquire() as conn:
            await pause_asset(conn, "anvil:native", f"run {run}: wallet:anvil:{BATCHER} holds 103", "reconciler", run)
        await commit_blocks(store, 10, 11, [event_row("anvil", 11, 0, addr=address(7), event="Last")])
        admin = await client.get("/v1/stream?last_event_id=0.0", headers=AUTH)
        anonymous = await client.get("/v1/stream?last_event_id=0.0")
        wallet = await client.get("/v1/stream?last_event_id=0.0", headers=wallet_token())
        everything = await read_sse(admin, 1000, until=last)
        public = await read_sse(anonymous, 1000, until=last)
        signed_in = await read_sse(wallet, 1000, until=last)
        # Resuming after a public message: the private ones after it are skipped, never sent.
        again = await client.get("/v1/stream", headers={"Last-Event-ID": public[0]["id"]})
        resumed = await read_sse(again, 1000, until=last)
        for resp in (admin, anonymous, wallet, again):
            resp.close()
    kinds = {m["event"] for m in everything}
    assert PRIVATE_KINDS <= kinds, kinds
    assert not PRIVATE_KINDS & {m["event"] for m in public}
    assert [m["id"] for m in signed_in] == [m["id"] for m in public]
    # The same order, nothing private, nothing repeated: a subsequence of the admin's positions.
    admin_ids = [m["id"] for m in everything]
    public_ids = [m["id"] for m in public]
    assert public_ids == [i for i in admin_ids if i in set(public_ids)]
    assert len(set(public_ids)) == len(public_ids)
    assert {m["event"] for m in public} == {"chain_event", "reconciliation", "asset_pause"}
    rec = [m["data"] for m in public if m["event"] == "reconciliation"]
    assert rec and all("results" not in r for r in rec)
    assert all("reason" not in m["data"] for m in public if m["event"] == "asset_pause")
    text = repr(public)
    for secret in ("order-secret", "user:lottery", "req-1", SEEDED.lower(), USER.lower(), f"wallet:anvil:{BATCHER}"):
        assert secret not in text, secret
    full = [m["data"] for m in everything if m["event"] == "reconciliation" and m["data"]["id"] == run]
    assert full[0]["results"][0]["difference"] == "3"
    assert [m["id"] for m in resumed] == public_ids[1:]


async def test_one_client_cannot_take_every_stream_slot(tmp_path, pool, monkeypatch):
    settings = scoped_settings(tmp_path, monkeypatch, sse_max_clients=5, stream_slots_per_client=2,
                               trusted_proxies=["127.0.0.1/32", "::1"])
    assert api_settings(tmp_path, [chain_cfg("anvil")]).api.stream_slots == 20  # default: a tenth of 200
    await seeded(pool)
    a, b = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    async with client_for(settings, pool) as client:
        first = await client.get("/v1/stream", headers=a)
        second = await client.get("/v1/stream", headers=a)
        assert (first.status, second.status) == (200, 200)
        third = await client.get("/v1/stream", headers=a)
        assert third.status == 429 and (await third.json())["error"] == "too_many_streams"
        assert int(third.headers["Retry-After"]) >= 1
        # The admin token does not buy more slots either: the key is the client.
        assert (await client.get("/v1/stream", headers={**a, **AUTH})).status == 429
        # Another client still gets in.
        other = await client.get("/v1/stream", headers=b)
        assert other.status == 200
        # A closed stream gives its slot back.
        first.close()
        for _ in range(50):
            retry = await client.get("/v1/stream", headers=a)
            if retry.status == 200:
                break
            await asyncio.sleep(0.1)
        assert retry.status == 200
        for resp in (second, other, retry):
            resp.close()
