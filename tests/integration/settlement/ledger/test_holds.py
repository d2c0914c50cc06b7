"""Holds: reserve, post (in part), void, expire, each exactly once under races. Real Postgres."""

from __future__ import annotations

import asyncio
import random

import pytest

from settlement.ledger.holds import Hold, create_hold, expire_due, post_hold, void_hold
from settlement.ledger.transfers import Transfer, TransferConflict, TransferRefused, create_transfers
from tests.support.ledger import ASSET, CHAIN, balance_parts, fund, ledger_settings, ready_chain

A = f"user:{CHAIN}:0x" + "0a" * 20
B = f"user:{CHAIN}:0x" + "0b" * 20


@pytest.fixture
async def settings(pool, tmp_path):
    s = ledger_settings(tmp_path)
    await ready_chain(pool, s)
    return s


def hold(id_, amount, timeout=3600.0, debit=A, credit=B) -> Hold:
    return Hold(id_, debit, credit, ASSET, amount, 0, None, timeout)


async def test_hold_reserves_then_posts_in_part(pool, settings):
    await fund(pool, A, 10)
    h, created = await create_hold(pool, settings, hold("h1", 6), "test")
    assert created and h["state"] == "pending"
    parts = await balance_parts(pool, A)
    assert (parts["final"], parts["held"], parts["available"]) == (10, 6, 4)
    with pytest.raises(TransferRefused) as exc:  # the hold's 6 are not available to a transfer
        await create_transfers(pool, settings, [Transfer("t1", A, B, ASSET, 5)], "test")
    assert exc.value.result == "exceeds_available"
    with pytest.raises(TransferRefused):
        await create_hold(pool, settings, hold("h2", 5), "test")
    again, created = await create_hold(pool, settings, hold("h1", 6), "test")
    assert not created and again == h
    with pytest.raises(TransferConflict) as conflict:
        await create_hold(pool, settings, hold("h1", 7), "test")
    assert conflict.value.field == "amount"
    with pytest.raises(TransferRefused):
        await post_hold(pool, "h1", 7, "test")  # more than held
    posted, changed = await post_hold(pool, "h1", 4, "test")
    assert changed and posted["state"] == "posted" and posted["posted_amount"] == "4"
    # The other 2 returned: A has 6, B 4.
    assert (await balance_parts(pool, A))["available"] == 6
    assert (await balance_parts(pool, B))["final"] == 4
    replay, changed = await post_hold(pool, "h1", 4, "test")
    assert not changed and replay == posted
    for attempt in (lambda: post_hold(pool, "h1", 3, "test"), lambda: void_hold(pool, "h1", "test")):
        with pytest.raises(TransferConflict):
            await attempt()


async def test_void_and_expiry_return_the_reservation(pool, settings):
    await fund(pool, A, 10)
    await create_hold(pool, settings, hold("v", 3), "test")
    voided, _ = await void_hold(pool, "v", "test")
    assert voided["state"] == "voided" and voided["transaction_id"] is None
    await create_hold(pool, settings, hold("e", 4, timeout=0.05), "test")
    assert (await balance_parts(pool, A))["available"] == 6
    await asyncio.sleep(0.1)
    with pytest.raises(TransferConflict):  # past its timeout: a post finds it expired, and expires it
        await post_hold(pool, "e", None, "test")
    assert await expire_due(pool) == 0
    parts = await balance_parts(pool, A)
    assert (parts["final"], parts["held"], parts["available"]) == (10, 0, 10)
    # One `balance` feed row per change of A (migration 0025), in order, each with its change.
    rows = await pool.fetch("SELECT payload FROM feed_outbox WHERE kind = 'balance' AND payload->>'account' = $1 "
                            "ORDER BY id", A)
    assert [(r["payload"]["reason"], r["payload"]["hold_id"], r["payload"]["amount"]) for r in rows] == [
        ("hold", "v", "-3"), ("void", "v", "3"), ("hold", "e", "-4"), ("expire", "e", "4")]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_hold_resolves_once_under_racing_post_void_and_expiry(pool, settings, seed):
    rng = random.Random(seed)
    await fund(pool, A, 1000)
    ids = [f"r{seed}-{i}" for i in range(12)]
    for i in ids:
        await create_hold(pool, settings, hold(i, 10, timeout=rng.choice([0.02, 0.05, 3600])), "test")

    async def racer(hold_id: str, kind: str):
        await asyncio.sleep(rng.random() * 0.06)
        try:
            if kind == "post":
                return await post_hold(pool, hold_id, rng.choice([None, 10, 7]), "test")
            if kind == "void":
                return await void_hold(pool, hold_id, "test")
            return await expire_due(pool)
        except (TransferConflict, TransferRefused) as exc:
            return exc

    jobs = [racer(i, rng.choice(["post", "void", "expire"])) for i in ids for _ in range(6)]
    await asyncio.gather(*jobs)
    await asyncio.sleep(0.06)
    await expire_due(pool)
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, state, posted_amount, transaction_id FROM ledger_holds")
        booked = {r["idempotency_key"]: r["n"] for r in await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM ledger_transactions WHERE cause_kind = 'transfer' "
            "GROUP BY 1")}
    posted = 0
    for r in rows:
        assert r["state"] in ("posted", "voided", "expired") or r["state"] == "pending"
        if r["state"] == "posted":
            assert booked.pop(f"hold:{r['id']}") == 1
            posted += int(r["posted_amount"])
    assert booked == {}  # no booking for a hold that did not end posted
    parts = await balance_parts(pool, A)  # also checks the balance row against holds and postings
    pending = sum(10 for r in rows if r["state"] == "pending")
    assert parts["final"] == 1000 - posted and parts["held"] == pending
    assert (await balance_parts(pool, B))["final"] == posted
    # Each resolution wrote its `balance` rows once: the debit side always, the credit side if posted.
    reasons = {"posted": "post", "voided": "void", "expired": "expire"}
    feed = await pool.fetch("SELECT payload FROM feed_outbox WHERE kind = 'balance' AND payload->>'reason' <> 'hold'")
    got = sorted((f["payload"]["hold_id"], f["payload"]["account"], f["payload"]["reason"]) for f in feed)
    assert got == sorted([(r["id"], A, reasons[r["state"]]) for r in rows if r["state"] != "pending"]
                         + [(r["id"], B, "post") for r in rows if r["state"] == "posted"])
