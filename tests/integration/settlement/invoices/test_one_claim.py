"""Issue 26, on anvil with the real follower and hooks: one transfer pays at
most one thing whichever route asks (verify-payment in invoice mode, claim
keys), and a payer's invoices are filled oldest first instead of the first
one swallowing the next payment."""

from __future__ import annotations

import asyncio

from settlement.invoices.invoices import create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment
from tests.integration.settlement.invoices.support import state_of, until
from tests.integration.settlement.invoices.test_evm import CHAIN, SHOP, following, mine, node, payer, req, settings_for  # noqa: F401
from tests.support.anvil import rpc_sync
from tests.support.evm import DEPLOYER, deploy_token, token_transfer


def funded(node, tmp_path, *payers: int):
    """anvil with the token deployed, the settings, and payers holding tokens."""
    url = node.url
    token = deploy_token(url)
    addresses = tuple(payer(url, n) for n in payers)
    for p in addresses:
        token_transfer(url, token, DEPLOYER, p, 10**6)
    return url, token, settings_for(tmp_path, url, token), addresses


async def test_one_payment_is_not_accepted_for_several_invoices(node, pool, tmp_path):  # noqa: F811
    url, token, settings, (p1,) = funded(node, tmp_path, 0xA1)
    invs = [(await create_invoice(pool, settings, req(f"amt-{a}", a, "amount")))[0] for a in (100, 101, 102)]
    async with following(settings, pool):
        big = token_transfer(url, token, p1, SHOP, 150)
        mine(url, 4)
        await until(pool, "SELECT final_number >= $1 FROM chain_state", int(big["blockNumber"], 16))
        for inv in invs:
            v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big["transactionHash"],
                                                                 invoice=inv["id"]))
            assert v["status"] == "wrong_amount", v
        assert await pool.fetchval("SELECT count(*) FROM payment_claims") == 0
        assert [await state_of(pool, f"amt-{a}") for a in (100, 101, 102)] == ["new"] * 3

        # The exact amount pays its invoice; the same transaction then verifies for nothing else.
        exact = token_transfer(url, token, p1, SHOP, 101)
        mine(url, 4)
        await until(pool, "SELECT state = 'paid' FROM invoices WHERE app_ref = 'amt-101'")
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=exact["transactionHash"],
                                                             invoice=invs[1]["id"]))
        assert (v["status"], v["amount"], v["invoice_state"]) == ("paid_final", "101", "paid")
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=exact["transactionHash"],
                                                             to=SHOP, asset="Token", min_amount=100,
                                                             claim_key="order-9"))
        assert v["status"] == "already_claimed" and v["claimed_by"] == invs[1]["id"]

        # An expectation with a claim key claims the unclaimed transfer once, for that key only.
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big["transactionHash"], to=SHOP,
                                                             asset="Token", min_amount=150, claim_key="order-1"))
        assert v["status"] == "paid_final" and v["claim"]["key"] == "order-1" and v["claim"]["new"] is True
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big["transactionHash"], to=SHOP,
                                                             asset="Token", min_amount=150, claim_key="order-1"))
        assert v["status"] == "paid_final" and v["claim"]["new"] is False
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big["transactionHash"], to=SHOP,
                                                             asset="Token", min_amount=150, claim_key="order-2"))
        assert v["status"] == "already_claimed" and v["claim_key"] == "order-1"
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=big["transactionHash"], to=SHOP,
                                                             asset="Token", min_amount=150))
        assert v["status"] == "already_claimed"


async def test_verify_claims_for_the_invoice_in_its_transaction(node, pool, tmp_path):  # noqa: F811
    """A payment indexed before its invoice existed (unfinal block) is claimed by verify-payment, once,
    also when two invoices ask for it at the same time."""
    url, token, settings, (p1,) = funded(node, tmp_path, 0xB1)
    async with following(settings, pool):
        mine(url, 5)
        await until(pool, "SELECT final_number IS NOT NULL FROM chain_state")
        paid = token_transfer(url, token, p1, SHOP, 300)
        n = int(paid["blockNumber"], 16)
        await until(pool, "SELECT cursor_number >= $1 FROM chain_state", n)
        first, _ = await create_invoice(pool, settings, req("first", 300, payer=p1))
        second, _ = await create_invoice(pool, settings, req("second", 300, payer=p1))
        assert first["after_block"] < n
        # Both invoices ask at once: exactly one gets the transfer.
        answers = await asyncio.gather(*(verify_payment(pool, settings, Expectation(
            chain=CHAIN, tx_hash=paid["transactionHash"], invoice=i["id"])) for i in (first, second, first, second)))
        winners = {a["claimed_by"] if a["status"] == "already_claimed" else None for a in answers} - {None}
        assert len(winners) == 1
        (winner,) = winners
        assert sorted(a["status"] for a in answers) == ["already_claimed", "already_claimed", "pending", "pending"]
        assert [a.get("claimed_now") for a in answers if a["status"] == "pending"].count(True) == 1
        assert await pool.fetchval("SELECT count(*) FROM invoice_payments") == 1
        first, second = (first, second) if winner == first["id"] else (second, first)
        mine(url, 4)
        await until(pool, "SELECT state = 'paid' FROM invoices WHERE id = $1", first["id"])
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=paid["transactionHash"],
                                                             invoice=first["id"]))
        assert (v["status"], v["claimed_now"]) == ("paid_final", False)
        # A paid invoice takes nothing more: another payment of the payer is not accepted for it.
        more = token_transfer(url, token, p1, SHOP, 300)
        mine(url, 4)
        await until(pool, "SELECT state = 'paid' FROM invoices WHERE id = $1", second["id"])
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=more["transactionHash"],
                                                             invoice=first["id"]))
        assert v["status"] == "already_claimed" and v["claimed_by"] == second["id"]
    assert await pool.fetchval("SELECT count(*) FROM invoice_payments") == 2


