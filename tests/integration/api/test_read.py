"""The read API, admin API, SSE feed and /metrics against a real migrated database."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import structlog
from aiohttp.test_utils import TestServer

from api.app import make_app
from config import ConfigError, SecretError
from db import create_pool
from indexer.models import Cursor
from tests.support.api_data import (
    BATCH,
    USER,
    WALLET,
    address,
    api_settings,
    block_hash,
    chain_cfg,
    client_for,
    commit_blocks,
    event_row,
    published,
    read_sse,
    register_chain,
    seed_settlement,
    seeded,
)

TOKEN = "s3cret-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def admin_settings(tmp_path, monkeypatch, **api):
    """Private reads need the admin token (read scopes, issue 26)."""
    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    return api_settings(tmp_path, [chain_cfg("anvil")], api={"admin_token": "env:CS_TEST_ADMIN_TOKEN", **api})


# -- configuration ----------------------------------------------------------------


@pytest.mark.parametrize("api, message", [
    ({"listen": "8080"}, r"api\.listen: .*must be host:port"),
    ({"listen": "127.0.0.1:70000"}, r"api\.listen: .*port must be 0-65535"),
    ({"listen": "[zz]:80"}, r"api\.listen: .*not an IPv6 address"),
    ({"cors_origins": ["https://app.example.com/"]}, r"api\.cors_origins: .*no path"),
    ({"trusted_proxies": ["10.0.0.300"]}, r"api\.trusted_proxies: .*not an IP address"),
    ({"max_page_size": 0}, r"api\.max_page_size"),
    ({"default_page_size": 600}, r"api: .*default_page_size \(600\) exceeds max_page_size \(500\)"),
    ({"admin_token": " "}, r"api\.admin_token: .*secret reference"),
])
def test_api_config_errors_name_the_field(tmp_path, api, message):
    with pytest.raises(ConfigError, match=message):
        api_settings(tmp_path, [chain_cfg("anvil")], api=api)


def test_api_config_accepts_ipv6_and_wildcard_origin(tmp_path):
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"listen": "[::1]:0", "cors_origins": ["*"]})
    assert (settings.api.host, settings.api.port) == ("::1", 0)


# -- status and readiness -------------------------------------------------------


async def test_status_reports_each_chain_from_the_database(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil", lag_threshold_blocks=5), chain_cfg("later")])
    store, _ = await seeded(pool, head=12, final=5)
    # A reorg of depth 2: back to block 8, recorded in reorgs.
    deleted = await store.rollback_to(Cursor(8, block_hash("anvil", 8)), Cursor(10, block_hash("anvil", 10)))
    async with client_for(settings, pool) as client:
        resp = await client.get("/v1/status")
        assert resp.status == 200
        body = await resp.json()
    chains = {c["chain"]: c for c in body["chains"]}
    anvil = chains["anvil"]
    assert (anvil["head"], anvil["indexed"], anvil["finalized"], anvil["chain_finalized"]) == (12, 8, 5, 7)
    assert anvil["lag_blocks"] == 4
    assert anvil["lag_seconds"] is not None and anvil["lag_seconds"] >= 0
    assert anvil["state"] == "following" and anvil["last_error"] == "TimeoutError: slow endpoint"
    assert anvil["endpoints"] == [{"endpoint": "http://127.0.0.1:9", "healthy": True}]
    assert anvil["reorg_count"] == 1
    assert [(r["common_ancestor"], r["old_cursor"], r["depth"], r["deleted_events"]) for r in anvil["recent_reorgs"]] \
        == [(8, 10, 2, deleted)]
    assert deleted == 4
    assert chains["later"]["state"] == "not_started" and chains["later"]["configured"] is True
    assert body["payouts"] == {"queue": [], "open_batches": [], "kill_switches": [], "frozen_accounts": 0}
    assert body["reconciliation"] == {"latest": [], "paused_assets": []}


async def test_ready_needs_every_chain_registered_within_lag_and_not_halted(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil", lag_threshold_blocks=3),
                                       chain_cfg("second", lag_threshold_blocks=3)])
    async with client_for(settings, pool) as client:
        health = await client.get("/health")
        assert health.status == 200 and (await health.json()) == {"status": "ok"}

        resp = await client.get("/ready")
        body = await resp.json()
        assert resp.status == 503 and not body["ready"]
        assert any(r.startswith("anvil:") for r in body["reasons"])
        assert any(r.startswith("second:") for r in body["reasons"])

        store, _ = await seeded(pool, "anvil", blocks=10, head=13)
        second, _ = await seeded(pool, "second", blocks=4, head=4)
        resp = await client.get("/ready")
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"ready": True, "reasons": []}

        await second.set_status({}, head=9)  # 5 behind, threshold 3
        resp = await client.get("/ready")
        body = await resp.json()
        assert resp.status == 503
        assert body["reasons"] == ["second: 5 blocks behind the head (threshold 3)"]

        await second.set_status({}, head=4)
        await store.set_halted("reorg below final height 5")
        resp = await client.get("/ready")
        body = await resp.json()
        assert resp.status == 503
        assert body["reasons"] == ["anvil: halted: reorg below final height 5"]


async def test_ready_uses_each_chains_own_threshold(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil", lag_threshold_blocks=3)])
    store, _ = await seeded(pool, "anvil", blocks=10, head=13)  # exactly at the threshold
    async with client_for(settings, pool) as client:
        assert (await client.get("/ready")).status == 200
        await store.set_status({}, head=14)
        resp = await client.get("/ready")
        assert resp.status == 503
        assert (await resp.json())["reasons"] == ["anvil: 4 blocks behind the head (threshold 3)"]


# -- events -----------------------------------------------------------------------


async def all_pages(client, query: str, limit: int) -> list[dict]:
    out, cursor, pages = [], None, 0
    while True:
        url = f"/v1/events?limit={limit}{query}" + (f"&cursor={cursor}" if cursor is not None else "")
        resp = await client.get(url)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        assert len(page["events"]) <= limit
        out.extend(page["events"])
        pages += 1
        cursor = page["next"]
        if cursor is None:
            return out
        assert pages < 100


async def test_events_filters_and_keyset_pages(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil"), chain_cfg("other")])
    a = await register_chain(pool, "anvil")
    o = await register_chain(pool, "other")
    evs_a = [event_row("anvil", b, i, addr=address(b % 3), event="Transfer" if i % 2 else "Approval")
             for b in range(1, 21) for i in range(3)]
    evs_o = [event_row("other", b, 0, addr=address(7)) for b in range(1, 8)]
    await commit_blocks(a, 0, 10, [e for e in evs_a if e.block_number <= 10], final_number=6)
    await commit_blocks(o, 0, 7, evs_o, final_number=7)
    await commit_blocks(a, 10, 20, [e for e in evs_a if e.block_number > 10], final_number=6)
    stored = {r["id"]: r for r in await pool.fetch("SELECT id, chain, block_number, address, event FROM events ORDER BY tx, id")}
    commit_order = list(stored)  # pages follow commit order (tx, id), not id order
    assert len(stored) == len(evs_a) + len(evs_o)

    async with client_for(settings, pool) as client:
        every = await all_pages(client, "", 7)
        ids = [e["id"] for e in every]
        assert ids == commit_order  # commit order, no gaps, no duplicates
        newest_first = await all_pages(client, "&order=desc", 9)
        assert [e["id"] for e in newest_first] == commit_order[::-1]

        first = every[0]
        assert set(first) >= {"chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index",
                              "address", "event", "args", "inserted_at", "final"}
        assert first["args"]["value"] == str(first["block_number"] * 1000 + first["log_index"])
        assert {e["final"] for e in every if e["chain"] == "anvil" and e["block_number"] <= 6} == {True}
        assert {e["final"] for e in every if e["chain"] == "anvil" and e["block_number"] > 6} == {False}

        cases = {
            "&chain=other": lambda r: r["chain"] == "other",
            f"&chain=anvil&address={address(2).upper().replace('0X', '0x')}":
                lambda r: r["address"] == address(2) and r["chain"] == "anvil",
            "&event=Approval&chain=anvil": lambda r: r["event"] == "Approval" and r["chain"] == "anvil",
            "&chain=anvil&from_block=5&to_block=12": lambda r: r["chain"] == "anvil" and 5 <= r["block_number"] <= 12,
            "&chain=anvil&from_block=18": lambda r: r["chain"] == "anvil" and r["block_number"] >= 18,
        }
        # An unknown chain is a 400 naming `chain` (issue 30), not an empty page that reads as "nothing happened".
        resp = await client.get("/v1/events?chain=nothing")
        assert resp.status == 400 and (await resp.json())["field"] == "chain"
        for query, keep in cases.items():
            got = [e["id"] for e in await all_pages(client, query, 4)]
            assert got == [i for i, r in stored.items() if keep(r)], query


MALFORMED = [
    ("/v1/events?limit=0", "limit"),
    ("/v1/events?limit=501", "limit"),
    ("/v1/events?limit=ten", "limit"),
    ("/v1/events?limit=1_0", "limit"),
    ("/v1/events?from_block=-1", "from_block"),
    ("/v1/events?from_block=99999999999999999999", "from_block"),
    ("/v1/events?from_block=9&to_block=3", "to_block"),
    ("/v1/events?chain=Bad!", "chain"),
    ("/v1/events?chain=anvil%00", "chain"),
    ("/v1/events?address=0x1234", "address"),
    ("/v1/events?event=1abc", "event"),
    ("/v1/events?order=sideways", "order"),
    ("/v1/events?cursor=1e3", "cursor"),
    ("/v1/events?cursor=YzEuMS4y%21", "cursor"),
    ("/v1/events?address=0x" + "ab" * 20, "chain"),
    ("/v1/events?event=Transfer", "chain"),
    ("/v1/events?from_block=3", "chain"),
    ("/v1/events?colour=red", "colour"),
    ("/v1/events?limit=1&limit=2", "limit"),
    ("/v1/reconciliation?status=great", "status"),
    ("/v1/payouts/a%20b", "id"),
    ("/v1/accounts/%C3%A9/balances", "id"),
    ("/v1/stream?last_event_id=12", "last_event_id"),
    ("/v1/status?verbose=1", "verbose"),
]


async def test_malformed_requests_get_json_400_naming_the_field(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool) as client:
        for path, field in MALFORMED:
            resp = await client.get(path, headers=AUTH)
            assert resp.status == 400, (path, await resp.text())
            assert resp.content_type == "application/json", path
            body = await resp.json()
            assert body["field"] == field and body["error"] == "invalid_parameter", path
            assert body["message"].startswith(field + ":"), path


async def test_unknown_routes_and_methods_are_json(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool, headers=AUTH) as client:
        resp = await client.get("/v1/nothing")
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"
        resp = await client.delete("/v1/events")
        assert resp.status == 405 and "GET" in resp.headers["Allow"]
        assert (await resp.json())["error"] == "method_not_allowed"
        for path in ("/v1/payouts/17", "/v1/batches/17", "/v1/accounts/user:anvil:0x01/balances"):
            resp = await client.get(path)
            assert resp.status == 404 and (await resp.json())["field"] == "id"
        resp = await client.get("/v1/accounts/user:anvil:0x01/payouts")
        assert resp.status == 404
        resp = await client.get("/v1/reconciliation")
        assert resp.status == 200 and await resp.json() == {"runs": [], "next": None}


# -- ledger, payouts, reconciliation ---------------------------------------------------

async def test_balances_payouts_batches_and_reconciliation(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    await seeded(pool, blocks=10, final=5)
    ids = await seed_settlement(pool)
    async with client_for(settings, pool, headers=AUTH) as client:
        user = await (await client.get(f"/v1/accounts/user:anvil:{USER}/balances")).json()
        assert user["account"]["kind"] == "user"
        # Final 100 (50 not final yet); 5 + 7 requested from the account are reserved, not available.
        assert user["balances"] == [{"asset_id": "anvil:native", "chain": "anvil", "symbol": "ETH", "decimals": 18,
                                     "balance": "150", "final_balance": "100", "final": "100", "held": "0",
                                     "reserved": "12", "pending": "62", "available": "88"}]
        wallet = await (await client.get(f"/v1/accounts/{ids['wallet']}/balances")).json()
        assert wallet["account"]["code"] == f"wallet:anvil:{WALLET}"
        assert (wallet["balances"][0]["balance"], wallet["balances"][0]["final_balance"]) == ("150", "100")

        page = await (await client.get(f"/v1/accounts/user:anvil:{USER}/payouts?limit=1")).json()
        assert [p["id"] for p in page["payouts"]] == [ids["batched"]] and page["next"] == ids["batched"]
        rest = await (await client.get(f"/v1/accounts/user:anvil:{USER}/payouts?limit=1&cursor={page['next']}")).json()
        assert [p["id"] for p in rest["payouts"]] == [ids["pending"]] and rest["next"] is None

        by_id = await (await client.get(f"/v1/payouts/{ids['batched']}")).json()
        by_key = await (await client.get("/v1/payouts/req-2")).json()
        assert by_id == by_key
        assert by_id["payout"]["amount"] == "7" and by_id["payout"]["batch"]["batch_id"] == BATCH
        assert by_id["payout"]["batch"]["state"] == "signed"
        assert (await (await client.get("/v1/payouts/req-1")).json())["payout"]["batch"] is None
        assert (await client.get("/v1/payouts/999999")).status == 404

        batch = (await (await client.get(f"/v1/batches/{BATCH.upper().replace('0X', '0x')}")).json())["batch"]
        assert batch["state"] == "signed" and batch["total"] == "7"
        assert "signature" not in batch
        assert [(i["request_id"], i["amount"]) for i in batch["items"]] == [(ids["batched"], "7")]
        assert [(t["tx_hash"], t["nonce"], t["state"]) for t in batch["transactions"]] == [("0xfeed", 4, "broadcast")]
        assert "raw" not in batch["transactions"][0]

        status = await (await client.get("/v1/status")).json()
        queue = {(q["state"], q["count"], q["amount"]) for q in status["payouts"]["queue"]}
        assert queue == {("pending", 2, "14"), ("batched", 1, "7")}
        assert status["payouts"]["open_batches"] == [{"chain": "anvil", "state": "signed", "count": 1,
                                                      "ids": [BATCH]}]
        latest = status["reconciliation"]["latest"]
        assert [(r["chain"], r["id"], r["status"]) for r in latest] == [("anvil", ids["run_mismatch"], "mismatch")]

        runs = await (await client.get("/v1/reconciliation?chain=anvil")).json()
        assert [r["id"] for r in runs["runs"]] == [ids["run_mismatch"], ids["run_ok"]]
        assert runs["runs"][0]["results"][0]["difference"] == "1"
        assert runs["runs"][0]["results"][0]["account"] == f"wallet:anvil:{WALLET}"
        only_ok = await (await client.get("/v1/reconciliation?status=ok&limit=1")).json()
        assert [r["id"] for r in only_ok["runs"]] == [ids["run_ok"]] and only_ok["next"] is None
        first = await (await client.get("/v1/reconciliation?limit=1")).json()
        assert first["next"] == ids["run_mismatch"]


async def test_status_queue_shows_what_is_not_over(tmp_path, pool):
    # Over: paid and cancelled requests; confirmed, expired and cancelled
    # batches. A reverted batch waits for its expiry or an operator: shown.
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    await seeded(pool, blocks=10, final=5)
    await seed_settlement(pool)
    async with pool.acquire() as conn:
        for n, (state, extra) in enumerate((("reverted", ""), ("cancelled", ""), ("confirmed", "5"),
                                            ("expired", ""), ("reverted", ""))):
            await conn.execute(
                "INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count,"
                " total, gas_limit, expiry, state, signature, reason, executed_block) VALUES ($1, 'anvil', 'native',"
                " $2, 0, $3, $3, 1, 7, 90000, 2000000000, $4, '0xsig', 'test', $5)",
                f"0x{n + 1:064x}", "0x" + "00" * 20, WALLET, state, int(extra) if extra else None)
        for key, state in (("req-c1", "cancelled"), ("req-c2", "cancelled"), ("req-h", "held")):
            await conn.execute(
                "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by, state,"
                " reason) VALUES ($1, 'anvil', 'native', $2, 11, 'test', $3, 'test')", key, USER, state)
    async with client_for(published(settings, "payouts"), pool) as client:
        status = await (await client.get("/v1/status")).json()
    queue = {(q["state"], q["count"], q["amount"]) for q in status["payouts"]["queue"]}
    assert queue == {("pending", 2, "14"), ("batched", 1, "7"), ("held", 1, "11")}
    # `ids`: the oldest batch ids of each state (issue 30: the status page says which batch to act on).
    assert status["payouts"]["open_batches"] == [
        {"chain": "anvil", "state": "reverted", "count": 2, "ids": [f"0x{1:064x}", f"0x{5:064x}"]},
        {"chain": "anvil", "state": "signed", "count": 1, "ids": [BATCH]}]


# -- CORS and rate limit ---------------------------------------------------------


async def test_cors_allows_only_listed_origins(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"cors_origins": ["https://app.example.com"]})
    async with client_for(settings, pool) as client:
        ok = await client.get("/v1/status", headers={"Origin": "https://app.example.com"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "Origin" in ok.headers.getall("Vary")
        other = await client.get("/v1/status", headers={"Origin": "https://evil.example"})
        assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers

        pre = await client.options("/v1/events", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"})
        assert pre.status == 204
        assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "GET" in pre.headers["Access-Control-Allow-Methods"]
        denied = await client.options("/v1/events", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert denied.status == 403 and (await denied.json())["field"] == "Origin"
        assert "Access-Control-Allow-Origin" not in denied.headers

        # Streamed responses send headers early; they carry CORS too.
        stream = await client.get("/v1/stream", headers={"Origin": "https://app.example.com"})
        assert stream.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        stream.close()


async def test_rate_limit_per_client_with_retry_after(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={
        "rate_limit_per_second": 0.01, "rate_limit_burst": 3, "trusted_proxies": ["127.0.0.1/32", "::1"]})
    async with client_for(settings, pool) as client:
        a = {"X-Forwarded-For": "203.0.113.7"}
        statuses = [(await client.get("/v1/events", headers=a)).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await client.get("/v1/events", headers=a)
        assert limited.status == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await limited.json())["error"] == "rate_limited"
        # Another client behind the same proxy has its own bucket.
        assert (await client.get("/v1/events", headers={"X-Forwarded-For": "203.0.113.8"})).status == 200
        # A spoofed hop in front of the real client does not buy a new bucket.
        spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
        assert (await client.get("/v1/events", headers=spoofed)).status == 429
        # Probes are not limited.
        assert (await client.get("/health", headers=a)).status == 200


# -- admin --------------------------------------------------------------------------


async def test_admin_routes_absent_without_a_token(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    await seeded(pool)
    async with client_for(settings, pool) as client:
        resp = await client.post("/v1/admin/replay", json={"chain": "anvil", "from_block": 1, "to_block": 2},
                                 headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status == 404
        spec = await (await client.get("/openapi.json")).json()
        assert "/v1/admin/replay" not in spec["paths"]


async def test_admin_token_must_resolve(tmp_path, pool, monkeypatch):
    monkeypatch.delenv("CS_TEST_MISSING_TOKEN", raising=False)
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"admin_token": "env:CS_TEST_MISSING_TOKEN"})
    with pytest.raises(SecretError, match="api.admin_token"):
        make_app(settings, pool)


async def test_admin_replay_needs_the_bearer_token_and_writes_an_audit_row(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"admin_token": "env:CS_TEST_ADMIN_TOKEN"})
    await seeded(pool, blocks=10)
    body = {"chain": "anvil", "from_block": 3, "to_block": 9, "reason": "missed logs"}
    with structlog.testing.capture_logs() as logs:
        async with client_for(settings, pool) as client:
            missing = await client.post("/v1/admin/replay", json=body)
            assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
            wrong = await client.post("/v1/admin/replay", json=body, headers={"Authorization": "Bearer " + TOKEN[:-1]})
            assert wrong.status == 401 and (await wrong.json())["field"] == "Authorization"
            basic = await client.post("/v1/admin/replay", json=body, headers={"Authorization": "Basic " + TOKEN})
            assert basic.status == 401
            assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0

            auth = {"Authorization": f"Bearer {TOKEN}"}
            ok = await client.post("/v1/admin/replay", json=body, headers=auth)
            assert ok.status == 202, await ok.text()
            answer = (await ok.json())["replay"]
            assert (answer["chain"], answer["from_block"], answer["to_block"], answer["blocks"]) == ("anvil", 3, 9, 7)
            assert answer["state"] == "pending" and ok.headers["Location"] == f"/v1/admin/replay/{answer['id']}"
            row = await pool.fetchrow("SELECT actor, action, subject, details FROM audit_log WHERE id = $1",
                                      answer["audit_id"])
            assert (row["action"], row["subject"]) == ("replay.requested", "chain:anvil")
            assert row["details"]["from_block"] == 3 and row["details"]["reason"] == "missed logs"
            assert row["details"]["replay_id"] == answer["id"]
            assert row["actor"].startswith("api:") and TOKEN not in row["actor"]

            bad = {
                "not json": "body",
                '["a list"]': "body",
                '{"chain": "anvil", "from_block": 1}': "to_block",
                '{"chain": "anvil", "from_block": "1", "to_block": 2}': "from_block",
                '{"chain": "anvil", "from_block": 1, "to_block": 2, "extra": 1}': "extra",
                '{"chain": "nope", "from_block": 1, "to_block": 2}': "chain",
                '{"chain": "anvil", "from_block": 5, "to_block": 2}': "to_block",
                '{"chain": "anvil", "from_block": 5, "to_block": 11}': "to_block",
                '{"chain": "anvil", "from_block": 1, "to_block": 2, "reason": "a\\u0000b"}': "reason",
            }
            for raw, field in bad.items():
                resp = await client.post("/v1/admin/replay", data=raw, headers=auth)
                assert resp.status == 400, (raw, await resp.text())
                assert (await resp.json())["field"] == field, raw
            spec = await (await client.get("/openapi.json")).json()
            assert "/v1/admin/replay" in spec["paths"]
            assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1
            assert await pool.fetchval("SELECT count(*) FROM replay_requests") == 1
    assert TOKEN not in repr(logs)
    assert any(e["event"] == "api.admin_auth_failed" for e in logs)


# -- SSE ------------------------------------------------------------------------------


async def test_stream_delivers_new_events_and_resumes_from_last_event_id(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"sse_poll_interval": 0.05})
    store = await register_chain(pool, "anvil")
    await commit_blocks(store, 0, 2, [event_row("anvil", 1, 0, addr=address(1))])  # history, not streamed
    async with client_for(settings, pool) as client:
        resp = await client.get("/v1/stream")
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        await commit_blocks(store, 2, 4, [event_row("anvil", b, i, addr=address(5)) for b in (3, 4) for i in range(2)])
        got = await read_sse(resp, 4)
        assert [m["event"] for m in got] == ["chain_event"] * 4
        assert [(m["data"]["block_number"], m["data"]["log_index"]) for m in got] == [(3, 0), (3, 1), (4, 0), (4, 1)]
        resp.close()

        # Disconnected: these three are missed live and must come on resume.
        await commit_blocks(store, 4, 6, [event_row("anvil", b, 0, addr=address(5)) for b in (5, 6)])
        await commit_blocks(store, 6, 7, [event_row("anvil", 7, 0, addr=address(5))])
        resumed = await client.get("/v1/stream", headers={"Last-Event-ID": got[-1]["id"]})
        more = await read_sse(resumed, 3)
        assert [m["data"]["block_number"] for m in more] == [5, 6, 7]
        await commit_blocks(store, 7, 8, [event_row("anvil", 8, 0, addr=address(5))])
        live = await read_sse(resumed, 1)
        assert live[0]["data"]["block_number"] == 8
        ids = [m["data"]["id"] for m in got + more + live]
        assert len(set(ids)) == len(ids)

        filtered = await client.get("/v1/stream?chain=other", headers={"Last-Event-ID": got[0]["id"]})
        assert filtered.status == 200
        bad = await client.get("/v1/stream", headers={"Last-Event-ID": "yesterday"})
        assert bad.status == 400 and (await bad.json())["field"] == "Last-Event-ID"
        resumed.close()
        filtered.close()


async def test_stream_follows_commit_order_not_id_order(tmp_path, pool, db_url):
    """Ids come from per-connection sequence caches, so a later commit can carry a lower id.

    Two writers on two connections: A takes ids from one cache block, B from
    the next. After B's row (high id) is streamed, A commits a row with a
    low id; a feed that resumed "after the highest id" would never send it.
    """
    settings = api_settings(tmp_path, [chain_cfg("alpha"), chain_cfg("beta")], api={"sse_poll_interval": 0.05})
    pool_a = await create_pool(db_url, min_size=1, max_size=1)
    pool_b = await create_pool(db_url, min_size=1, max_size=1)
    try:
        alpha = await register_chain(pool_a, "alpha")
        beta = await register_chain(pool_b, "beta")
        async with client_for(settings, pool) as client:
            resp = await client.get("/v1/stream")
            await commit_blocks(alpha, 0, 1, [event_row("alpha", 1, 0, addr=address(1))])
            await commit_blocks(beta, 0, 1, [event_row("beta", 1, 0, addr=address(1))])
            first = await read_sse(resp, 2)
            await commit_blocks(alpha, 1, 2, [event_row("alpha", 2, 0, addr=address(1))])
            late = await read_sse(resp, 1)
            ids = [m["data"]["id"] for m in first + late]
            assert ids[2] < ids[1], "the test needs a later commit with a lower id"
            assert [m["data"]["chain"] for m in first + late] == ["alpha", "beta", "alpha"]
            resp.close()

            # And resuming after beta's (high-id) event still yields alpha's later, lower-id one.
            again = await client.get("/v1/stream", headers={"Last-Event-ID": first[1]["id"]})
            replayed = await read_sse(again, 1)
            assert replayed[0]["data"]["id"] == ids[2]
            again.close()
    finally:
        await pool_a.close()
        await pool_b.close()


async def test_shutdown_ends_open_streams(tmp_path, pool):
    """Open streams end on shutdown instead of holding it for the whole grace period."""
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    server = TestServer(make_app(settings, pool))
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        resp = await session.get(server.make_url("/v1/stream"))
        assert resp.status == 200
        closing = asyncio.create_task(server.close())
        rest = await asyncio.wait_for(resp.content.read(), 10)
        await asyncio.wait_for(closing, 10)
    assert rest.startswith(b"retry:")


# -- metrics, OpenAPI, page ----------------------------------------------------------------


async def test_metrics_openapi_and_status_page(tmp_path, pool):
    settings = api_settings(tmp_path, [chain_cfg("anvil")])
    async with client_for(settings, pool) as client:
        assert (await client.get("/v1/status")).status == 200
        metrics = await client.get("/metrics")
        assert metrics.status == 200 and metrics.content_type == "text/plain"
        text = await metrics.text()
        assert 'chainsettle_api_requests_total{method="GET",route="/v1/status",status="200"}' in text

        spec = await (await client.get("/openapi.json")).json()
        registered = {r.resource.canonical for r in client.app.router.routes() if r.method != "HEAD"}
        assert set(spec["paths"]) == registered

        page = await client.get("/")
        assert page.status == 200 and page.content_type == "text/html"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert 'src="/static/app.js"' in await page.text()
        js = await client.get("/static/app.js")
        assert js.status == 200 and "EventSource" in await js.text()
