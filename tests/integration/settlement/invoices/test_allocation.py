"""The allocation rule between a payer's open invoices (settlement/invoices/claims.py),
with the real Store and hooks on real Postgres (synthetic blocks): each
invoice is filled before the next, oldest first, before and after
finality and across a reorg; the rest of the last payment is excess on
the last invoice; a fully paid `seen` invoice takes nothing more. And
expired invoices stop matching after their grace: a payment naming one is
recorded for review."""

from __future__ import annotations

import time

from indexer.models import BlockRow, Cursor
from indexer.store import Store
from settlement.invoices.hook import InvoiceHook
from settlement.invoices.invoices import InvoiceRequest, create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment
from settlement.ledger.hook import LedgerHook
from tests.integration.settlement.invoices.test_hook import CHAIN, OTHER, PAYER, SHOP, TOKEN, block_hash, transfer
from tests.support.config import make_settings


def settings_of(tmp_path, **invoices):
    return make_settings(tmp_path, {"invoices": invoices, "chains": [{
        "name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:1"],
        "contracts": [{"name": "Token", "address": TOKEN, "abi": "erc20"}],
        "wallets": [{"name": "shop", "address": SHOP, "assets": ["Token"]}]}]})


async def commit(store: Store, n: int, events, fork: int = 0, final: int | None = None, ts: int | None = None):
    st = await store.load_state()
    stamp = ts if ts is not None else int(time.time()) + n
    await store.commit_range(from_block=n, to_block=n, events=events,
                             blocks=[BlockRow(n, block_hash(n, fork), block_hash(n - 1, fork), stamp)],
                             expected=st.cursor, cursor=Cursor(n, block_hash(n, fork)), final_number=final)


async def setup(pool, settings, *amounts, payer=PAYER, expires_in=3600):
    store = Store(pool, CHAIN, [LedgerHook(settings), InvoiceHook(settings)])
    await store.ensure_chain("evm", 31337)
    invs = []
    for k, amount in enumerate(amounts):
        inv, _ = await create_invoice(pool, settings, InvoiceRequest(
            chain=CHAIN, asset="Token", amount=amount, wallet=SHOP, app_ref=f"inv-{k}", account="user:app",
            match_method="payer", payer=payer, expires_in=expires_in))
        invs.append(inv["id"])
    await commit(store, 1, [])
    return store, invs


async def states(pool, ids) -> list[tuple[str, str]]:
    return [((g := await get_invoice(pool, i))["state"], g["received"]) for i in ids]


async def test_second_payment_before_finality_pays_the_second_invoice(pool, tmp_path):
    store, (a, b) = await setup(pool, settings_of(tmp_path), 100, 100)
    await commit(store, 2, [transfer(2, 0, 100)])
    await commit(store, 3, [transfer(3, 0, 100)])
    assert await states(pool, (a, b)) == [("seen", "100"), ("seen", "100")]
    # A reorg drops the second payment: only B loses it.
    await store.rollback_to(Cursor(2, block_hash(2)), expected=Cursor(3, block_hash(3)))
    assert await states(pool, (a, b)) == [("seen", "100"), ("reverted", "0")]
    # The new branch brings 150: B still lacks 100 and takes all of it (excess on the last).
    await commit(store, 3, [transfer(3, 1, 150, fork=1)], fork=1)
    await commit(store, 4, [], fork=1, final=4)
    assert await states(pool, (a, b)) == [("paid", "100"), ("overpaid", "150")]


async def test_one_payment_fills_invoices_in_turn(pool, tmp_path):
    store, ids = await setup(pool, settings_of(tmp_path), 100, 100, 100)
    await commit(store, 2, [transfer(2, 0, 250)], final=2)
    assert await states(pool, ids) == [("paid", "100"), ("paid", "100"), ("underpaid", "50")]
    parts = await pool.fetch("SELECT invoice_id, amount FROM invoice_payments ORDER BY amount DESC, invoice_id")
    assert sum(p["amount"] for p in parts) == 250 and len(parts) == 3
    assert await pool.fetchval("SELECT count(*) FROM payment_claims") == 1
    # The books follow the parts: the app holds 250, the payer's deposit is handed on in full.
    app = await pool.fetchval("SELECT sum(p.amount) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id"
                              " WHERE a.code = 'user:app'")
    assert app == -250