async def test_payer_invoices_fill_oldest_first(node, pool, tmp_path):  # noqa: F811
    url, token, settings, (p1, p2) = funded(node, tmp_path, 0xC1, 0xC2)
    a, _ = await create_invoice(pool, settings, req("a", 100, payer=p1))
    b, _ = await create_invoice(pool, settings, req("b", 100, payer=p1))
    c, _ = await create_invoice(pool, settings, req("c", 100, payer=p2))
    d, _ = await create_invoice(pool, settings, req("d", 100, payer=p2))
    async with following(settings, pool):
        # Pay A, then B before A's block is final.
        token_transfer(url, token, p1, SHOP, 100)
        await until(pool, "SELECT state = 'seen' FROM invoices WHERE app_ref = 'a'")
        token_transfer(url, token, p1, SHOP, 100)
        # An underpaid invoice takes only its shortfall of the next payment.
        token_transfer(url, token, p2, SHOP, 60)
        mine(url, 4)
        await until(pool, "SELECT state = 'underpaid' FROM invoices WHERE app_ref = 'c'")
        token_transfer(url, token, p2, SHOP, 100)
        mine(url, 4)
        await until(pool, "SELECT count(*) = 0 FROM invoices WHERE state IN ('new', 'seen')")
    got = {x["app_ref"]: (x["state"], x["received"]) for x in
           [await get_invoice(pool, i["id"]) for i in (a, b, c, d)]}
    assert got == {"a": ("paid", "100"), "b": ("paid", "100"), "c": ("paid", "100"), "d": ("underpaid", "60")}


async def test_first_backfill_does_not_pay_new_invoices_with_old_transfers(node, pool, tmp_path):  # noqa: F811
    """No final height is indexed yet (the follower never ran): the invoice is bounded by the chain's head."""
    url, token, settings, (p1,) = funded(node, tmp_path, 0xD1)
    old = token_transfer(url, token, p1, SHOP, 500)   # history, before the invoice
    mine(url, 5)
    inv, _ = await create_invoice(pool, settings, req("fresh", 500, payer=p1))
    assert inv["after_block"] >= int(old["blockNumber"], 16)
    async with following(settings, pool):
        mine(url, 1)
        await until(pool, "SELECT final_number >= $1 FROM chain_state", int(old["blockNumber"], 16))
        assert await state_of(pool, "fresh") == "new"
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=old["transactionHash"],
                                                             invoice=inv["id"]))
        assert v["status"] == "not_found"
        new = token_transfer(url, token, p1, SHOP, 500)
        mine(url, 4)
        await until(pool, "SELECT state = 'paid' FROM invoices WHERE app_ref = 'fresh'")
    assert await pool.fetchval("SELECT tx_hash FROM invoice_payments") == new["transactionHash"]


async def test_late_payment_indexed_in_catch_up_is_paid_late(node, pool, tmp_path):  # noqa: F811
    """A final catch-up range keeps only its last header: the claim must still be dated by its own block."""
    url, token, settings, (p1,) = funded(node, tmp_path, 0xE1)
    await create_invoice(pool, settings, req("late", 100, payer=p1, expires_in=600))
    async with following(settings, pool):
        mine(url, 5)
        await until(pool, "SELECT final_number >= 3 FROM chain_state")
    # While the follower is down: blocks before the expiry (the range that will carry the payment starts
    # among them), then the chain's clock passes the expiry, the payment comes, many blocks follow.
    mine(url, 20)
    rpc_sync(url, "evm_increaseTime", [3600])
    paid = token_transfer(url, token, p1, SHOP, 100)
    mine(url, 300)
    async with following(settings, pool):
        await until(pool, "SELECT state IN ('paid', 'paid_late') FROM invoices WHERE app_ref = 'late'")
    n = int(paid["blockNumber"], 16)
    block_time = int(rpc_sync(url, "eth_getBlockByNumber", [hex(n), False])["timestamp"], 16)
    row = await pool.fetchrow("SELECT late, extract(epoch FROM block_time)::bigint AS t FROM invoice_payments")
    assert (row["late"], row["t"]) == (True, block_time)
    assert await state_of(pool, "late") == "paid_late"
