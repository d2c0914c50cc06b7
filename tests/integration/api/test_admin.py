"""Admin routes (payout requests, approvals, kill switches, pause resolution, replays),
the replay worker against anvil, and the payout/batch/reconciliation messages of /v1/stream.

Real Postgres and the real settlement functions behind every route; the
payout worker is not run, so nothing is signed or sent.
"""

from __future__ import annotations

import asyncio
import os

import pytest
import structlog

from api.admin_routes import admin_actor
from api.feed import EVENT, Feed, format_position, parse_position
from config import Secret
from daemon.followers import make_follower
from daemon.replay import replay_once, run_replay_worker
from settlement.ledger.books import Posting, post_transaction
from settlement.ledger.pauses import pause_asset
from settlement.payouts import requests as preq
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.api_data import (
    address,
    api_settings,
    chain_cfg,
    client_for,
    commit_blocks,
    event_row,
    read_sse,
    register_chain,
    seeded,
)
from tests.support.config import evm_chain
from tests.support.evm import batch_transfer, deploy_token

TOKEN = "admin-token-under-test-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BATCHER = "0x" + "5a" * 20
USER = "0x" + "b1" * 20
OTHER = "0x" + "c2" * 20
BATCH = "0x" + "ab" * 32


def admin_settings(tmp_path, monkeypatch, *, chains=None, payouts: bool = True, **api):
    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("CS_TEST_SIGNER_KEY", DEV_ACCOUNTS[1][1])
    monkeypatch.setenv("CS_TEST_SENDER_KEY", DEV_ACCOUNTS[2][1])
    chains = chains or [chain_cfg("anvil", contracts=[
        {"name": "batcher", "address": BATCHER, "abi": "payout_batcher", "start_block": 0}],
        wallets=[{"name": "batcher", "address": BATCHER, "assets": ["native"]}])]
    extra = {}
    if payouts:
        extra["payouts"] = {"chains": [{
            "chain": "anvil", "batcher": BATCHER, "signer": {"key": "env:CS_TEST_SIGNER_KEY"},
            "sender": {"key": "env:CS_TEST_SENDER_KEY"}, "max_fee_per_gas": 10**11,
            "assets": [{"name": "native", "max_batch_total": 10**6}],
        }]}
    return api_settings(tmp_path, chains, api={"admin_token": "env:CS_TEST_ADMIN_TOKEN", "sse_poll_interval": 0.05,
                                               **api}, **extra)


async def credit(pool, user: str, amount: int, chain: str = "anvil") -> None:
    """What the final ledger owes `user`, booked at the chain's final height."""
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO assets (id, chain, name, kind, symbol, decimals) "
                           "VALUES ('anvil:native', 'anvil', 'native', 'native', 'ETH', 18) ON CONFLICT DO NOTHING")
        final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = $1", chain)
        await post_transaction(conn, key=f"seed:{os.urandom(6).hex()}", cause_kind="manual", cause={"why": "test"},
                               chain=chain, block_number=final, author="test", reason="seed",
                               postings=[Posting(preq.user_account(chain, user), "anvil:native", -amount),
                                         Posting(f"adjustment:{chain}:seed", "anvil:native", amount)])


async def insert_batch(pool, batch_id: str = BATCH, state: str = "awaiting_approval") -> None:
    await pool.execute(
        "INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total,"
        " gas_limit, expiry, state) VALUES ($1, 'anvil', 'native', $2, 0, $2, $3, 1, 500, 90000, 2000000000, $4)",
        batch_id, "0x" + "00" * 20, BATCHER, state)


async def audit_rows(pool, action: str) -> list:
    return await pool.fetch("SELECT actor, subject, details FROM audit_log WHERE action = $1 ORDER BY id", action)


ADMIN_CALLS = [
    ("POST", "/v1/admin/payouts", {"chain": "anvil", "asset": "native", "to": USER, "amount": "5", "key": "k"}),
    ("POST", f"/v1/admin/batches/{BATCH}/approve", None),
    ("POST", "/v1/admin/payouts/pause", {}),
    ("POST", "/v1/admin/payouts/resume", {}),
    ("POST", "/v1/admin/assets/anvil:native/resolve", {"reason": "checked"}),
    ("POST", "/v1/admin/replay", {"chain": "anvil", "from_block": 1, "to_block": 2}),
    ("GET", "/v1/admin/replay/1", None),
]


