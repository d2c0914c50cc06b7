"""Invoices on anvil: the real EVM follower with the daemon's hooks matches
ERC-20 and native payments from indexed data, books them to the invoice's
account, and a reorg reverts a claimed payment.

Covers: exact, under, over and late payments; an expired invoice; one
transfer offered for two invoices settles one; a native payment by unique
amount; a stranger's payment neither settles nor verifies for an invoice
bound to another payer; a reorged-out payment moves its invoice to
`reverted`; every state change is a feed_outbox row.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from daemon.followers import default_hooks
from indexer.evm.follower import EvmFollower
from settlement.invoices.invoices import InvoiceError, InvoiceRequest, create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment
from settlement.ledger.books import balances_as_of
from tests.integration.settlement.invoices.support import feed_states, state_of, until
from tests.support.anvil import Anvil, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import DEPLOYER, calldata, deploy, deploy_token, send, token_transfer

CHAIN = "local"
SHOP = "0x" + "5b" * 20
APP = "user:app-1"


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


def payer(url: str, n: int) -> str:
    """An impersonated, funded account: anvil signs for it."""
    addr = "0x" + f"{n:040x}"
    rpc_sync(url, "anvil_impersonateAccount", [addr])
    rpc_sync(url, "anvil_setBalance", [addr, hex(10**20)])
    return addr


def mine(url: str, n: int = 1) -> None:
    rpc_sync(url, "anvil_mine", [hex(n)])


@contextlib.asynccontextmanager
async def following(settings, pool):
    stop = asyncio.Event()
    follower = EvmFollower(settings.chain(CHAIN), pool, hooks=default_hooks(settings), base_dir=settings.base_dir,
                           sources=_native_sources(settings))
    task = asyncio.create_task(follower.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await follower.close()


def _native_sources(settings):
    from indexer.evm.native_scan import NativeTransferSource

    return [NativeTransferSource(CHAIN, [SHOP])]


def settings_for(tmp_path, url: str, token: str):
    return make_settings(tmp_path, {"chains": [evm_chain(
        CHAIN, url, token, finality_depth=3, poll_interval=0.05,
        wallets=[{"name": "shop", "address": SHOP, "assets": ["Token", "native"]}])]})


def req(app_ref: str, amount: int, method: str = "payer", **kw) -> InvoiceRequest:
    return InvoiceRequest(chain=CHAIN, asset=kw.pop("asset", "Token"), amount=amount, wallet=SHOP, app_ref=app_ref,
                          account=APP, match_method=method, expires_in=kw.pop("expires_in", 3600), **kw)


async def test_payments_match_book_and_verify(node, pool, tmp_path):
    url = node.url
    token = deploy_token(url)
    settings = settings_for(tmp_path, url, token)
    p1, p2, p3, stranger, bound = (payer(url, n) for n in (0xA1, 0xA2, 0xA3, 0xBAD, 0xB0))
    for p in (p1, p2, p3, stranger):
        token_transfer(url, token, DEPLOYER, p, 10**6)

    twin_a, _ = await create_invoice(pool, settings, req("twin-a", 1000, payer=p1))
    twin_b, _ = await create_invoice(pool, settings, req("twin-b", 1000, payer=p1))
    exact, _ = await create_invoice(pool, settings, req("exact", 777, "amount"))
    under, _ = await create_invoice(pool, settings, req("under", 500, payer=p2))
    over, _ = await create_invoice(pool, settings, req("over", 500, payer=p3))
    native, _ = await create_invoice(pool, settings, req("native", 12345, "amount", asset="native"))
    bound_inv, _ = await create_invoice(pool, settings, req("bound", 300, payer=bound))
    # Validation names the field.
    with pytest.raises(InvoiceError) as e:
        await create_invoice(pool, settings, req("bad", 5, "destination_tag", destination_tag=1))
    assert e.value.field == "match_method"
    with pytest.raises(InvoiceError) as e:
        await create_invoice(pool, settings, req("twin-a", 999, payer=p1))
    assert e.value.field == "app_ref" and e.value.code == "conflict"
    with pytest.raises(InvoiceError) as e:
        await create_invoice(pool, settings, req("dup-amount", 777, "amount"))
    assert e.value.field == "amount"

    async with following(settings, pool):
        one = token_transfer(url, token, p1, SHOP, 1000)          # offered to twin-a and twin-b
        token_transfer(url, token, p2, SHOP, 777)                 # unique amount: exact
        token_transfer(url, token, p2, SHOP, 400)                 # under by 100
        token_transfer(url, token, p3, SHOP, 600)                 # over by 100
        send(url, p3, SHOP, value=12345)                          # native, unique amount
        strange = token_transfer(url, token, stranger, SHOP, 300)  # not from the bound payer
        await until(pool, "SELECT count(*) = 5 FROM invoice_payments")  # the stranger's is claimed by none
        assert await state_of(pool, "native") == "seen"           # its block is not final yet (depth 3)
        mine(url, 4)
        await until(pool, "SELECT count(*) = 0 FROM invoices WHERE state = 'seen'")

        assert await state_of(pool, "twin-a") == "paid"
        assert await state_of(pool, "twin-b") == "new"            # the one transfer settled one invoice
        assert await state_of(pool, "exact") == "paid"
        u = await get_invoice(pool, under["id"])
        assert (u["state"], u["received"], u["shortfall"]) == ("underpaid", "400", "100")
        o = await get_invoice(pool, over["id"])
        assert (o["state"], o["received"], o["excess"]) == ("overpaid", "600", "100")
        assert await state_of(pool, "native") == "paid"
        assert await state_of(pool, "bound") == "new"             # a stranger's payment does not settle it
        assert await feed_states(pool, native["id"]) == ["new", "seen", "paid"]

        # The invoice's account holds what arrived; the senders' accounts were debited back.
        async with pool.acquire() as conn:
            b = await balances_as_of(conn, CHAIN, 10**9)
        assert b[(APP, f"{CHAIN}:Token")] == -(1000 + 777 + 400 + 600)
        assert b[(APP, f"{CHAIN}:native")] == -12345
        assert b.get((f"user:{CHAIN}:{p1}", f"{CHAIN}:Token"), 0) == 0
        assert b[(f"user:{CHAIN}:{stranger}", f"{CHAIN}:Token")] == -300  # unclaimed: stays the sender's
        assert sum(v for (_, a), v in b.items() if a == f"{CHAIN}:Token") == 0

        # verify-payment from the indexed data.
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=strange["transactionHash"],
                                                             invoice=bound_inv["id"]))
        assert v["status"] == "wrong_payer"
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=one["transactionHash"],
                                                             invoice=twin_b["id"]))
        assert v["status"] == "already_claimed" and v["claimed_by"] == twin_a["id"]
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=one["transactionHash"],
                                                             invoice=twin_a["id"]))
        assert v["status"] == "paid_final" and v["amount"] == "1000"
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=one["transactionHash"], to=SHOP,
                                                             asset="native", min_amount=1))
        assert v["status"] == "wrong_asset" and "internal calls" in v["note"]
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=one["transactionHash"],
                                                             to="0x" + "99" * 20, asset="Token", min_amount=1))
        assert v["status"] == "wrong_recipient"
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash="0x" + "12" * 32, to=SHOP,
                                                             asset="Token", min_amount=1))
        assert v["status"] == "not_found"
        # A transaction not indexed (to an unwatched address) is read from the chain.
        other = "0x" + "77" * 20
        t = token_transfer(url, token, p2, other, 50)
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=t["transactionHash"], to=other,
                                                             asset="Token", min_amount=60))
        assert v["status"] in ("underpaid", "pending") and v["source"] == "chain"
        mine(url, 4)
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=t["transactionHash"], to=other,
                                                             asset="Token", min_amount=60))
        assert v["status"] == "underpaid" and v["amount"] == "50"
        failed = send(url, p2, token, "0xdeadbeef", gas=100_000, wait=False)
        await asyncio.sleep(0.2)
        v = await verify_payment(pool, settings, Expectation(chain=CHAIN, tx_hash=failed["transactionHash"], to=other,
                                                             asset="Token", min_amount=1))
        assert v["status"] == "failed_tx"


async def test_late_and_expired(node, pool, tmp_path):
    url = node.url
    token = deploy_token(url)
    settings = settings_for(tmp_path, url, token)
    p1 = payer(url, 0xC1)
    token_transfer(url, token, DEPLOYER, p1, 10**6)
    late, _ = await create_invoice(pool, settings, req("late", 100, payer=p1, expires_in=60))
    idle, _ = await create_invoice(pool, settings, req("idle", 100, "amount", expires_in=60))
    async with following(settings, pool):
        mine(url, 1)
        await until(pool, "SELECT cursor_number IS NOT NULL FROM chain_state")
        assert await state_of(pool, "idle") == "new"
        # The chain's clock passes both expiries; then the payment comes.
        rpc_sync(url, "evm_increaseTime", [3600])
        mine(url, 1)
        await until(pool, "SELECT state = 'expired' FROM invoices WHERE app_ref = 'idle'")
        token_transfer(url, token, p1, SHOP, 100)
        mine(url, 4)
        await until(pool, "SELECT state = 'paid_late' FROM invoices WHERE app_ref = 'late'")
    states = await feed_states(pool, late["id"])
    assert states[:2] == ["new", "expired"] and states[-1] == "paid_late"  # `seen` between if not final at once
    assert await feed_states(pool, idle["id"]) == ["new", "expired"]


async def test_reorged_out_payment_reverts_its_invoice(node, pool, tmp_path):
    url = node.url
    token = deploy_token(url)
    settings = settings_for(tmp_path, url, token)
    p1 = payer(url, 0xD1)
    token_transfer(url, token, DEPLOYER, p1, 10**6)
    inv, _ = await create_invoice(pool, settings, req("reorged", 100, payer=p1))
    async with following(settings, pool):
        token_transfer(url, token, p1, SHOP, 100)
        await until(pool, "SELECT state = 'seen' FROM invoices WHERE app_ref = 'reorged'")
        # Replace the payment's block with an empty one, then move on.
        rpc_sync(url, "anvil_reorg", [1, []])
        mine(url, 1)
        await until(pool, "SELECT state = 'reverted' FROM invoices WHERE app_ref = 'reorged'")
        assert await pool.fetchval("SELECT count(*) FROM invoice_payments") == 0
        async with pool.acquire() as conn:
            b = await balances_as_of(conn, CHAIN, 10**9)
        assert b.get((APP, f"{CHAIN}:Token"), 0) == 0
        mine(url, 4)
        await asyncio.sleep(0.5)
        got = await get_invoice(pool, inv["id"])
    assert got["state"] == "reverted" and got["received"] == "0"
    assert await feed_states(pool, inv["id"]) == ["new", "seen", "reverted"]


async def test_fee_on_transfer_token_credits_what_arrived(node, pool, tmp_path):
    url = node.url
    collector = "0x" + "c0" * 20
    token = deploy(url, "TestFeeToken", collector, 100)  # 1% stays with the collector
    settings = settings_for(tmp_path, url, token)
    p1 = payer(url, 0xE1)
    send(url, DEPLOYER, token, calldata("mint(address,uint256)", ["address", "uint256"], [p1, 10**6]))
    inv, _ = await create_invoice(pool, settings, req("fee", 1000, payer=p1))
    async with following(settings, pool):
        token_transfer(url, token, p1, SHOP, 1000)
        mine(url, 4)
        await until(pool, "SELECT state = 'underpaid' FROM invoices WHERE app_ref = 'fee'")
    got = await get_invoice(pool, inv["id"])
    assert (got["received"], got["shortfall"]) == ("990", "10")
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, CHAIN, 10**9)
    assert b[(APP, f"{CHAIN}:Token")] == -990
