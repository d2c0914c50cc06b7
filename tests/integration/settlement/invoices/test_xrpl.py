"""Invoices on the XRPL test ledger: the real XRPL follower with the
daemon's hooks matches Payments by destination tag or memo, counts what
was delivered (a partial payment of Amount 1,000 USD delivering 0.001 USD
leaves its invoice underpaid by exactly the rest), and verify-payment
answers from the indexed data."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from daemon.followers import default_hooks
from indexer.xrpl.follower import XrplFollower
from settlement.invoices.invoices import InvoiceRequest, create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment
from settlement.ledger.books import balances_as_of
from tests.integration.settlement.invoices.support import until
from tests.support.config import make_settings
from tests.support.xrpl import ASF_DEFAULT_RIPPLE, TF_PARTIAL_PAYMENT, XRP, Driver, usd, wallet
from tests.xrpl_ledger import start_ledger_server

CHAIN = "xr"
SHOP, ISSUER, ALICE, BOB = wallet(7001), wallet(7002), wallet(7003), wallet(7004)
APP = "user:shop-app"


@pytest.fixture
async def ledger():
    server, _ = await start_ledger_server(close_interval=0.2)
    d = Driver(server)
    d.fund(SHOP, ISSUER, ALICE, BOB, drops=1_000 * XRP)
    d.close()
    d.account_set(ISSUER, SetFlag=ASF_DEFAULT_RIPPLE)
    for holder in (SHOP, ALICE):
        d.trust(holder, ISSUER.classic_address, "1000000")
    d.close()
    d.pay(ISSUER, ALICE.classic_address, usd(ISSUER.classic_address, "0.001"))  # all Alice will ever have
    d.close()
    try:
        yield server, d
    finally:
        await server.stop()


def settings_for(tmp_path, url: str):
    return make_settings(tmp_path, {
        "chains": [{"name": CHAIN, "preset": "xrpl", "rpc": [url], "start_ledger": 1, "poll_interval": 0.05,
                    "wallets": [{"name": "shop", "address": SHOP.classic_address, "assets": ["native", "USD"]}]}],
        "ledger": {"assets": [{"chain": CHAIN, "name": "USD", "currency": "USD", "issuer": ISSUER.classic_address,
                               "decimals": 6}]},
    })


@contextlib.asynccontextmanager
async def following(settings, pool):
    stop = asyncio.Event()
    follower = XrplFollower(settings.chain(CHAIN), pool, hooks=default_hooks(settings), base_dir=settings.base_dir)
    task = asyncio.create_task(follower.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await follower.close()


def req(app_ref: str, asset: str, amount: int, method: str, **kw) -> InvoiceRequest:
    return InvoiceRequest(chain=CHAIN, asset=asset, amount=amount, wallet=SHOP.classic_address, app_ref=app_ref,
                          account=APP, match_method=method, expires_in=3600, **kw)


async def test_tag_memo_and_partial_payment(ledger, pool, tmp_path):
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    partial, _ = await create_invoice(pool, settings, req("partial", "USD", 1000 * 10**6, "destination_tag",
                                                          destination_tag=41))
    tagged, _ = await create_invoice(pool, settings, req("tagged", "native", 5 * XRP, "destination_tag",
                                                         destination_tag=42))
    memo, _ = await create_invoice(pool, settings, req("memo", "native", 2 * XRP, "memo", memo="order-77"))
    async with following(settings, pool):
        # Amount says 1,000 USD; Alice holds 0.001 and the partial-payment flag lets that through.
        res = d.pay(ALICE, SHOP.classic_address, usd(ISSUER.classic_address, "1000"), DestinationTag=41,
                    Flags=TF_PARTIAL_PAYMENT)
        assert res["engine_result"] == "tesSUCCESS", res
        partial_hash = res["tx_json"]["hash"] if "tx_json" in res else res["tx"]["hash"]
        res = d.pay(BOB, SHOP.classic_address, str(5 * XRP), DestinationTag=42)
        tag_hash = res["tx_json"]["hash"] if "tx_json" in res else res["tx"]["hash"]
        d.pay(BOB, SHOP.classic_address, str(2 * XRP),
              Memos=[{"Memo": {"MemoData": "order-77".encode().hex().upper()}}])
        # Another tag: nobody's invoice.
        d.pay(BOB, SHOP.classic_address, str(3 * XRP), DestinationTag=43)
        await until(pool, "SELECT count(*) = 3 FROM invoices WHERE state IN ('paid', 'underpaid')")

    p = await get_invoice(pool, partial["id"])
    assert (p["state"], p["received"], p["shortfall"]) == ("underpaid", "1000", str(1000 * 10**6 - 1000))
    assert (await get_invoice(pool, tagged["id"]))["state"] == "paid"
    assert (await get_invoice(pool, memo["id"]))["state"] == "paid"
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, CHAIN, 10**9)
    assert b[(APP, f"{CHAIN}:USD")] == -1000
    assert b[(APP, f"{CHAIN}:native")] == -7 * XRP
    assert b.get((f"user:{CHAIN}:tag:42", f"{CHAIN}:native"), 0) == 0  # moved to the app's account
    assert b[(f"user:{CHAIN}:tag:43", f"{CHAIN}:native")] == -3 * XRP

    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=partial_hash, invoice=partial["id"]))
    assert v["status"] == "underpaid" and v["amount"] == "1000" and v["shortfall"] == str(1000 * 10**6 - 1000)
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=tag_hash, to=SHOP.classic_address,
                                                         asset="native", min_amount=5 * XRP, destination_tag=42))
    assert v["status"] == "already_claimed" and v["claimed_by"] == tagged["id"]
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=tag_hash, invoice=tagged["id"]))
    assert v["status"] == "paid_final" and v["source"] == "index"
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=tag_hash, to=SHOP.classic_address,
                                                         asset="native", min_amount=1, destination_tag=7))
    assert v["status"] == "wrong_recipient"
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=tag_hash, to=SHOP.classic_address,
                                                         asset="USD", min_amount=1))
    assert v["status"] == "wrong_asset"
    # An unwatched recipient: read from the ledger's `tx`, by delivered_amount.
    res = d.pay(BOB, ALICE.classic_address, str(XRP))
    h = res["tx_json"]["hash"] if "tx_json" in res else res["tx"]["hash"]
    d.close()
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=h, to=ALICE.classic_address,
                                                         asset="native", min_amount=XRP))
    assert v["status"] == "paid_final" and v["source"] == "chain" and v["amount"] == str(XRP)


async def test_late_payment_indexed_in_catch_up_is_paid_late(ledger, pool, tmp_path):
    """A catch-up range keeps only its top ledger's header: the claim is dated by its own ledger's close time."""
    import time

    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    inv, _ = await create_invoice(pool, settings, InvoiceRequest(
        chain=CHAIN, asset="native", amount=XRP, wallet=SHOP.classic_address, app_ref="late", account=APP,
        match_method="destination_tag", destination_tag=51, expires_in=600))
    async with following(settings, pool):
        d.close()
        await until(pool, "SELECT final_number IS NOT NULL FROM chain_state")
    # While the follower is down: ledgers before the expiry, then the clock passes it and the payment comes.
    for _ in range(5):
        d.close()
    d.ledger.clock = lambda: time.time() + 3600
    d.pay(BOB, SHOP.classic_address, str(XRP), DestinationTag=51)
    closed = d.close()
    for _ in range(5):
        d.close()
    async with following(settings, pool):
        await until(pool, "SELECT state IN ('paid', 'paid_late') FROM invoices WHERE app_ref = 'late'")
    row = await pool.fetchrow("SELECT late, block_number FROM invoice_payments")
    assert (row["late"], row["block_number"]) == (True, closed.index)
    assert (await get_invoice(pool, inv["id"]))["state"] == "paid_late"


async def test_one_payment_one_invoice_and_payer_allocation(ledger, pool, tmp_path):
    """On XRPL too: a payment is not accepted for amount invoices it does not match, and a payer's
    invoices are filled oldest first."""
    server, d = ledger
    settings = settings_for(tmp_path, server.http_url)
    amounts = [(await create_invoice(pool, settings, req(f"amt-{a}", "native", a, "amount")))[0]
               for a in (100, 101, 102)]
    a, _ = await create_invoice(pool, settings, req("a", "native", XRP, "payer", payer=BOB.classic_address))
    b, _ = await create_invoice(pool, settings, req("b", "native", XRP, "payer", payer=BOB.classic_address))
    async with following(settings, pool):
        res = d.pay(ALICE, SHOP.classic_address, "150")
        big = res["tx_json"]["hash"] if "tx_json" in res else res["tx"]["hash"]
        d.pay(BOB, SHOP.classic_address, str(XRP))
        d.close()
        d.pay(BOB, SHOP.classic_address, str(XRP))
        await until(pool, "SELECT count(*) = 2 FROM invoices WHERE state = 'paid'")
    assert [(await get_invoice(pool, i["id"]))["state"] for i in (a, b)] == ["paid", "paid"]
    for inv in amounts:
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big, invoice=inv["id"]))
        assert v["status"] == "wrong_amount", v
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big, to=SHOP.classic_address,
                                                         asset="native", min_amount=150, claim_key="order-1"))
    assert v["status"] == "paid_final" and v["claim"]["new"] is True
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big, to=SHOP.classic_address,
                                                         asset="native", min_amount=150, claim_key="order-2"))
    assert v["status"] == "already_claimed" and v["claim_key"] == "order-1"
