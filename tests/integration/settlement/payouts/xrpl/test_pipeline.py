"""XRPL payouts against the standalone test ledger and real Postgres: the
follower (with the daemon's default hooks) and the XRPL payout worker run
in this event loop while the ledger closes on a timer.

Covers: XRP and issued-currency payouts with ledger postings and
reconciliation at zero; a RequireDest recipient without a tag refused
before signing; a new account below the reserve and a payout that would dip
into the hot wallet's reserve refused; a tec in a validated ledger
(RequireDest set after signing -> tecDST_TAG_NEEDED) failed with the fee
burnt and held for a human; a dropped submission detected after
LastLedgerSequence, its absence proven, paid exactly once with a new Sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import pytest

from daemon.cli_payouts import list_payouts
from daemon.followers import default_hooks
from indexer.xrpl.follower import XrplFollower
from settlement.ledger.books import balances_as_of
from settlement.payouts.requests import request_payout
from settlement.payouts.xrpl.worker import XrplPayoutWorker
from settlement.reconcile.runs import reconcile_once
from tests.support.config import make_settings
from tests.support.pg import wait_until
from tests.support.xrpl import (
    ASF_DEFAULT_RIPPLE,
    ASF_REQUIRE_DEST,
    XRP,
    Driver,
    usd,
    wallet,
)
from tests.xrpl_ledger import start_ledger_server

CHAIN = "xr"
HOT, ISSUER = wallet(9001), wallet(9002)


def settings_for(tmp_path, url: str, **payouts):
    return make_settings(tmp_path, {
        "chains": [{"name": CHAIN, "preset": "xrpl", "rpc": [url], "start_ledger": 1, "poll_interval": 0.05,
                    "wallets": [{"name": "hot", "address": HOT.classic_address, "assets": ["native", "USD"]}]}],
        "ledger": {"assets": [{"chain": CHAIN, "name": "USD", "currency": "USD", "issuer": ISSUER.classic_address,
                               "decimals": 6}]},
        "payouts": {"require_balance": False, "poll_interval": 0.05, "max_recipients": 10,
                    "chains": [{"chain": CHAIN, "seed": "env:TEST_XRPL_HOT_SEED", "last_ledger_offset": 10,
                                "retry_wait_seconds": 0, **payouts,
                                "assets": [{"name": "native"}, {"name": "USD"}]}]},
    })


@contextlib.asynccontextmanager
async def running(settings, pool):
    stop = asyncio.Event()
    follower = XrplFollower(settings.chain(CHAIN), pool, hooks=default_hooks(settings), base_dir=settings.base_dir)
    worker = XrplPayoutWorker(settings, pool, settings.payouts.chains[0])
    tasks = [asyncio.create_task(follower.run(stop)), asyncio.create_task(worker.run(stop))]
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await follower.close()
        await worker.close()


async def _payout_state(conn) -> str:
    state = [dict(r) for r in await conn.fetch("SELECT id, state, reason FROM payout_requests ORDER BY id")]
    pays = [dict(r) for r in await conn.fetch(
        "SELECT request_id, sequence, state, result, last_error FROM xrpl_payments ORDER BY id")]
    return f"requests {state}\npayments {pays}"


async def until(pool, sql: str, *args, timeout: float = 30.0):
    await wait_until(pool, sql, *args, timeout=timeout, diagnose=_payout_state)


@pytest.fixture
async def ledger(monkeypatch):
    monkeypatch.setenv("TEST_XRPL_HOT_SEED", HOT.seed)
    server, _ = await start_ledger_server(close_interval=0.2)
    d = Driver(server)
    d.fund(HOT, ISSUER, drops=10_000 * XRP)
    d.close()
    d.account_set(ISSUER, SetFlag=ASF_DEFAULT_RIPPLE)
    d.trust(HOT, ISSUER.classic_address, "1000000")
    d.close()
    d.pay(ISSUER, HOT.classic_address, usd(ISSUER.classic_address, "1000"))
    d.close()
    try:
        yield server, d
    finally:
        await server.stop()


def xrp_of(d: Driver, address: str) -> int | None:
    acct = d.ledger.validated.state.accounts.get(address)
    return None if acct is None else acct.balance


async def pay(pool, settings, to: str, amount: int, key: str, asset: str = "native", tag: int | None = None):
    row, _ = await request_payout(pool, settings, chain=CHAIN, asset=asset, to=to, amount=amount, key=key, destination_tag=tag)
    return row["id"]


async def test_xrp_and_iou_payouts_book_and_reconcile(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    alice, bob, tagged = wallet(1), wallet(2), wallet(3)
    d.fund(alice, bob, tagged, drops=50 * XRP)
    d.trust(bob, ISSUER.classic_address, "500")
    d.account_set(tagged, SetFlag=ASF_REQUIRE_DEST)
    d.close()
    newbie = wallet(4)  # does not exist yet
    async with running(settings, pool):
        a = await pay(pool, settings, alice.classic_address, 7 * XRP, "a")
        b = await pay(pool, settings, bob.classic_address, 12_500_000, "b", asset="USD")  # 12.5 USD
        t = await pay(pool, settings, tagged.classic_address, 3 * XRP, "t", tag=77)
        n = await pay(pool, settings, newbie.classic_address, 20 * XRP, "n")  # creates the account
        await until(pool, "SELECT count(*) = 4 FROM payout_requests WHERE state = 'paid'")
    assert xrp_of(d, alice.classic_address) == 57 * XRP
    assert xrp_of(d, newbie.classic_address) == 20 * XRP
    lines = d.ledger.validated.state.lines_of(bob.classic_address)
    assert [Decimal(str(ln.holds(bob.classic_address))) for ln in lines] == [Decimal("12.5")]
    async with pool.acquire() as conn:
        pays = await conn.fetch("SELECT * FROM xrpl_payments ORDER BY request_id")
        h = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = $1", CHAIN)
        bal = await balances_as_of(conn, CHAIN, h)
        batches = await conn.fetch("SELECT state FROM payout_batches")
    assert [p["request_id"] for p in pays] == [a, b, t, n] and {p["state"] for p in pays} == {"validated"}
    seqs = sorted(p["sequence"] for p in pays)
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    assert next(p for p in pays if p["request_id"] == t)["destination_tag"] == 77
    for p in pays:  # memo with the payout id, LastLedgerSequence, stored blob = the validated transaction
        rec = d.ledger.txs[p["tx_hash"]]
        assert rec.tx["LastLedgerSequence"] == p["last_ledger"]
        assert bytes.fromhex(rec.tx["Memos"][0]["Memo"]["MemoData"]).decode() == f"payout:{p['request_id']}"
        assert not rec.tx["Flags"] & 0x00020000
    assert bal[(f"user:{CHAIN}:{alice.classic_address}", f"{CHAIN}:native")] == 7 * XRP
    assert bal[(f"user:{CHAIN}:{bob.classic_address}", f"{CHAIN}:USD")] == 12_500_000
    assert {b["state"] for b in batches} == {"confirmed"}
    listed = (await list_payouts(pool, CHAIN))["xrpl_payments"]  # what `payouts list --json` shows
    assert sorted(x["tx_hash"] for x in listed) == sorted(p["tx_hash"] for p in pays)
    assert all("blob" not in x for x in listed)
    report = await reconcile_once(settings, pool)
    assert report.runs[0].status == "ok", report.to_json()
    assert all(r.difference == 0 for r in report.runs[0].results), report.to_json()


async def test_refusals_before_signing(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    strict, noline = wallet(11), wallet(12)
    d.fund(strict, noline, drops=50 * XRP)
    d.account_set(strict, SetFlag=ASF_REQUIRE_DEST)
    d.close()
    async with running(settings, pool):
        s = await pay(pool, settings, strict.classic_address, XRP, "s")  # RequireDest, no tag
        small = await pay(pool, settings, wallet(13).classic_address, XRP // 2, "small")  # new account < reserve
        nl = await pay(pool, settings, noline.classic_address, 1_000_000, "nl", asset="USD")  # no trust line
        big = await pay(pool, settings, wallet(14).classic_address, xrp_of(d, HOT.classic_address) - XRP // 2, "big")
        await until(pool, "SELECT count(*) = 4 FROM payout_requests WHERE state = 'held'")
    async with pool.acquire() as conn:
        reasons = {r["id"]: r["reason"] for r in await conn.fetch("SELECT id, reason FROM payout_requests")}
        assert await conn.fetchval("SELECT count(*) FROM xrpl_payments") == 0  # nothing was signed
    assert "RequireDest" in reasons[s]
    assert "below the base reserve" in reasons[small]
    assert "trust line" in reasons[nl]
    assert "reserve" in reasons[big]
    assert xrp_of(d, wallet(13).classic_address) is None


async def test_tec_in_validated_ledger_is_failed_and_held(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url, last_ledger_offset=100)
    dest = wallet(21)
    d.fund(dest, drops=50 * XRP)
    d.close()
    # The first submission is lost, so the stored blob reaches the ledger only when resubmitted ...
    d.node.call("test_drop_next", {"count": 1}, 2)
    async with running(settings, pool):
        rid = await pay(pool, settings, dest.classic_address, 2 * XRP, "tec")
        await until(pool, "SELECT EXISTS (SELECT 1 FROM xrpl_payments WHERE request_id = $1 AND submits > 0)", rid)
        # ... after the destination set RequireDest: signed untagged, it now fails with a tec.
        fee_before = xrp_of(d, HOT.classic_address)
        d.account_set(dest, SetFlag=ASF_REQUIRE_DEST)
        d.close()
        await until(pool, "SELECT state = 'held' FROM payout_requests WHERE id = $1", rid)
    async with pool.acquire() as conn:
        p = await conn.fetchrow("SELECT * FROM xrpl_payments WHERE request_id = $1", rid)
        reason = await conn.fetchval("SELECT reason FROM payout_requests WHERE id = $1", rid)
        n = await conn.fetchval("SELECT count(*) FROM xrpl_payments")
    assert n == 1  # held for a human, never re-signed
    assert (p["state"], p["result"]) == ("failed", "tecDST_TAG_NEEDED") and "tecDST_TAG_NEEDED" in reason
    assert xrp_of(d, dest.classic_address) == 50 * XRP - 10  # its own AccountSet fee; nothing arrived
    assert xrp_of(d, HOT.classic_address) == fee_before - p["fee"]  # only the fee burnt
    report = await reconcile_once(settings, pool)
    assert all(r.difference == 0 for r in report.runs[0].results), report.to_json()


async def test_dropped_submission_is_proven_dead_and_paid_once_with_a_new_sequence(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url, last_ledger_offset=4)
    dest = wallet(31)
    d.fund(dest, drops=50 * XRP)
    d.close()
    d.node.call("test_drop_next", {"count": 1}, 2)
    async with running(settings, pool):
        rid = await pay(pool, settings, dest.classic_address, 5 * XRP, "drop")
        await until(pool, "SELECT state = 'paid' FROM payout_requests WHERE id = $1", rid)
        await until(pool, "SELECT NOT EXISTS (SELECT 1 FROM xrpl_payments WHERE state IN ('signed', 'submitted'))")
    async with pool.acquire() as conn:
        pays = await conn.fetch("SELECT * FROM xrpl_payments ORDER BY id")
        audit = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'payout.xrpl_dead'")
    payouts = [p for p in pays if p["purpose"] == "payout"]
    assert [p["state"] for p in payouts] == ["dead", "validated"]
    dead, good = payouts
    assert good["sequence"] != dead["sequence"] and dead["tx_hash"] not in d.ledger.txs
    assert "absence proven" in dead["last_error"] and audit == 1
    # The dead Sequence was closed by a no-op so the new one could apply.
    fills = [p for p in pays if p["purpose"] == "fill"]
    assert [(f["sequence"], f["state"]) for f in fills] == [(dead["sequence"], "validated")]
    assert xrp_of(d, dest.classic_address) == 55 * XRP
    report = await reconcile_once(settings, pool)
    assert all(r.difference == 0 for r in report.runs[0].results), report.to_json()
