"""An operator can always act on held payouts: `payouts held` with reasons,
release (requeue, optionally without a recipient) and cancel (frees the
reservation), through the CLI and the admin API, each audited; and a
batch that could still be paid by its signature is never requeued."""

from __future__ import annotations

import contextlib
import json

from aiohttp.test_utils import TestClient, TestServer

from api.app import make_app
from settlement.payouts import requests as preq
from settlement.payouts.evm.hook import FAILED_REASON
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_pipeline import Env, cli, credit_users
from tests.support.batcher import balance, fresh_address
from tests.support.evm import deploy

TOKEN = "operator-token-under-test-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UNIT = 10**15


@contextlib.asynccontextmanager
async def admin_client(e: Env):
    client = TestClient(TestServer(make_app(e.settings, e.pool)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def settle(e: Env, steps: int = 2) -> None:
    for _ in range(steps):
        await e.worker.step()
    await e.index()


async def test_held_release_and_cancel_through_cli_and_api(anvil, pool, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    e = Env(anvil, pool, tmp_path, api={"admin_token": "env:CS_TEST_ADMIN_TOKEN", "rate_limit_per_second": 1000.0,
                                        "rate_limit_burst": 1000},
            assets=[{"name": "native", "daily_cap": 100 * UNIT}])
    await e.start()
    try:
        refuser = deploy(anvil.url, "RevertingReceiver").lower()
        plain = fresh_address().lower()
        await credit_users(pool, "anvil", {refuser: UNIT, plain: UNIT})
        for key, to in (("r", refuser), ("p", plain)):
            await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=UNIT, key=key)
        await settle(e)
        first = await e.val("SELECT batch_id FROM payout_batches")
        assert await e.val("SELECT state FROM payout_batches") == "confirmed"
        assert balance(anvil, plain) == UNIT

        code, out, err = cli(tmp_path, db_url, "payouts", "held", "--json")
        assert code == 0, err
        held = json.loads(out)["held"]
        assert [(h["recipient"], h["reason"], h["batch_state"]) for h in held] == [(refuser, FAILED_REASON, "confirmed")]

        async with admin_client(e) as client:
            r = await client.get("/v1/admin/payouts/held", headers=AUTH)
            assert r.status == 200 and [h["idempotency_key"] for h in (await r.json())["held"]] == ["r"]
            r = await client.post(f"/v1/admin/batches/{first}/release", headers=AUTH,
                                  json={"without": [plain]})
            assert r.status == 400 and (await r.json())["field"] == "without"
            r = await client.post(f"/v1/admin/batches/{first}/release", headers=AUTH, json={"reason": "retry once"})
            assert r.status == 200, await r.text()
            assert (await r.json())["release"]["then"] == "pending"
            assert await e.val("SELECT state FROM payout_requests WHERE idempotency_key = 'r'") == "pending"
            r = await client.post(f"/v1/admin/batches/{first}/release", headers=AUTH)
            assert r.status == 409 and (await r.json())["field"] == "id"  # nothing held any more
            await settle(e)  # a new batch; the receiver refuses again
            second = await e.val("SELECT batch_id FROM payout_requests WHERE idempotency_key = 'r'")
            assert second != first
            assert await e.val("SELECT state FROM payout_requests WHERE idempotency_key = 'r'") == "held"

            # Cancel frees the reservation: the ledger still owes the amount, a new request fits.
            with __import__("pytest").raises(preq.PayoutError, match="amount:"):
                await request_payout(pool, e.settings, chain="anvil", asset="native", to=refuser, amount=UNIT,
                                     key="r-again-too-early")
            code, out, err = cli(tmp_path, db_url, "payouts", "cancel", second)
            assert code != 0 and "reason" in err
            code, out, err = cli(tmp_path, db_url, "payouts", "cancel", second, "--reason", "receiver refuses coin")
            assert code == 0, err
            assert await e.val("SELECT state FROM payout_requests WHERE idempotency_key = 'r'") == "cancelled"
            # Counted by two batches, paid by none: the day's cap holds only what was paid.
            assert await e.val("SELECT total FROM payout_daily_totals") == UNIT
            _, created = await request_payout(pool, e.settings, chain="anvil", asset="native", to=refuser,
                                              amount=UNIT, key="r-again")
            assert created

            # An unsigned batch is cancelled whole over the API, its day's cap given back.
            await preq.set_kill_switch(pool, "anvil", True, "hold on", "tester")
            await e.worker.step()
            ready = await e.val("SELECT batch_id FROM payout_batches WHERE state = 'ready'")
            cap_before = await e.val("SELECT total FROM payout_daily_totals")
            r = await client.post(f"/v1/admin/batches/{ready}/cancel", headers=AUTH, json={"reason": "wrong payee"})
            assert r.status == 200, await r.text()
            assert await e.val("SELECT state FROM payout_batches WHERE batch_id = $1", ready) == "cancelled"
            assert await e.val("SELECT total FROM payout_daily_totals") == cap_before - UNIT
            r = await client.post(f"/v1/admin/batches/{ready}/cancel", headers=AUTH, json={"reason": "again"})
            assert r.status == 409
            r = await client.post("/v1/admin/batches/0x12/cancel", headers=AUTH, json={"reason": "x"})
            assert r.status == 400 and (await r.json())["field"] == "id"
        actions = [r["action"] for r in await e.fetch("SELECT action FROM audit_log ORDER BY id")]
        assert actions.count("payout.released") == 1 and actions.count("payout.cancelled") == 2
        actors = {r["actor"] for r in await e.fetch("SELECT actor FROM audit_log WHERE action LIKE 'payout.%ed' "
                                                       "AND action IN ('payout.released', 'payout.cancelled')")}
        assert "cli" in actors and any(a.startswith("api:") for a in actors)
    finally:
        await e.close()


async def test_reverted_batch_is_requeued_only_once_proven_dead(anvil, pool, tmp_path):
    """A reverted batch's signature stays valid until expiry: release marks its
    requests for the expiry proof, cancel waits for it."""
    e = Env(anvil, pool, tmp_path, batch_expiry_seconds=120)
    await e.start()
    try:
        to = fresh_address().lower()
        await credit_users(pool, "anvil", {to: UNIT})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=UNIT, key="rv")
        await preq.set_kill_switch(pool, "anvil", True, "hold", "tester")
        await e.worker.step()
        batch = await e.val("SELECT batch_id FROM payout_batches")
        # Stand-in for a revert seen on chain (the states the sender writes after a status-0 receipt).
        async with pool.acquire() as conn:
            await conn.execute("UPDATE payout_batches SET state = 'reverted', signature = '0x00', "
                               "expiry = extract(epoch FROM now())::bigint + 120 WHERE batch_id = $1", batch)
            await conn.execute("UPDATE payout_requests SET state = 'held', reason = 'reverted: test' "
                               "WHERE batch_id = $1", batch)
        from settlement.payouts.operator import cancel_batch, release_batch

        with __import__("pytest").raises(preq.BatchStateConflict):
            await cancel_batch(pool, e.settings, batch, "tester", reason="not yet")
        out = await release_batch(pool, e.settings, batch, "tester")
        assert out["then"].startswith("requeued when")
        assert await e.val("SELECT state FROM payout_requests") == "batched"
        anvil.rpc("evm_increaseTime", [600])
        anvil.rpc("evm_mine", [])
        await e.index()
        await preq.set_kill_switch(pool, "anvil", False, "go", "tester")
        await settle(e, 3)
        await e.index()
        assert await e.val("SELECT state FROM payout_batches WHERE batch_id = $1", batch) == "expired"
        assert await e.val("SELECT state FROM payout_requests") == "paid" and balance(anvil, to) == UNIT
    finally:
        await e.close()