# -- authentication ---------------------------------------------------------------------


async def test_every_admin_route_needs_the_token_and_is_absent_without_one(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    await seeded(pool)
    # Same length, one byte off; shorter; longer; non-ASCII; empty; another scheme.
    wrong = [TOKEN[:-1] + "x", TOKEN[:5], TOKEN + "0", TOKEN[:-1] + "é", "", TOKEN]
    with structlog.testing.capture_logs() as logs:
        async with client_for(settings, pool) as client:
            for method, path, body in ADMIN_CALLS:
                for i, given in enumerate(wrong):
                    scheme = "Basic" if i == len(wrong) - 1 else "Bearer"
                    resp = await client.request(method, path, json=body,
                                                headers={"Authorization": f"{scheme} {given}".encode().decode("latin-1")})
                    assert resp.status == 401, (path, given)
                    answer = await resp.json()
                    assert answer["field"] == "Authorization" and TOKEN not in await resp.text()
                resp = await client.request(method, path, json=body)
                assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0
    assert await pool.fetchval("SELECT count(*) FROM payout_requests") == 0
    assert await pool.fetchval("SELECT count(*) FROM payout_controls") == 0
    assert TOKEN not in repr(logs)

    (tmp_path / "plain").mkdir()
    without = api_settings(tmp_path / "plain", [chain_cfg("anvil")])
    async with client_for(without, pool) as client:
        spec = await (await client.get("/openapi.json")).json()
        for method, path, body in ADMIN_CALLS:
            resp = await client.request(method, path, json=body, headers=AUTH)
            assert resp.status == 404, path
        assert not [p for p in spec["paths"] if p.startswith("/v1/admin/")]


def test_actor_label_is_stable_and_reveals_nothing():
    label = admin_actor(Secret(TOKEN, "env:T"))
    assert label == admin_actor(Secret(TOKEN, "env:T")) and label.startswith("api:") and len(label) == 12
    assert label != admin_actor(Secret(TOKEN + "x", "env:T"))
    assert TOKEN[:8] not in label


# -- payouts ------------------------------------------------------------------------------


async def test_payout_requests_are_idempotent_validated_and_audited(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    await seeded(pool)
    await credit(pool, USER, 1000)
    actor = admin_actor(Secret(TOKEN, "env:T"))
    body = {"chain": "anvil", "asset": "native", "to": USER.upper().replace("0X", "0x"), "amount": "400",
            "key": "withdrawal-17"}
    async with client_for(settings, pool) as client:
        first = await client.post("/v1/admin/payouts", json=body, headers=AUTH)
        assert first.status == 201, await first.text()
        created = await first.json()
        payout = created["payout"]
        assert created["created"] is True
        assert (payout["recipient"], payout["amount"], payout["state"], payout["requested_by"]) == \
            (USER, "400", "pending", actor)

        again = await client.post("/v1/admin/payouts", json={**body, "amount": 400}, headers=AUTH)
        assert again.status == 200
        assert (await again.json()) == {**created, "created": False}

        conflict = await client.post("/v1/admin/payouts", json={**body, "amount": "401"}, headers=AUTH)
        assert conflict.status == 409
        assert (await conflict.json())["field"] == "key"

        stored = await (await client.get("/v1/payouts/withdrawal-17", headers=AUTH)).json()
        assert stored["payout"]["id"] == payout["id"]

        bad = [
            ({k: v for k, v in body.items() if k != "key"}, "key"),
            ({**body, "key": "has space"}, "key"),
            ({**body, "amount": "12abc"}, "amount"),
            ({**body, "amount": 0}, "amount"),
            ({**body, "amount": "0"}, "amount"),
            ({**body, "amount": 1.5}, "amount"),
            ({**body, "amount": str(2**256)}, "amount"),
            ({**body, "key": "k2", "amount": "601"}, "amount"),  # 1000 owed, 400 already requested
            ({**body, "key": "k3", "amount": "2000000"}, "amount"),  # above max_batch_total
            ({**body, "to": "0x1234"}, "to"),
            ({**body, "to": "0x" + "00" * 20, "key": "k4"}, "to"),
            ({**body, "chain": "bsc"}, "chain"),
            ({**body, "asset": "USDC"}, "asset"),
            ({**body, "surprise": 1}, "surprise"),
            ({**body, "key": "k5", "destination_tag": 7}, "destination_tag"),  # EVM has no tags
            ({**body, "destination_tag": -1}, "destination_tag"),
        ]
        for payload, field in bad:
            resp = await client.post("/v1/admin/payouts", json=payload, headers=AUTH)
            assert resp.status == 400, (payload, await resp.text())
            assert (await resp.json())["field"] == field, payload
        not_json = await client.post("/v1/admin/payouts", data=b"{", headers=AUTH)
        assert not_json.status == 400 and (await not_json.json())["field"] == "body"

    assert await pool.fetchval("SELECT count(*) FROM payout_requests") == 1
    rows = await audit_rows(pool, "payout.requested")
    assert [(r["actor"], r["subject"]) for r in rows] == [(actor, f"payout:{payout['id']}")]


async def test_batch_approval(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    await seeded(pool)
    await insert_batch(pool)
    actor = admin_actor(Secret(TOKEN, "env:T"))
    async with client_for(settings, pool) as client:
        ok = await client.post(f"/v1/admin/batches/{BATCH.upper().replace('0X', '0x')}/approve", headers=AUTH)
        assert ok.status == 200, await ok.text()
        assert (await ok.json())["batch"] == {"batch_id": BATCH, "state": "ready", "approved_by": actor}
        row = await pool.fetchrow("SELECT state, approved_by FROM payout_batches WHERE batch_id = $1", BATCH)
        assert tuple(row) == ("ready", actor)

        twice = await client.post(f"/v1/admin/batches/{BATCH}/approve", headers=AUTH)
        assert twice.status == 409 and "ready" in (await twice.json())["message"]
        missing = await client.post(f"/v1/admin/batches/0x{'01' * 32}/approve", headers=AUTH)
        assert missing.status == 404 and (await missing.json())["field"] == "id"
        malformed = await client.post("/v1/admin/batches/batch-1/approve", headers=AUTH)
        assert malformed.status == 400 and (await malformed.json())["field"] == "id"
        with_body = await client.post(f"/v1/admin/batches/{BATCH}/approve", json={"x": 1}, headers=AUTH)
        assert with_body.status == 400 and (await with_body.json())["field"] == "body"
    rows = await audit_rows(pool, "payout.batch_approved")
    assert [(r["actor"], r["subject"]) for r in rows] == [(actor, f"batch:{BATCH}")]


async def test_pause_and_resume_payouts(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    actor = admin_actor(Secret(TOKEN, "env:T"))
    async with client_for(settings, pool) as client:
        everything = await client.post("/v1/admin/payouts/pause", headers=AUTH)  # no body: every chain
        assert everything.status == 200, await everything.text()
        answer = await everything.json()
        assert (answer["scope"], answer["killed"], answer["changed_by"]) == ("*", True, actor)
        one = await client.post("/v1/admin/payouts/pause", json={"chain": "anvil", "reason": "incident 7"},
                                headers=AUTH)
        assert [k["scope"] for k in (await one.json())["kill_switches"]] == ["*", "anvil"]
        resumed = await client.post("/v1/admin/payouts/resume", json={"reason": "all clear"}, headers=AUTH)
        answer = await resumed.json()
        assert (answer["scope"], answer["killed"]) == ("*", False)
        # Lifting the global switch leaves the chain's own in place.
        assert [(k["scope"], k["reason"]) for k in answer["kill_switches"]] == [("anvil", "incident 7")]
        async with pool.acquire() as conn:
            assert await conn.fetchval(preq.Q.killed, "anvil") is True
            assert await conn.fetchval(preq.Q.killed, "other") is False

        for payload, field in (({"chain": "bsc"}, "chain"), ({"reason": "a\u0000b"}, "reason"),
                               ({"reason": 5}, "reason"), ({"scope": "*"}, "scope")):
            resp = await client.post("/v1/admin/payouts/pause", json=payload, headers=AUTH)
            assert resp.status == 400 and (await resp.json())["field"] == field, payload
        resp = await client.post("/v1/admin/payouts/resume", data=b"[1]", headers=AUTH)
        assert resp.status == 400 and (await resp.json())["field"] == "body"
    kills = await audit_rows(pool, "payout.kill_switch")
    assert [(r["actor"], r["subject"]) for r in kills] == [(actor, "payouts:*"), (actor, "payouts:anvil")]
    resumes = await audit_rows(pool, "payout.resumed")
    assert [(r["subject"], r["details"]["reason"]) for r in resumes] == [("payouts:*", "all clear")]


async def test_resolve_a_reconciliation_pause(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    await seeded(pool)
    await credit(pool, USER, 1)  # creates the asset
    actor = admin_actor(Secret(TOKEN, "env:T"))
    async with client_for(settings, pool) as client:
        url = "/v1/admin/assets/anvil:native/resolve"
        nothing = await client.post(url, json={"reason": "checked"}, headers=AUTH)
        assert nothing.status == 409 and (await nothing.json())["field"] == "asset_id"
        unknown = await client.post("/v1/admin/assets/anvil:USDC/resolve", json={"reason": "x"}, headers=AUTH)
        assert unknown.status == 404

        async with pool.acquire() as conn:
            assert await pause_asset(conn, "anvil:native", "balance differs by 5", "reconciler")
        for payload in ({}, {"reason": ""}, {"reason": "   "}, {"reason": "x\u0007"}):
            resp = await client.post(url, json=payload, headers=AUTH)
            assert resp.status == 400 and (await resp.json())["field"] == "reason", payload
        ok = await client.post(url, json={"reason": "fee wallet topped up"}, headers=AUTH)
        assert ok.status == 200, await ok.text()
        resolved = (await ok.json())["resolved"]
        assert (resolved["asset"], resolved["paused_because"], resolved["resolution"]) == \
            ("anvil:native", "balance differs by 5", "fee wallet topped up")
        assert (await client.post(url, json={"reason": "again"}, headers=AUTH)).status == 409
    row = await pool.fetchrow("SELECT resolved_by, resolution FROM asset_pauses WHERE asset_id = 'anvil:native'")
    assert tuple(row) == (actor, "fee wallet topped up")
    assert [r["actor"] for r in await audit_rows(pool, "asset.resumed")] == [actor]


# -- replays --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_chain(anvil):
    """An ERC-20 with 30 transfers in each of 12 blocks, all final at depth 2."""
    token = deploy_token(anvil.url)
    for i in range(12):
        batch_transfer(anvil.url, token, [address(1000 + i * 30 + j) for j in range(30)], list(range(1, 31)))
    anvil.rpc("anvil_mine", ["0x3"])
    return token


async def stored(pool, chain: str) -> list[tuple]:
    rows = await pool.fetch("SELECT block_number, block_hash, tx_hash, tx_index, log_index, address, event, args "
                            "FROM events WHERE chain = $1", chain)
    return sorted(tuple(r) for r in rows)


async def test_replay_request_is_run_by_the_worker_and_restores_exactly_what_was_deleted(
        tmp_path, pool, monkeypatch, anvil, token_chain):
    settings = admin_settings(tmp_path, monkeypatch, payouts=False, chains=[
        evm_chain("local", anvil.url, token_chain, finality_depth=2, poll_interval=0.1)])
    follower = make_follower(settings.chains[0], pool, settings)
    try:
        await follower.backfill()
    finally:
        await follower.close()
    before = await stored(pool, "local")
    blocks = sorted({r[0] for r in before})
    lo, hi = blocks[3], blocks[6]
    deleted = await pool.fetchval(
        "WITH d AS (DELETE FROM events WHERE chain = 'local' AND block_number BETWEEN $1 AND $2 RETURNING 1) "
        "SELECT count(*) FROM d", lo, hi)
    assert deleted == 4 * 30

    stop = asyncio.Event()
    worker = asyncio.create_task(run_replay_worker(settings, pool, stop, poll_interval=0.05))
    try:
        async with client_for(settings, pool) as client:
            resp = await client.post("/v1/admin/replay", headers=AUTH, json={
                "chain": "local", "from_block": lo - 1, "to_block": hi + 1, "reason": "rows lost"})
            assert resp.status == 202, await resp.text()
            replay = (await resp.json())["replay"]

            async def finished() -> dict:
                while True:
                    got = (await (await client.get(resp.headers["Location"], headers=AUTH)).json())["replay"]
                    if got["state"] in ("done", "failed"):
                        return got
                    await asyncio.sleep(0.05)

            outcome = await asyncio.wait_for(finished(), 60)
            assert (outcome["id"], outcome["state"], outcome["inserted"], outcome["error"]) == \
                (replay["id"], "done", deleted, None)
            missing = await client.get("/v1/admin/replay/999999", headers=AUTH)
            assert missing.status == 404
            assert (await client.get("/v1/admin/replay/abc", headers=AUTH)).status == 400
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
    assert await stored(pool, "local") == before
    done = await audit_rows(pool, "replay.done")
    assert [(r["actor"], r["details"]["replay_id"], r["details"]["inserted"]) for r in done] == \
        [("daemon:replay", replay["id"], deleted)]


async def test_replay_failures_and_expired_leases(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch, payouts=False)
    await seeded(pool, "anvil", blocks=10)
    await seeded(pool, "gone", blocks=10)
    async with pool.acquire() as conn:
        # A worker that died mid-replay: its lease ran out, so another takes the request over.
        dead = await conn.fetchval(
            "INSERT INTO replay_requests (chain, from_block, to_block, requested_by, state, attempts, claimed_by,"
            " lease_until) VALUES ('gone', 1, 2, 'test', 'running', 1, 'dead-host:1', now() - interval '1 second')"
            " RETURNING id")
        live = await conn.fetchval(
            "INSERT INTO replay_requests (chain, from_block, to_block, requested_by, state, attempts, claimed_by,"
            " lease_until) VALUES ('gone', 1, 2, 'test', 'running', 1, 'busy-host:1', now() + interval '1 hour')"
            " RETURNING id")
        above = await conn.fetchval(
            "INSERT INTO replay_requests (chain, from_block, to_block, requested_by) VALUES ('anvil', 20, 30, 'test')"
            " RETURNING id")
    assert await replay_once(settings, pool, worker="w") == dead
    assert await replay_once(settings, pool, worker="w") == above
    assert await replay_once(settings, pool, worker="w") is None  # the live lease is left alone
    rows = {r["id"]: r for r in await pool.fetch("SELECT * FROM replay_requests")}
    assert (rows[dead]["state"], rows[dead]["attempts"]) == ("failed", 2)
    assert "not configured" in rows[dead]["error"]
    assert rows[above]["state"] == "failed" and "above the indexed block (10)" in rows[above]["error"]
    assert (rows[live]["state"], rows[live]["claimed_by"]) == ("running", "busy-host:1")
    failed = await audit_rows(pool, "replay.failed")
    assert sorted(r["details"]["replay_id"] for r in failed) == sorted([dead, above])


# -- the stream -----------------------------------------------------------------------------


async def recon_run(pool, status: str, difference: int) -> int:
    """A run and its result in one transaction, as settlement.reconcile.runs stores them."""
    async with pool.acquire() as conn, conn.transaction():
        account = await conn.fetchval(
            "INSERT INTO ledger_accounts (code, kind) VALUES ($1, 'wallet') ON CONFLICT (code) DO UPDATE "
            "SET code = EXCLUDED.code RETURNING id", f"wallet:anvil:{BATCHER}")
        run = await conn.fetchval("INSERT INTO reconciliation_runs (chain, height, status, checked, mismatches)"
                                  " VALUES ('anvil', 5, $1, 1, $2) RETURNING id", status, int(difference != 0))
        await conn.execute(
            "INSERT INTO reconciliation_results (run_id, account_id, asset_id, expected, actual, difference,"
            " tolerance, status) VALUES ($1, $2, 'anvil:native', 100, $3::numeric, $3::numeric - 100, 0, $4)",
            run, account, 100 + difference, status)
    return run


async def test_stream_sends_payout_batch_and_reconciliation_changes_and_resumes_across_kinds(
        tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    store, _ = await seeded(pool, "anvil", blocks=10)
    await credit(pool, USER, 10_000)
    body = {"chain": "anvil", "asset": "native", "to": USER, "amount": "5"}
    # The admin token reads every kind (read scopes, issue 26: anonymous streams get chain data only).
    async with client_for(settings, pool, headers=AUTH) as client:
        live = await client.get("/v1/stream")
        assert live.status == 200
        await client.post("/v1/admin/payouts", json={**body, "key": "p1"}, headers=AUTH)
        await commit_blocks(store, 10, 11, [event_row("anvil", 11, 0, addr=address(7))])
        await insert_batch(pool)
        await client.post(f"/v1/admin/batches/{BATCH}/approve", headers=AUTH)
        run = await recon_run(pool, "mismatch", 3)
        first = await read_sse(live, 5)
        assert [m["event"] for m in first] == ["payout", "chain_event", "batch", "batch", "reconciliation"]
        assert (first[0]["data"]["idempotency_key"], first[0]["data"]["state"]) == ("p1", "pending")
        assert [(m["data"]["state"], m["data"]["previous_state"]) for m in first[2:4]] == \
            [("awaiting_approval", None), ("ready", "awaiting_approval")]
        assert "signature" not in first[3]["data"]
        rec = first[4]["data"]
        assert (rec["id"], rec["status"], rec["mismatches"]) == (run, "mismatch", 1)
        # Deferred to commit: the results inserted after the run row are in the message.
        assert [(r["difference"], r["status"]) for r in rec["results"]] == [("3", "mismatch")]
        live.close()

        # Disconnected: every kind changes, one transaction carries an event and a payout change.
        await client.post("/v1/admin/payouts", json={**body, "key": "p2"}, headers=AUTH)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE payout_requests SET state = 'batched', batch_id = $1 WHERE idempotency_key = "
                               "'p1'", BATCH)
            await conn.execute(
                "INSERT INTO events (chain, block_number, block_hash, tx_hash, tx_index, log_index, address, event,"
                " args) VALUES ('anvil', 11, $1, $2, 0, 1, $3, 'Transfer', '{}'::jsonb)",
                "0x" + "11" * 32, "0x" + "22" * 32, address(7))
        await client.post("/v1/admin/payouts/pause", json={"chain": "anvil", "reason": "drill"}, headers=AUTH)
        async with pool.acquire() as conn:
            await pause_asset(conn, "anvil:native", "reconciliation mismatch", "reconciler", run)
        await client.post("/v1/admin/assets/anvil:native/resolve", json={"reason": "explained"}, headers=AUTH)
        await recon_run(pool, "ok", 0)
        expected = ["payout", "chain_event", "payout", "payout_control", "asset_pause", "asset_pause",
                    "reconciliation"]

        # Resume after an outbox message (the first batch change): everything after it, once.
        resumed = await client.get("/v1/stream", headers={"Last-Event-ID": first[2]["id"]})
        rest = await read_sse(resumed, 2 + len(expected))
        assert [m["event"] for m in rest] == ["batch", "reconciliation"] + expected
        assert [m["id"] for m in rest[:2]] == [m["id"] for m in first[3:]]
        tx_event, tx_payout = rest[3], rest[4]
        # Events first within one transaction, and one transaction id for both.
        assert tx_event["id"].split(".")[0] == tx_payout["id"].split(".")[0]
        assert (tx_payout["data"]["state"], tx_payout["data"]["previous_state"]) == ("batched", "pending")
        assert [m["data"]["paused"] for m in rest[6:8]] == [True, False]
        ids = [m["id"] for m in first + rest[2:]]
        assert len(set(ids)) == len(ids)
        assert [parse_position("id", i) for i in ids] == sorted(parse_position("id", i) for i in ids)
        resumed.close()

        # Resume after the event of the mixed transaction: its payout change comes next.
        after_event = await client.get("/v1/stream", headers={"Last-Event-ID": tx_event["id"]})
        assert [m["id"] for m in await read_sse(after_event, 4)] == [m["id"] for m in rest[4:8]]
        after_event.close()
        # And after that payout change, the transaction's event is not sent again.
        after_payout = await client.get("/v1/stream", headers={"Last-Event-ID": tx_payout["id"]})
        assert [m["id"] for m in await read_sse(after_payout, 2)] == [m["id"] for m in rest[5:7]]
        after_payout.close()

        # The chain filter keeps messages of that chain and the global ones.
        other = await client.get("/v1/stream?chain=other", headers={"Last-Event-ID": first[0]["id"]})
        await client.post("/v1/admin/payouts/resume", headers=AUTH)  # scope '*': for every chain
        got = await read_sse(other, 1)
        assert got[0]["event"] == "payout_control" and got[0]["data"]["scope"] == "*"
        other.close()

        bad = await client.get("/v1/stream", headers={"Last-Event-ID": "12.x3"})
        assert bad.status == 400 and (await bad.json())["field"] == "Last-Event-ID"


async def test_feed_pages_merge_both_sources_without_loss(tmp_path, pool, monkeypatch):
    """Small pages must walk the merged order exactly as one big page does."""
    store = await register_chain(pool, "anvil")
    start = await pool.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
    for b in range(1, 8):
        await commit_blocks(store, b - 1, b, [event_row("anvil", b, i, addr=address(3)) for i in range(b % 3)])
        async with pool.acquire() as conn, conn.transaction():
            for k in range((b * 5) % 4):
                await conn.execute("INSERT INTO payout_controls (scope, killed, reason, changed_by) VALUES "
                                   "($1, true, 'r', 't') ON CONFLICT (scope) DO UPDATE SET reason = EXCLUDED.reason "
                                   "|| 'x'", f"c{k}")
    feed = Feed(pool, 1.0)
    origin = (int(start), EVENT, 0)
    whole = [i.position for i in await feed.fetch_after(origin, 1000)]
    assert len(whole) == sum(b % 3 + (b * 5) % 4 for b in range(1, 8))
    for limit in (1, 2, 3, 5):
        walked, pos = [], origin
        while True:
            page = await feed.fetch_after(pos, limit)
            walked += [i.position for i in page]
            if len(page) < limit:
                break
            pos = page[-1].position
        assert walked == whole, limit
    assert [parse_position("id", format_position(p)) for p in whole] == whole


async def test_a_stopped_replay_goes_back_to_the_queue(tmp_path, pool, monkeypatch):
    # The configured RPC endpoint does not answer, so the replay is still running when stopped.
    settings = admin_settings(tmp_path, monkeypatch, payouts=False)
    await seeded(pool, "anvil", blocks=10)
    req = await pool.fetchval("INSERT INTO replay_requests (chain, from_block, to_block, requested_by)"
                              " VALUES ('anvil', 2, 4, 'test') RETURNING id")
    task = asyncio.create_task(replay_once(settings, pool, worker="stopping"))

    async def running() -> None:
        while await pool.fetchval("SELECT state FROM replay_requests WHERE id = $1", req) != "running":
            await asyncio.sleep(0.02)

    await asyncio.wait_for(running(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await pool.fetchrow("SELECT state, claimed_by, attempts FROM replay_requests WHERE id = $1", req)
    assert tuple(row) == ("pending", None, 1)
    assert await audit_rows(pool, "replay.failed") == [] and await audit_rows(pool, "replay.done") == []


async def test_a_replay_stopped_before_its_backfill_goes_back_to_the_queue(tmp_path, pool, monkeypatch):
    # Stopped between the claim and the backfill (reading the chain's heights).
    import daemon.replay as replay

    settings = admin_settings(tmp_path, monkeypatch, payouts=False)
    await seeded(pool, "anvil", blocks=10)
    req = await pool.fetchval("INSERT INTO replay_requests (chain, from_block, to_block, requested_by)"
                              " VALUES ('anvil', 2, 4, 'test') RETURNING id")
    reading = asyncio.Event()

    async def slow_heights(conn, chain):
        reading.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(replay, "heights", slow_heights)
    task = asyncio.create_task(replay_once(settings, pool, worker="early"))
    await asyncio.wait_for(reading.wait(), 10)
    assert await pool.fetchval("SELECT state FROM replay_requests WHERE id = $1", req) == "running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await pool.fetchrow("SELECT state, claimed_by, attempts FROM replay_requests WHERE id = $1", req)
    assert tuple(row) == ("pending", None, 1)
