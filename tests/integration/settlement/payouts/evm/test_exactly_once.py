"""Exactly once under real conditions (issue 11), on anvil and real Postgres:
admission racing confirmation, refusals replayed per key, batches bound to
their own batcher when the configured one changes, failing closed in the
follower's transaction, pauses stopping signatures, dry runs that leak no
signature, and payout leadership across processes' lock connections."""

from __future__ import annotations

import asyncio
import os

import pytest
import structlog

from settlement.ledger.books import Posting, post_transaction
from settlement.ledger.pauses import pause_asset
from settlement.payouts import metrics as pm
from settlement.payouts import requests as preq
from settlement.payouts.evm.eip712 import Batch, execute_batch_calldata
from settlement.payouts.requests import PayoutError, request_payout
from tests.integration.settlement.payouts.evm.test_fees import manual_mining, mine  # noqa: F401  (fixture)
from tests.integration.settlement.payouts.evm.test_pipeline import (  # noqa: F401  (fixture)
    Env,
    credit_users,
    env,
)
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import balance, fresh_address, is_executed
from tests.support.evm import send

RELAYER = DEV_ACCOUNTS[3][0]
UNIT = 10**15


def fail_closed_count(kind: str) -> float:
    return pm.FAIL_CLOSED.labels("anvil", kind)._value.get()


async def test_first_refusal_of_a_key_is_replayed_even_after_the_balance_grows(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: UNIT})
    with pytest.raises(PayoutError, match="amount:") as first:
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=2 * UNIT, key="r1")
    assert first.value.field == "amount"
    await credit_users(env.pool, "anvil", {to: 5 * UNIT})  # now it would fit
    with pytest.raises(PayoutError, match="replayed") as again:
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=2 * UNIT, key="r1")
    assert again.value.field == "amount"
    with pytest.raises(preq.IdempotencyConflict):
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="r1")
    # A new key is decided afresh; concurrent requests with one key get one answer.
    outcomes = await asyncio.gather(*[
        request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=2 * UNIT, key="r2")
        for _ in range(8)], return_exceptions=True)
    assert all(not isinstance(o, Exception) for o in outcomes)
    assert sum(created for _, created in outcomes) == 1 and len({r["id"] for r, _ in outcomes}) == 1
    assert await env.val("SELECT count(*) FROM payout_refusals") == 1
    assert await env.val("SELECT count(*) FROM audit_log WHERE action = 'payout.refused'") == 1


