"""XRPL payouts under issue 11: a payment proven dead that validates anyway
fails closed in the follower's transaction (no unique-index retry loop,
indexing goes on); the fee follows the server up to max_fee_drops; the
absence proof needs complete history over the window; the payout client
refuses servers of another network."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from daemon.followers import default_hooks
from indexer.xrpl.follower import XrplFollower
from settlement.payouts.xrpl.worker import XrplPayoutWorker
from tests.integration.settlement.payouts.xrpl.test_pipeline import (  # noqa: F401  (fixture)
    CHAIN,
    HOT,
    XRP,
    ledger,
    pay,
    running,
    settings_for,
    until,
    xrp_of,
)
from tests.support.xrpl import wallet
from tests.xrpl_ledger import start_ledger_server


def set_base_fee(d, drops: int) -> None:
    d.ledger.fees = dataclasses.replace(d.ledger.fees, base_fee=drops)


@contextlib.asynccontextmanager
async def following(settings, pool):
    stop = asyncio.Event()
    follower = XrplFollower(settings.chain(CHAIN), pool, hooks=default_hooks(settings), base_dir=settings.base_dir)
    task = asyncio.create_task(follower.run(stop))
    try:
        yield follower
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await follower.close()


async def test_dead_payment_validated_later_fails_closed_and_indexing_goes_on(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url, last_ledger_offset=100)
    dest = wallet(41)
    d.fund(dest, drops=50 * XRP)
    d.close()
    d.node.call("test_drop_next", {"count": 1}, 2)  # the first submission is lost: the blob waits, unapplied
    async with running(settings, pool):
        rid = await pay(pool, settings, dest.classic_address, 3 * XRP, "dead")
        await until(pool, "SELECT EXISTS (SELECT 1 FROM xrpl_payments WHERE request_id = $1 AND submits > 0)", rid)
    # Provoke the impossible: the payment is (wrongly) proven dead, then its bytes reach a validated ledger.
    async with pool.acquire() as conn:
        row = await conn.fetchrow("UPDATE xrpl_payments SET state = 'dead', last_error = 'test: wrong proof' "
                                  "WHERE request_id = $1 RETURNING tx_blob, tx_hash", rid)
    assert d.node.call("submit", {"tx_blob": row["tx_blob"]}, 2)["engine_result"] == "tesSUCCESS"
    d.close()
    async with following(settings, pool):
        await until(pool, "SELECT EXISTS (SELECT 1 FROM audit_log WHERE action = 'payout.fail_closed')", timeout=30)
        before = await pool.fetchval("SELECT cursor_number FROM chain_state WHERE chain = $1", CHAIN)
        for _ in range(3):
            d.close()
        await until(pool, "SELECT cursor_number > $1 FROM chain_state WHERE chain = $2", before, CHAIN)
    async with pool.acquire() as conn:
        xids = await conn.fetch(
            "SELECT 'control' AS what, xmin::text AS x FROM payout_controls WHERE scope = $1 AND killed "
            "UNION ALL SELECT 'pause', xmin::text FROM asset_pauses WHERE asset_id = $1 || ':native' "
            "AND resolved_at IS NULL "
            "UNION ALL SELECT 'audit', xmin::text FROM audit_log WHERE action = 'payout.fail_closed' "
            "UNION ALL SELECT 'paid', xmin::text FROM payout_requests WHERE id = $2 AND state = 'paid'", CHAIN, rid)
        detail = await conn.fetchval("SELECT details FROM audit_log WHERE action = 'payout.fail_closed'")
        pay_row = await conn.fetchrow("SELECT state, last_error FROM xrpl_payments WHERE request_id = $1", rid)
        booked = await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'payout'")
    assert {r["what"] for r in xids} == {"control", "pause", "audit", "paid"}, xids
    assert len({r["x"] for r in xids}) == 1  # one transaction: the follower's
    assert detail["kind"] == "dead_payment_validated" and detail["tx"] == row["tx_hash"]
    assert pay_row["state"] == "dead" and pay_row["last_error"].startswith("validated anyway")
    assert booked == 1 and xrp_of(d, dest.classic_address) == 53 * XRP  # what the chain did is booked once
    # Nothing more is signed on the chain while its kill switch is on.
    async with running(settings, pool):
        other = await pay(pool, settings, wallet(42).classic_address, 30 * XRP, "after")
        await asyncio.sleep(1.0)
        assert await pool.fetchval("SELECT count(*) FROM xrpl_payments WHERE request_id = $1", other) == 0


async def test_fee_follows_the_server_up_to_max_fee_drops(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url, fee_drops=12, max_fee_drops=500, last_ledger_offset=60)
    dest = wallet(51)
    d.fund(dest, drops=50 * XRP)
    d.close()
    set_base_fee(d, 100)  # the server under load asks for more
    async with running(settings, pool) as worker:
        first = await pay(pool, settings, dest.classic_address, XRP, "f1")
        await until(pool, "SELECT state = 'paid' FROM payout_requests WHERE id = $1", first)
        assert await pool.fetchval("SELECT fee FROM xrpl_payments WHERE request_id = $1", first) == 100
        set_base_fee(d, 2_000)  # above our cap: we sign at the cap and the server refuses it
        second = await pay(pool, settings, dest.classic_address, XRP, "f2")
        await until(pool, "SELECT EXISTS (SELECT 1 FROM xrpl_payments WHERE request_id = $1 "
                          "AND result = 'telINSUF_FEE_P')", second)
        assert worker.sender.escalation > 1
        set_base_fee(d, 10)  # load gone: the stored bytes (at the cap) apply
        await until(pool, "SELECT state = 'paid' FROM payout_requests WHERE id = $1", second, timeout=60)
        assert worker.sender.escalation == 1
    fees = [r["fee"] for r in await pool.fetch("SELECT fee FROM xrpl_payments")]
    assert max(fees) == 500 and all(f <= 500 for f in fees)  # the cap, never past it
    assert await pool.fetchval("SELECT fee FROM xrpl_payments WHERE request_id = $1 AND state = 'validated'",
                               second) == 500
    assert xrp_of(d, dest.classic_address) == 52 * XRP


async def test_absence_needs_complete_history_over_the_window(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    for _ in range(6):
        d.close()
    worker = XrplPayoutWorker(settings, pool, settings.payouts.chains[0])
    try:
        unknown = "AB" * 32
        validated = d.ledger.validated.index
        assert await worker.sender.prove_absent(unknown, validated - 4, validated)
        server.set_gap(validated - 3, validated - 2)  # this server lost part of the window
        assert not await worker.sender.prove_absent(unknown, validated - 4, validated)
        server.clear_gap()
        assert await worker.sender.prove_absent(unknown, validated - 4, validated)
    finally:
        await worker.close()


async def test_payout_client_refuses_a_server_of_another_network(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_XRPL_HOT_SEED", HOT.seed)
    server, _ = await start_ledger_server(network_id=21338)
    try:
        settings = settings_for(tmp_path, server.http_url)  # the xrpl preset: network id 0
        worker = XrplPayoutWorker(settings, pool, settings.payouts.chains[0])
        try:
            from config import ConfigError

            with pytest.raises(ConfigError, match="network id"):
                await worker.step()
            assert await pool.fetchval("SELECT count(*) FROM xrpl_payments") == 0
        finally:
            await worker.close()
    finally:
        await server.stop()


async def test_pause_stops_the_remaining_items_of_a_released_batch(ledger, pool, tmp_path):
    from settlement.ledger.pauses import pause_asset, resolve_pause

    server, d = ledger
    settings = settings_for(tmp_path, server.http_url, max_in_flight=1, last_ledger_offset=60)
    dests = [wallet(61 + i) for i in range(3)]
    d.fund(*dests, drops=50 * XRP)
    d.close()
    worker = XrplPayoutWorker(settings, pool, settings.payouts.chains[0])
    try:
        async with following(settings, pool):
            ids = [await pay(pool, settings, w.classic_address, XRP, f"pz{i}") for i, w in enumerate(dests)]
            await worker.step()  # one batch, released; one payment in flight (max_in_flight = 1)
            assert await pool.fetchval("SELECT state FROM payout_batches") == "signed"
            assert await pool.fetchval("SELECT count(*) FROM xrpl_payments") == 1
            async with pool.acquire() as conn, conn.transaction():
                await pause_asset(conn, f"{CHAIN}:native", "reconciliation mismatch (test)", "tester")
            await until(pool, "SELECT count(*) = 1 FROM payout_requests WHERE state = 'paid'")
            for _ in range(5):
                await worker.step()
                await asyncio.sleep(0.1)
            assert await pool.fetchval("SELECT count(*) FROM xrpl_payments") == 1  # the rest wait
            await resolve_pause(pool, f"{CHAIN}:native", "tester", "checked")
            for _ in range(100):
                await worker.step()
                if await pool.fetchval("SELECT count(*) = 3 FROM payout_requests WHERE state = 'paid'"):
                    break
                await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == 3
        assert [xrp_of(d, w.classic_address) for w in dests] == [51 * XRP] * 3
        assert sorted(ids) == ids
    finally:
        await worker.close()
