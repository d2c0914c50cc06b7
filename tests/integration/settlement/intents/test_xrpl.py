"""An intent on the XRPL test ledger: hourly XRP payments with a simulated
clock, the fee condition read from the ledger's `fee` method, each occurrence
executed only once its payment is validated and booked from final data."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

from settlement.intents import store
from settlement.intents.fees import RpcFees
from settlement.intents.scheduler import IntentScheduler
from settlement.ledger.books import Posting, post_transaction
from tests.integration.settlement.payouts.xrpl.test_pipeline import (  # noqa: F401 - the ledger fixture
    CHAIN,
    XRP,
    ledger,
    running,
    settings_for,
    until,
    wallet,
    xrp_of,
)

from .support import Clock, occurrences

UTC = timezone.utc
H0 = datetime(2028, 2, 28, 22, tzinfo=UTC)


async def test_hourly_xrp_intent_executes_each_occurrence_once(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    alice = wallet(41)
    d.fund(alice, drops=50 * XRP)
    d.close()
    clock = Clock(H0)
    fees = RpcFees(settings)
    s = IntentScheduler(pool, settings, clock=clock, fees=fees, concurrency=2)
    async with running(settings, pool):
        await until(pool, "SELECT final_number IS NOT NULL FROM chain_state WHERE chain = $1", CHAIN)
        async with pool.acquire() as conn:
            final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = $1", CHAIN)
            await post_transaction(conn, key=f"seed:{os.urandom(6).hex()}", cause_kind="manual", cause={"t": 1},
                                   chain=CHAIN, block_number=final, author="test", reason="owed to alice",
                                   postings=[Posting(f"user:{CHAIN}:{alice.classic_address}", f"{CHAIN}:native",
                                                     -10 * XRP),
                                             Posting(f"adjustment:{CHAIN}:seed", f"{CHAIN}:native", 10 * XRP)])
        intent = await store.create_intent(pool, settings, {
            "name": "hourly", "chain": CHAIN, "asset": "native", "to": alice.classic_address,
            "amount": str(2 * XRP), "rrule": "FREQ=HOURLY;BYMINUTE=0;BYSECOND=0", "timezone": "Pacific/Auckland",
            "start": H0.isoformat(), "end": (H0 + timedelta(hours=2)).isoformat(), "gas_cap": 1000},
            "test", now=H0)
        for h in range(3):
            clock.set(H0 + timedelta(hours=h, seconds=20))
            out = await s.tick()
            assert out.get("requested") == 1, out
            await until(pool, "SELECT count(*) = $1 FROM payout_requests WHERE state = 'paid'", h + 1)
            await s.tick()
        clock.set(H0 + timedelta(hours=5))
        await s.tick()
        await asyncio.sleep(0.3)
    await fees.close()
    occs = await occurrences(pool, intent["id"])
    assert [o["state"] for o in occs] == ["executed"] * 3
    assert [o["scheduled_at"] for o in occs] == [H0 + timedelta(hours=h) for h in range(3)]
    assert xrp_of(d, alice.classic_address) == 56 * XRP
    async with pool.acquire() as conn:
        inputs = await conn.fetchval("SELECT inputs FROM intent_evaluations ORDER BY id LIMIT 1")
        n = await conn.fetchval("SELECT count(*) FROM xrpl_payments WHERE purpose = 'payout'")
    assert int(inputs["fee"]) > 0 and n == 3


async def test_a_held_payout_shows_on_its_occurrence(ledger, pool, tmp_path):
    from tests.support.xrpl import ASF_REQUIRE_DEST

    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    strict = wallet(42)
    d.fund(strict, drops=50 * XRP)
    d.account_set(strict, SetFlag=ASF_REQUIRE_DEST)  # a payment without a tag is refused before signing
    d.close()
    clock = Clock(H0)
    s = IntentScheduler(pool, settings, clock=clock)
    async with running(settings, pool):
        await until(pool, "SELECT final_number IS NOT NULL FROM chain_state WHERE chain = $1", CHAIN)
        async with pool.acquire() as conn:
            final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = $1", CHAIN)
            await post_transaction(conn, key="seed-strict", cause_kind="manual", cause={"t": 1}, chain=CHAIN,
                                   block_number=final, author="test", reason="owed",
                                   postings=[Posting(f"user:{CHAIN}:{strict.classic_address}", f"{CHAIN}:native",
                                                     -10 * XRP),
                                             Posting(f"adjustment:{CHAIN}:seed", f"{CHAIN}:native", 10 * XRP)])
        intent = await store.create_intent(pool, settings, {
            "name": "untagged", "chain": CHAIN, "asset": "native", "to": strict.classic_address,
            "amount": str(XRP), "interval_seconds": 3600, "timezone": "UTC",
            "start": (H0 + timedelta(minutes=1)).isoformat(), "end": (H0 + timedelta(minutes=2)).isoformat()},
            "test", now=H0)
        clock.set(H0 + timedelta(minutes=1, seconds=10))
        await s.tick()
        await until(pool, "SELECT count(*) = 1 FROM payout_requests WHERE state = 'held'")
        await s.tick()
    occ = (await occurrences(pool, intent["id"]))[0]
    assert (occ["state"], occ["payout_state"]) == ("requested", "held") and "RequireDest" in occ["reason"]
    async with pool.acquire() as conn:
        events = [r["payload"]["event"] for r in await conn.fetch(
            "SELECT payload FROM feed_outbox WHERE kind = 'intent' AND subject = $1 ORDER BY id", occ["id"])]
    assert events == ["payout_held"]