async def test_admission_racing_confirmation_never_exceeds_what_is_owed(env):
    """Each round: a batch is confirmed (hook: paid + debit) while many requests
    for the same user race it; admitted total never passes what was owed."""
    users = [fresh_address().lower() for _ in range(3)]
    owed = 10 * UNIT
    await credit_users(env.pool, "anvil", {u: owed for u in users})
    for i, u in enumerate(users):
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=u, amount=6 * UNIT, key=f"f{i}")
    await env.worker.step()  # batch signed, sent, mined
    await env.worker.step()  # receipt
    races = [request_payout(env.pool, env.settings, chain="anvil", asset="native", to=u, amount=UNIT,
                            key=f"race-{u}-{j}") for u in users for j in range(8)]
    results = await asyncio.gather(env.index(), *races, return_exceptions=True)
    refused = [r for r in results[1:] if isinstance(r, PayoutError)]
    assert all(not isinstance(r, Exception) or isinstance(r, PayoutError) for r in results), results
    assert await env.val("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == 3
    for u in users:
        admitted = int(await env.val(
            "SELECT sum(amount) FROM payout_requests WHERE recipient = $1 AND state <> 'cancelled'", u))
        assert admitted <= owed, (u, admitted)
    assert len(refused) == 3 * 4  # 4 of each user's 8 fit (10 - 6); the rest refused whatever the interleaving
    for _ in range(3):
        await env.worker.step()
    await env.index()
    for u in users:
        assert balance(env.anvil, u) == owed  # 6 + 4 x 1, each once


def _calldata_of(batch_row, items) -> bytes:
    batch = Batch(batch_id=bytes.fromhex(batch_row["batch_id"][2:]), asset=batch_row["token"],
                  source=batch_row["source"], treasury=batch_row["treasury"],
                  recipients=tuple(i["recipient"] for i in items), amounts=tuple(int(i["amount"]) for i in items),
                  expiry=batch_row["expiry"])
    return execute_batch_calldata(batch, bytes.fromhex(batch_row["signature"][2:]))


async def test_batcher_changed_while_batches_open(anvil, pool, tmp_path):
    """A: a batch signed for the old batcher and executed there by anyone holding
    its signature; B: a batch not yet signed when the configuration changes;
    then the new batcher is configured and the old one is no longer indexed."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = Env(anvil, pool, tmp_path / "old", dry_run=True, batch_expiry_seconds=120)
    await old.start()
    a, b = fresh_address().lower(), fresh_address().lower()
    await credit_users(pool, "anvil", {a: UNIT, b: UNIT})
    await request_payout(pool, old.settings, chain="anvil", asset="native", to=a, amount=UNIT, key="a")
    await old.worker.step()
    row_a = (await old.fetch("SELECT * FROM payout_batches"))[0]
    assert row_a["state"] == "dry_run" and row_a["batcher"] == old.batcher
    items = await old.fetch("SELECT recipient, amount FROM payout_items WHERE batch_id = $1 ORDER BY idx",
                            row_a["batch_id"])
    send(anvil.url, RELAYER, old.batcher, "0x" + _calldata_of(row_a, items).hex(), gas=500_000)
    assert balance(anvil, a) == UNIT
    await preq.set_kill_switch(pool, "anvil", True, "switching batchers", "tester")
    await request_payout(pool, old.settings, chain="anvil", asset="native", to=b, amount=UNIT, key="b")
    await old.worker.step()
    assert await old.val("SELECT state FROM payout_batches WHERE batch_id <> $1", row_a["batch_id"]) == "ready"
    await old.close()

    new = Env(anvil, pool, tmp_path / "new", batch_expiry_seconds=120)  # a fresh batcher; only it is indexed
    await new.start()
    try:
        assert new.batcher != old.batcher
        await preq.set_kill_switch(pool, "anvil", False, "new batcher configured", "tester")
        for _ in range(2):
            await new.worker.step()
        await new.index()
        row_b = (await new.fetch("SELECT * FROM payout_batches WHERE batch_id <> $1", row_a["batch_id"]))[0]
        assert (row_b["state"], row_b["batcher"]) == ("confirmed", new.batcher)  # signed for, sent to, seen on B
        assert balance(anvil, b) == UNIT
        # A's expiry passes. Its own contract executed it: never requeued; not
        # indexed any more, so held for a human instead of waiting forever.
        anvil.rpc("evm_increaseTime", [600])
        send(anvil.url, DEV_ACCOUNTS[0][0], DEV_ACCOUNTS[0][0], value=1)
        await new.index()
        for _ in range(3):
            await new.worker.step()
            await new.index()
        req_a = (await new.fetch("SELECT state, reason FROM payout_requests WHERE idempotency_key = 'a'"))[0]
        assert req_a["state"] == "held" and old.batcher in req_a["reason"]
        assert await new.val("SELECT state FROM payout_batches WHERE batch_id = $1", row_a["batch_id"]) == "dry_run"
        assert is_executed(anvil, old.batcher, bytes.fromhex(row_a["batch_id"][2:]))
        assert not is_executed(anvil, new.batcher, bytes.fromhex(row_a["batch_id"][2:]))
        assert balance(anvil, a) == UNIT and balance(anvil, b) == UNIT  # nobody paid twice
        assert await new.val("SELECT count(*) FROM payout_batches") == 2  # nothing re-batched
        actions = {r["action"] for r in await new.fetch("SELECT action FROM audit_log")}
        assert {"payout.batch_rebound", "payout.batch_held"} <= actions
    finally:
        await new.close()


async def _same_transaction(e: Env, kind: str) -> None:
    """Kill switch, pause and audit rows written by one transaction (equal xmin) with the follower's cursor."""
    xids = await e.fetch(
        "SELECT 'control' AS what, xmin::text AS x FROM payout_controls WHERE scope = 'anvil' AND killed "
        "UNION ALL SELECT 'pause', xmin::text FROM asset_pauses WHERE asset_id = 'anvil:native' AND resolved_at IS NULL "
        "UNION ALL SELECT 'audit', xmin::text FROM audit_log WHERE action = 'payout.fail_closed' "
        "AND details ->> 'kind' = $1", kind)
    assert {r["what"] for r in xids} == {"control", "pause", "audit"}, xids
    assert len({r["x"] for r in xids}) == 1, xids


async def _keeps_indexing(e: Env) -> None:
    before = await e.val("SELECT cursor_number FROM chain_state WHERE chain = 'anvil'")
    send(e.anvil.url, DEV_ACCOUNTS[0][0], DEV_ACCOUNTS[0][0], value=1)
    send(e.anvil.url, DEV_ACCOUNTS[0][0], DEV_ACCOUNTS[0][0], value=1)
    await e.index()
    assert await e.val("SELECT cursor_number FROM chain_state WHERE chain = 'anvil'") > before


async def test_expired_batch_executed_fails_closed_and_indexing_goes_on(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: UNIT})
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="x")
    await env.worker.step()
    await env.worker.step()
    # Provoke the impossible: the batch was (wrongly) proven dead before its execution is final.
    async with env.pool.acquire() as conn:
        await conn.execute("UPDATE payout_batches SET state = 'expired', reason = 'test: wrong proof'")
    before = fail_closed_count("expired_batch_executed")
    await env.index()
    assert fail_closed_count("expired_batch_executed") == before + 1
    await _same_transaction(env, "expired_batch_executed")
    assert await env.val("SELECT state FROM payout_requests") == "paid"  # what the chain did is booked
    await _keeps_indexing(env)
    # Nothing more is signed on the chain while the switch is on.
    other = fresh_address().lower()
    await credit_users(env.pool, "anvil", {other: UNIT})
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=other, amount=UNIT, key="y")
    await env.worker.step()
    assert await env.val("SELECT count(*) FROM evm_txs") == 1


