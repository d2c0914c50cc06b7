"""Issue 27 against a real database: wallet sessions (refresh rotation, reuse detection, logout, key
rotation), the wallet's own scope under /v1/me, withdrawals with per-user limits and idempotency,
and the admin's freeze of an account.

Two apps on one database stand for two API replicas (the cross-process test with two
`chainsettle run` daemons is test_wallet_processes.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from config import Secret
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from settlement.signin.tokens import sign_token
from tests.integration.api.test_admin import AUTH, admin_settings, credit
from tests.support.api_data import client_for, seeded
from tests.support.ledger import fund
from tests.support.wallet import OLD_KEY, SIGNIN_KEY, bearer, new_account, sign_in, with_signin

UNIT = 1000
LIMITS = {"cooldown_seconds": 0, "limits": [{"chain": "anvil", "asset": "native", "min": "10", "per_request": "400",
                                             "per_day": "1000"}]}


def wallet_settings(tmp_path, monkeypatch, *, withdrawals=None, **signin):
    base = admin_settings(tmp_path, monkeypatch, max_inflight_per_client=64)
    return with_signin(base, monkeypatch, withdrawals=withdrawals if withdrawals is not None else LIMITS, **signin)


async def refresh(client, token: str):
    r = await client.post("/v1/auth/refresh", json={"refresh_token": token})
    return r.status, await r.json()


async def me_status(client, token: str) -> int:
    return (await client.get("/v1/me", headers=bearer(token))).status


# -- sessions -------------------------------------------------------------------------------------


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(tmp_path, pool, monkeypatch):
    settings = wallet_settings(tmp_path, monkeypatch)
    alice = new_account()
    async with client_for(settings, pool) as a, client_for(settings, pool) as b:
        first = await sign_in(a, alice)
        assert first["address"] == alice.address.lower() and first["refresh_token"] != first["token"]
        assert await me_status(b, first["token"]) == 200  # the other replica accepts the access token
        status, second = await refresh(a, first["refresh_token"])
        assert status == 200, second
        assert second["session"] == first["session"] and second["refresh_token"] != first["refresh_token"]
        assert await me_status(b, second["token"]) == 200
        # The spent token, presented again (to the other replica): refused, and the whole family revoked.
        status, body = await refresh(b, first["refresh_token"])
        assert (status, body["reason"]) == (401, "reused"), body
        status, body = await refresh(a, second["refresh_token"])
        assert (status, body["reason"]) == (401, "revoked"), body
        for token in (first["token"], second["token"]):
            assert await me_status(a, token) == 401
            assert await me_status(b, token) == 401
        # A fresh sign-in is a new family, unaffected.
        third = await sign_in(b, alice)
        assert third["session"] != first["session"] and await me_status(a, third["token"]) == 200
        status, body = await refresh(a, "csr_" + "x" * 43)
        assert (status, body["reason"]) == (401, "unknown")
    # Stored hashed: the tokens themselves are nowhere in the table.
    rows = await pool.fetch("SELECT hash FROM signin_refresh_tokens")
    assert hashlib.sha256(third["refresh_token"].encode()).digest() in {bytes(r["hash"]) for r in rows}
    dump = str(await pool.fetch("SELECT * FROM signin_refresh_tokens")) + str(await pool.fetch(
        "SELECT * FROM signin_sessions"))
    assert third["refresh_token"] not in dump and third["refresh_token"][4:] not in dump
    assert await pool.fetchval("SELECT revoked_reason FROM signin_sessions WHERE id = $1::uuid",
                               first["session"]) == "reuse"
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'signin.refresh_reused'") == 1


async def test_one_refresh_token_raced_on_two_replicas(tmp_path, pool, monkeypatch):
    """The same refresh token at once on both: one rotation wins, the other is reuse and ends the family."""
    settings = wallet_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool) as a, client_for(settings, pool) as b:
        for _ in range(5):
            s = await sign_in(a, new_account())
            results = await asyncio.gather(refresh(a, s["refresh_token"]), refresh(b, s["refresh_token"]))
            statuses = sorted(st for st, _ in results)
            assert statuses == [200, 401], results
            winner = next(body for st, body in results if st == 200)
            loser = next(body for st, body in results if st == 401)
            assert loser["reason"] == "reused"
            assert (await refresh(b, winner["refresh_token"]))[0] == 401
            assert await me_status(a, winner["token"]) == 401


async def test_logout_revokes_at_once(tmp_path, pool, monkeypatch):
    settings = wallet_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool) as a, client_for(settings, pool) as b:
        s = await sign_in(a, new_account())
        r = await b.post("/v1/auth/logout", headers=bearer(s["token"]))
        assert r.status == 200 and (await r.json())["revoked"] is True
        assert await me_status(a, s["token"]) == 401
        status, body = await refresh(a, s["refresh_token"])
        assert (status, body["reason"]) == (401, "revoked")
        # By refresh token (a client that lost its access token); twice is not an error.
        s = await sign_in(a, new_account())
        for revoked in (True, False):
            r = await a.post("/v1/auth/logout", json={"refresh_token": s["refresh_token"]})
            assert r.status == 200 and (await r.json())["revoked"] is revoked
        assert await me_status(b, s["token"]) == 401
        r = await a.post("/v1/auth/logout")
        assert r.status == 401 and (await r.json())["field"] == "refresh_token"


async def test_tokens_rotation_of_keys_expiry_and_forgery(tmp_path, pool, monkeypatch):
    settings = wallet_settings(tmp_path, monkeypatch, previous=True)
    async with client_for(settings, pool) as client:
        s = await sign_in(client, new_account())
        now = int(time.time())
        claims = {"iss": "shop.example", "sub": s["address"], "chain": "anvil", "method": "eoa", "sid": s["session"],
                  "typ": "access", "iat": now, "exp": now + 300}
        old = sign_token(Secret(OLD_KEY, "test"), claims)  # signed before the rotation: still accepted
        assert await me_status(client, old) == 200
        forged = sign_token(Secret("not-our-key-0123456789abcdef0123", "test"), claims)
        expired = sign_token(Secret(SIGNIN_KEY, "test"), {**claims, "iat": now - 600, "exp": now - 1})
        no_session = sign_token(Secret(SIGNIN_KEY, "test"), {k: v for k, v in claims.items() if k != "sid"})
        refresh_typed = sign_token(Secret(SIGNIN_KEY, "test"), {**claims, "typ": "refresh"})
        head, body, mac = s["token"].split(".")
        tampered = f"{head}.{body[:-2]}AA.{mac}"
        for token in (forged, expired, no_session, refresh_typed, tampered, "garbage", s["refresh_token"]):
            r = await client.get("/v1/me", headers=bearer(token))
            assert r.status == 401, (token, await r.text())
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Without the old key configured, the old token is refused.
    settings = wallet_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool) as client:
        assert await me_status(client, old) == 401


# -- the wallet's own scope ---------------------------------------------------------------------


async def test_every_me_route_reads_only_the_tokens_account(tmp_path, pool, monkeypatch):
    settings = wallet_settings(tmp_path, monkeypatch)
    await seeded(pool, "anvil", blocks=10)
    alice, bob = new_account(), new_account()
    await credit(pool, alice.address.lower(), 700)
    async with client_for(settings, pool) as client:
        sa, sb = await sign_in(client, alice), await sign_in(client, bob)
        r = await client.post("/v1/me/withdrawals", json={"chain": "anvil", "asset": "native", "amount": "100",
                                                          "key": "w1"}, headers=bearer(sa["token"]))
        assert r.status == 201, await r.text()
        spec = await (await client.get("/openapi.json")).json()
        wallet_paths = [(path, m) for path, ops in spec["paths"].items() for m, op in ops.items()
                        if op.get("security") == [{"wallet": []}]]
        assert {p for p, _ in wallet_paths} >= {"/v1/me", "/v1/me/balances", "/v1/me/entries", "/v1/me/payouts",
                                                 "/v1/me/invoices", "/v1/me/withdrawals"}
        now = int(time.time())
        expired = sign_token(Secret(SIGNIN_KEY, "test"), {"sub": alice.address.lower(), "chain": "anvil",
                                                          "sid": sa["session"], "iat": now - 99, "exp": now - 1})
        forged = sign_token(Secret("forged-key-0123456789-0123456789", "t"), {
            "sub": alice.address.lower(), "chain": "anvil", "sid": sa["session"], "iat": now, "exp": now + 99})
        for path, method in wallet_paths:
            for headers in ({}, bearer("nope"), bearer(expired), bearer(forged)):
                r = await client.request(method.upper(), path, headers=headers, json={})
                assert r.status == 401, (path, headers, await r.text())
            r = await client.request(method.upper(), path, headers=AUTH, json={})
            assert r.status == 403, (path, await r.text())  # the admin token has no account of its own
            assert {"401", "403"} <= set(spec["paths"][path][method]["responses"])
            # No route takes an account: naming one is refused, never read.
            r = await client.request(method.upper(), f"{path}?account=user:anvil:{alice.address.lower()}",
                                     headers=bearer(sb["token"]), json={})
            assert r.status == 400, (path, await r.text())
        # Alice sees hers; Bob sees nothing of Alice's anywhere.
        mine = await (await client.get("/v1/me/balances", headers=bearer(sa["token"]))).json()
        assert mine["account"] == f"user:anvil:{alice.address.lower()}"
        (bal,) = mine["balances"]
        assert (bal["final"], bal["pending"], bal["available"]) == ("700", "100", "600")
        assert bal["units"]["available"].endswith("ETH")
        me = await (await client.get("/v1/me", headers=bearer(sa["token"]))).json()
        assert me["accounts"] == [{"code": mine["account"], "exists": True, "frozen": False}]
        entries = await (await client.get("/v1/me/entries?limit=1", headers=bearer(sa["token"]))).json()
        assert len(entries["entries"]) == 1 and entries["account"]["code"] == mine["account"]
        payouts = await (await client.get("/v1/me/payouts", headers=bearer(sa["token"]))).json()
        assert [(p["amount"], p["direction"]) for p in payouts["payouts"]] == [("100", "withdrawal")]
        # a share owed to Alice: hers to see, with what her entitlement holds; not Bob's
        await create_snapshot(pool, settings, SnapshotRequest("s", "list", ((alice.address.lower(), 1),
                                                                            (bob.address.lower(), 3))), "t")
        await fund(pool, "app:pool", 40, asset="anvil:native")
        await create_distribution(pool, settings, DistributionRequest("d", "s", "app:pool", "anvil:native", 40), "t")
        ents = await (await client.get("/v1/me/entitlements", headers=bearer(sa["token"]))).json()
        assert [(e["distribution"], e["share"], e["owed"]) for e in ents["entitlements"]] == [("d", "10", "10")]
        for path in ("/v1/me/balances", "/v1/me/entries", "/v1/me/payouts", "/v1/me/invoices", "/v1/me/entitlements"):
            theirs = await (await client.get(path, headers=bearer(sb["token"]))).json()
            assert alice.address.lower() not in str(theirs), (path, theirs)
            assert not any(theirs.get(k) for k in ("balances", "entries", "payouts", "invoices")), (path, theirs)
        theirs = await (await client.get("/v1/me/entitlements", headers=bearer(sb["token"]))).json()
        assert [(e["share"], e["account"]) for e in theirs["entitlements"]] == [
            ("30", f"entitlement:d:{bob.address.lower()}")]


# -- withdrawals and freezing ------------------------------------------------------------------


async def withdraw(client, token: str, amount, key: str, **extra):
    r = await client.post("/v1/me/withdrawals", json={"chain": "anvil", "asset": "native", "amount": str(amount),
                                                      "key": key, **extra}, headers=bearer(token))
    return r.status, await r.json()


async def test_withdrawal_limits_and_idempotency_under_concurrency(tmp_path, pool, monkeypatch):
    settings = wallet_settings(tmp_path, monkeypatch)
    await seeded(pool, "anvil", blocks=10)
    alice = new_account()
    await credit(pool, alice.address.lower(), 5000)
    async with client_for(settings, pool) as a, client_for(settings, pool) as b:
        s = await sign_in(a, alice)
        t = s["token"]
        # Refusals name the field.
        for amount, extra, status, field in ((5, {}, 400, "amount"), (401, {}, 400, "amount"),
                                             (20, {"to": "0x" + "77" * 20}, 400, "to"),
                                             (20, {"asset": "Token"}, 400, "asset"),
                                             (20, {"chain": "other"}, 400, "chain")):
            st, body = await withdraw(a, t, amount, "refused", **extra)
            assert (st, body["field"]) == (status, field), body
        # The same key from eight requests on two replicas at once: one request, the same answer to all.
        results = await asyncio.gather(*(withdraw(c, t, 300, "same") for c in (a, b) * 4))
        assert sorted(st for st, _ in results) == [200] * 7 + [201]
        assert len({body["payout"]["id"] for _, body in results}) == 1
        st, body = await withdraw(a, t, 301, "same")
        assert (st, body["field"]) == (409, "key")
        # Distinct keys at once against the per-day limit (1000, 300 already): at most 700 more admitted.
        results = await asyncio.gather(*(withdraw(c, t, 100, f"k{i}") for i, c in enumerate((a, b) * 6)))
        admitted = [body for st, body in results if st == 201]
        refused = [body for st, body in results if st != 201]
        assert len(admitted) == 7 and len(refused) == 5, results
        assert all(body.get("field") == "amount" and "per-day" in body["message"] for body in refused), refused
        total = await pool.fetchval("SELECT sum(amount) FROM payout_requests WHERE from_account = $1",
                                    f"user:anvil:{alice.address.lower()}")
        assert total == 1000
    # A cooldown: the second withdrawal inside it is a 429 naming when to retry; a replay is not.
    settings = wallet_settings(tmp_path, monkeypatch, withdrawals={**LIMITS, "cooldown_seconds": 3600})
    bob = new_account()
    await credit(pool, bob.address.lower(), 5000)
    async with client_for(settings, pool) as a:
        t = (await sign_in(a, bob))["token"]
        assert (await withdraw(a, t, 50, "c1"))[0] == 201
        st, body = await withdraw(a, t, 50, "c2")
        assert (st, body["error"], body["field"]) == (429, "cooldown", "key"), body
        assert (await withdraw(a, t, 50, "c1"))[0] == 200


async def test_freeze_stops_withdrawals_transfers_and_holds(tmp_path, pool, monkeypatch):
    settings = wallet_settings(tmp_path, monkeypatch)
    await seeded(pool, "anvil", blocks=10)
    alice = new_account()
    code = f"user:anvil:{alice.address.lower()}"
    await credit(pool, alice.address.lower(), 5000)
    async with client_for(settings, pool) as client:
        t = (await sign_in(client, alice))["token"]
        r = await client.post(f"/v1/admin/users/{code}/freeze", json={"reason": "support ticket 7"}, headers=AUTH)
        assert r.status == 200, await r.text()
        assert (await r.json())["changed"] is True
        st, body = await withdraw(client, t, 50, "f1")
        assert (st, body["error"]) == (403, "account_frozen"), body
        transfer = {"id": "t-frozen", "debit_account": code, "credit_account": "user:anvil:0x" + "12" * 20,
                    "asset": "anvil:native", "amount": "5"}
        r = await client.post("/v1/admin/ledger/transfers", json={"transfers": [transfer]}, headers=AUTH)
        assert r.status == 422 and (await r.json())["error"] == "account_frozen", await r.text()
        r = await client.post("/v1/admin/ledger/holds", json={**transfer, "id": "h-frozen"}, headers=AUTH)
        assert r.status == 422 and (await r.json())["error"] == "account_frozen", await r.text()
        r = await client.post("/v1/admin/payouts", json={"chain": "anvil", "asset": "native", "amount": "5",
                                                         "to": alice.address, "key": "adm-frozen"}, headers=AUTH)
        assert r.status == 403 and (await r.json())["error"] == "account_frozen", await r.text()
        # Credits still arrive; reads still work and say it is frozen.
        r = await client.post("/v1/admin/ledger/transfers", json={"transfers": [{
            **transfer, "id": "t-in", "debit_account": "user:anvil:0x" + "12" * 20, "credit_account": code,
            "amount": "1"}]}, headers=AUTH)
        assert r.status == 422 and (await r.json())["error"] == "exceeds_available"  # that payer has nothing
        me = await (await client.get("/v1/me/balances", headers=bearer(t))).json()
        assert me["frozen"] is True
        listed = await (await client.get("/v1/admin/users/frozen", headers=AUTH)).json()
        assert [x["account"] for x in listed["accounts"]] == [code]
        metrics = await (await client.get("/metrics")).text()
        assert "chainsettle_frozen_accounts 1.0" in metrics
        status = await (await client.get("/v1/status")).json()  # the status page shows the count
        assert status["payouts"]["frozen_accounts"] == 1
        r = await client.post(f"/v1/admin/users/{code}/unfreeze", json={"reason": "resolved"}, headers=AUTH)
        assert r.status == 200 and (await r.json())["changed"] is True
        assert (await withdraw(client, t, 50, "f1"))[0] == 201
        r = await client.post(f"/v1/admin/users/{code}/freeze", json={}, headers=AUTH)
        assert r.status == 400 and (await r.json())["field"] == "reason"
        r = await client.post(f"/v1/admin/users/{code}/freeze", json={"reason": "x"}, headers=bearer(t))
        assert r.status == 403
    actions = [r["action"] for r in await pool.fetch(
        "SELECT action FROM audit_log WHERE action LIKE 'account.%' ORDER BY id")]
    assert actions == ["account.frozen", "account.unfrozen"]
