"""InvoiceHook with the real Store on real Postgres (synthetic events, no
node): a replayed range changes nothing, a rollback reverts exactly the
claims above the ancestor, the payment coming back on the new branch is
claimed again, and an old unclaimed transfer neither pays nor verifies for
an invoice made after it."""

from __future__ import annotations

import orjson

from indexer.models import BlockRow, Cursor, EventRow
from indexer.store import Store
from settlement.invoices.hook import InvoiceHook
from settlement.invoices.invoices import InvoiceRequest, create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment
from settlement.ledger.hook import LedgerHook
from tests.support.config import make_settings

CHAIN = "local"
TOKEN = "0x" + "7" * 40
SHOP = "0x" + "5b" * 20
PAYER = "0x" + "a1" * 20
OTHER = "0x" + "a2" * 20


def block_hash(n: int, fork: int = 0) -> str:
    return "0x" + f"{fork:02x}{n:062x}"


def transfer(n: int, i: int, value: int, fork: int = 0, frm: str = PAYER) -> EventRow:
    return EventRow(CHAIN, n, block_hash(n, fork), "0x" + f"{fork:02x}{n:030x}{i:032x}", i, i, TOKEN, "Transfer",
                    orjson.dumps({"from": frm, "to": SHOP, "value": str(value)}).decode())


async def commit(store: Store, n: int, events, fork: int = 0, final: int | None = None) -> None:
    st = await store.load_state()
    await store.commit_range(from_block=n, to_block=n, events=events,
                             blocks=[BlockRow(n, block_hash(n, fork), block_hash(n - 1, fork), 1_700_000_000 + n)],
                             expected=st.cursor, cursor=Cursor(n, block_hash(n, fork)), final_number=final)


async def counts(pool) -> tuple[int, int, int]:
    return (await pool.fetchval("SELECT count(*) FROM invoice_payments"),
            await pool.fetchval("SELECT count(*) FROM ledger_transactions"),
            await pool.fetchval("SELECT count(*) FROM feed_outbox WHERE kind = 'invoice'"))


async def test_replay_rollback_and_rematch(pool, tmp_path):
    settings = make_settings(tmp_path, {"chains": [{
        "name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:1"],
        "contracts": [{"name": "Token", "address": TOKEN, "abi": "erc20"}],
        "wallets": [{"name": "shop", "address": SHOP, "assets": ["Token"]}]}]})
    store = Store(pool, CHAIN, [LedgerHook(settings), InvoiceHook(settings)])
    await store.ensure_chain("evm", 31337)
    inv, _ = await create_invoice(pool, settings, InvoiceRequest(
        chain=CHAIN, asset="Token", amount=100, wallet=SHOP, app_ref="a", account="user:app", match_method="payer",
        payer=PAYER, expires_in=3600))
    await commit(store, 1, [])
    await commit(store, 2, [transfer(2, 0, 60), transfer(2, 5, 100, frm=OTHER)])
    await commit(store, 3, [transfer(3, 0, 40)], final=1)
    got = await get_invoice(pool, inv["id"])
    assert (got["state"], got["received"]) == ("seen", "100")
    before = await counts(pool)

    # Replaying blocks 2..3 (cursor untouched) claims, books and announces nothing new.
    await store.commit_range(from_block=2, to_block=3, events=[transfer(2, 0, 60), transfer(3, 0, 40),
                                                               transfer(2, 5, 100, frm=OTHER)],
                             expected=None, cursor=None)
    assert await counts(pool) == before

    # A reorg to block 2 removes the 40: reverted, received back to 60, its ledger entry gone.
    await store.rollback_to(Cursor(2, block_hash(2)), expected=Cursor(3, block_hash(3)))
    got = await get_invoice(pool, inv["id"])
    assert (got["state"], got["received"]) == ("reverted", "60")
    assert await pool.fetchval("SELECT count(*) FROM invoice_payments") == 1
    app = await pool.fetchval("SELECT sum(p.amount) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id"
                              " WHERE a.code = 'user:app'")
    assert app == -60

    # The payment comes back in another block of the new branch and becomes final: paid.
    await commit(store, 3, [transfer(3, 1, 40, fork=1)], fork=1)
    await commit(store, 4, [], fork=1, final=4)
    got = await get_invoice(pool, inv["id"])
    assert (got["state"], got["received"]) == ("paid", "100")
    states = [r["payload"]["state"] for r in await pool.fetch(
        "SELECT payload FROM feed_outbox WHERE kind = 'invoice' ORDER BY tx, id")]
    assert states == ["new", "seen", "seen", "reverted", "seen", "paid"]  # 60 seen, then 100 seen

    # An invoice made now is not paid by OTHER's old, unclaimed transfer when history is replayed.
    late, _ = await create_invoice(pool, settings, InvoiceRequest(
        chain=CHAIN, asset="Token", amount=100, wallet=SHOP, app_ref="b", account="user:app", match_method="payer",
        payer=OTHER, expires_in=3600))
    assert late["after_block"] == 4
    await store.commit_range(from_block=1, to_block=4, events=[transfer(2, 5, 100, frm=OTHER)],
                             expected=None, cursor=None)
    assert (await get_invoice(pool, late["id"]))["state"] == "new"
    await commit(store, 5, [transfer(5, 0, 100, frm=OTHER, fork=1)], fork=1, final=5)
    assert (await get_invoice(pool, late["id"]))["state"] == "paid"

    # verify-payment agrees: OTHER's old transfer is not the new invoice's payment; the new one is.
    old = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=transfer(2, 5, 100).tx_hash,
                                                           invoice=late["id"]))
    assert (old["status"], old["reason"]) == ("not_found", "the transfer predates the invoice")
    new = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=transfer(5, 0, 100, fork=1).tx_hash,
                                                           invoice=late["id"]))
    assert new["status"] == "paid_final"