async def test_debit_leaving_a_user_negative_fails_closed(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: UNIT})
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="n")
    await env.worker.step()
    await env.worker.step()
    # Someone else's booking took the user's balance meanwhile (a manual correction).
    async with env.pool.acquire() as conn:
        final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = 'anvil'")
        await post_transaction(conn, key=f"fix:{os.urandom(4).hex()}", cause_kind="manual", cause={"why": "test"},
                               chain="anvil", block_number=final, author="test", reason="correction",
                               postings=[Posting(preq.user_account("anvil", to), "anvil:native", UNIT),
                                         Posting("adjustment:anvil:seed", "anvil:native", -UNIT)])
    await env.index()
    await _same_transaction(env, "negative_balance")
    await _keeps_indexing(env)


async def test_pause_stops_signing_of_ready_batches(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: UNIT})
    await preq.set_kill_switch(env.pool, "anvil", True, "hold on", "tester")
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="p")
    await env.worker.step()
    assert await env.val("SELECT state FROM payout_batches") == "ready"
    async with env.pool.acquire() as conn, conn.transaction():
        await pause_asset(conn, "anvil:native", "reconciliation mismatch (test)", "tester")
    await preq.set_kill_switch(env.pool, "anvil", False, "switch off, pause stays", "tester")
    for _ in range(2):
        await env.worker.step()
    assert await env.val("SELECT state FROM payout_batches") == "ready"
    assert await env.val("SELECT count(*) FROM evm_txs") == 0 and balance(env.anvil, to) == 0