async def test_underpaid_invoice_takes_only_its_shortfall(pool, tmp_path):
    store, (a, b) = await setup(pool, settings_of(tmp_path), 100, 100)
    await commit(store, 2, [transfer(2, 0, 60)], final=2)
    assert await states(pool, (a, b)) == [("underpaid", "60"), ("new", "0")]
    await commit(store, 3, [transfer(3, 0, 100)], final=3)
    assert await states(pool, (a, b)) == [("paid", "100"), ("underpaid", "60")]
    # Everything paid: a further payment is claimed by no one (it stays the payer's deposit).
    await commit(store, 4, [transfer(4, 0, 40)], final=4)
    await commit(store, 5, [transfer(5, 0, 70)], final=5)
    assert await states(pool, (a, b)) == [("paid", "100"), ("paid", "100")]
    assert await pool.fetchval("SELECT count(*) FROM payment_claims WHERE block_number = 5") == 0


async def test_reorg_of_a_split_payment_reverts_every_part(pool, tmp_path):
    store, (a, b) = await setup(pool, settings_of(tmp_path), 100, 100)
    await commit(store, 2, [transfer(2, 0, 150)])
    assert await states(pool, (a, b)) == [("seen", "100"), ("seen", "50")]
    await store.rollback_to(Cursor(1, block_hash(1)), expected=Cursor(2, block_hash(2)))
    assert await states(pool, (a, b)) == [("reverted", "0"), ("reverted", "0")]
    assert await pool.fetchval("SELECT count(*) FROM payment_claims") == 0
    await commit(store, 2, [transfer(2, 3, 120, fork=1)], fork=1, final=2)
    assert await states(pool, (a, b)) == [("paid", "100"), ("underpaid", "20")]


async def test_expired_invoices_stop_matching_after_the_grace(pool, tmp_path):
    settings = settings_of(tmp_path, expired_grace_seconds=600)
    store, (dead,) = await setup(pool, settings, 100, payer=OTHER, expires_in=60)
    _, (late,) = await setup_more(pool, settings, 100)
    now = int(time.time())
    # Past expiry, within the grace: a late payment.
    await commit(store, 2, [transfer(2, 0, 100)], final=2, ts=now + 120)
    assert await states(pool, (late,)) == [("paid_late", "100")]
    # Past the grace: retired, never credited; the payment is recorded for review.
    await commit(store, 3, [], final=3, ts=now + 1000)
    await commit(store, 4, [transfer(4, 0, 100, frm=OTHER)], final=4, ts=now + 1001)
    assert await states(pool, (dead,)) == [("expired", "0")]
    rows = await pool.fetch("SELECT invoice_id, amount FROM invoice_unmatched")
    assert [(r["invoice_id"], r["amount"]) for r in rows] == [(dead, 100)]
    assert await pool.fetchval("SELECT matchable FROM invoices WHERE id = $1", dead) is False
    v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=transfer(4, 0, 100).tx_hash,
                                                         invoice=dead))
    assert v["status"] == "expired"
    assert await pool.fetchval("SELECT count(*) FROM payment_claims WHERE block_number = 4") == 0


async def setup_more(pool, settings, amount):
    inv, _ = await create_invoice(pool, settings, InvoiceRequest(
        chain=CHAIN, asset="Token", amount=amount, wallet=SHOP, app_ref="late", account="user:app",
        match_method="payer", payer=PAYER, expires_in=60))
    return None, [inv["id"]]


async def test_invoice_made_before_anything_is_known_is_bound_before_matching(pool, tmp_path):
    """No chain state and no reachable RPC: after_block stays empty until the hook binds it to the indexed head;
    the first backfill's old transfers never pay it."""
    settings = settings_of(tmp_path)
    inv, _ = await create_invoice(pool, settings, InvoiceRequest(
        chain=CHAIN, asset="Token", amount=100, wallet=SHOP, app_ref="early", account="user:app",
        match_method="payer", payer=PAYER, expires_in=3600))
    assert inv["after_block"] is None
    store = Store(pool, CHAIN, [LedgerHook(settings), InvoiceHook(settings)])
    await store.ensure_chain("evm", 31337)
    await commit(store, 1, [transfer(1, 0, 100)], final=1)  # history: the first backfill's range
    got = await get_invoice(pool, inv["id"])
    assert (got["state"], got["after_block"]) == ("new", 1)
    await commit(store, 2, [transfer(2, 0, 100)], final=2)
    assert (await get_invoice(pool, inv["id"]))["state"] == "paid"