async def test_dry_run_logs_and_api_carry_no_signature(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, dry_run=True)
    await e.start()
    try:
        to = fresh_address().lower()
        await credit_users(pool, "anvil", {to: UNIT})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="d")
        with structlog.testing.capture_logs() as logs:
            await e.worker.step()
        row = (await e.fetch("SELECT * FROM payout_batches"))[0]
        sig = row["signature"][2:]
        assert row["state"] == "dry_run" and len(sig) == 130
        text = repr(logs)
        assert "payout.dry_run" in text and sig not in text and sig[:40] not in text
        from daemon.cli_payouts import list_payouts

        listed = repr(await list_payouts(pool))
        audit = repr(await e.fetch("SELECT details FROM audit_log"))
        assert sig[:40] not in listed and sig[:40] not in audit
        from aiohttp.test_utils import TestClient, TestServer

        from api.app import make_app

        # Payout reads published by the operator (`api.public`), so no token is needed here.
        published = e.settings.model_copy(update={"api": e.settings.api.model_copy(update={"public": ["payouts"]})})
        client = TestClient(TestServer(make_app(published, pool)))
        await client.start_server()
        try:
            for path in (f"/v1/batches/{row['batch_id']}", "/v1/payouts/1"):
                resp = await client.get(path)
                body = await resp.text()
                assert resp.status == 200 and sig[:40] not in body, (path, body[:200])
        finally:
            await client.close()
    finally:
        await e.close()


async def test_payout_lock_lost_stops_the_worker_and_standby_takes_over(anvil, pool, db_url, tmp_path):
    from daemon.leader import payout_lock_key
    from daemon.payouts import run_payout_chain

    e = Env(anvil, pool, tmp_path, poll_interval=0.2)
    await e.start()
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(run_payout_chain(e.settings, pool, e.settings.payouts.chains[0], s, db_url))
             for s in stops]
    key = payout_lock_key("anvil")
    holder_sql = ("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                  "AND ((classid::bigint << 32) | objid::bigint) = $1")
    try:
        async def holders() -> list[int]:
            async with pool.acquire() as conn:
                return [r["pid"] for r in await conn.fetch(holder_sql, key)]

        for _ in range(100):
            if await holders():
                break
            await asyncio.sleep(0.1)
        first = await holders()
        assert len(first) == 1
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first[0])
        for _ in range(100):
            now = await holders()
            if now and now != first:
                break
            await asyncio.sleep(0.1)
        assert len(now) == 1 and now != first  # one leader again, on another connection
        to = fresh_address().lower()
        await credit_users(pool, "anvil", {to: UNIT})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="lead")
        for _ in range(100):
            if await e.val("SELECT count(*) FROM evm_txs WHERE state = 'mined'") == 1:
                break
            await asyncio.sleep(0.1)
        await e.index()
        assert await e.val("SELECT state FROM payout_requests") == "paid" and balance(anvil, to) == UNIT
        assert await e.val("SELECT count(*) FROM evm_txs") == 1
    finally:
        for s in stops:
            s.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await e.close()


async def test_two_of_our_batches_paying_one_request_fail_closed(env, manual_mining):  # noqa: F811
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: UNIT})
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="t")
    manual_mining()
    await env.worker.step()  # batch 1 signed and sent, not mined yet
    # Provoke the impossible: the request is (wrongly) given back to the queue while batch 1 can still execute.
    async with env.pool.acquire() as conn:
        await conn.execute("UPDATE payout_requests SET state = 'pending', batch_id = NULL")
    await env.worker.step()  # batch 2 with the same request, at the next nonce
    assert await env.val("SELECT count(*) FROM payout_batches WHERE state = 'signed'") == 2
    mine(env.anvil)
    await env.worker.step()
    mine(env.anvil)
    await env.index()
    assert balance(env.anvil, to) == 2 * UNIT  # the chain paid twice ...
    await _same_transaction(env, "paid_twice")  # ... and the second confirmation failed closed
    kinds = {r["k"] for r in await env.fetch(
        "SELECT details ->> 'kind' AS k FROM audit_log WHERE action = 'payout.fail_closed'")}
    assert kinds == {"paid_twice", "negative_balance"}
    env.anvil.rpc("evm_setAutomine", [True])
    await _keeps_indexing(env)
