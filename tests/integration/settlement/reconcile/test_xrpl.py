"""XRPL reconciliation against the project's standalone test ledger.

Deposits of XRP (with and without destination tag) and of an issued
currency reconcile to zero; ledgers validated after H change nothing at H;
a payment out of the wallet signed outside the daemon is caught next run
with the exact difference (its fee is booked, its amount is not).

No XRPL follower exists yet: `index` below feeds validated `account_tx`
entries through the indexer's XRPL decoder into the store, as the follower
will. Replace it with the follower once it lands.
"""

from __future__ import annotations

import pytest

pytest.importorskip("tests.xrpl_ledger")

from xrpl.asyncio.clients import AsyncJsonRpcClient  # noqa: E402
from xrpl.constants import CryptoAlgorithm  # noqa: E402
from xrpl.core.binarycodec import encode  # noqa: E402
from xrpl.models.amounts import IssuedCurrencyAmount  # noqa: E402
from xrpl.models.requests import AccountInfo, AccountTx, Ledger, SubmitOnly  # noqa: E402
from xrpl.models.transactions import (  # noqa: E402
    AccountSet,
    AccountSetAsfFlag,
    Payment,
    PaymentFlag,
    TrustSet,
)
from xrpl.transaction import sign  # noqa: E402
from xrpl.wallet import Wallet  # noqa: E402

from indexer.models import Cursor  # noqa: E402
from indexer.store import Store  # noqa: E402
from indexer.xrpl.decode import event_rows, normalize_entry  # noqa: E402
from settlement.ledger.balances import BalanceQuery, XrplBalanceReader  # noqa: E402
from settlement.ledger.books import balances_as_of
from settlement.ledger.hook import LedgerHook  # noqa: E402
from settlement.ledger.pauses import is_paused  # noqa: E402
from settlement.reconcile.runs import EXIT_MISMATCH, EXIT_OK, reconcile_once  # noqa: E402
from tests.support.config import make_settings  # noqa: E402
from tests.xrpl_ledger import GENESIS_SEED, start_ledger_server  # noqa: E402

XRP = 1_000_000
CHAIN = "xrpl"


def new_wallet() -> Wallet:
    return Wallet.create(algorithm=CryptoAlgorithm.SECP256K1)


async def submit(client, wallet: Wallet, tx_cls, **fields) -> None:
    info = await client.request(AccountInfo(account=wallet.address, ledger_index="current"))
    tx = tx_cls(account=wallet.address, sequence=info.result["account_data"]["Sequence"], fee="12", **fields)
    res = await client.request(SubmitOnly(tx_blob=encode(sign(tx, wallet).to_xrpl())))
    assert res.result["engine_result"] == "tesSUCCESS", res.result


async def validated(client) -> tuple[int, str]:
    res = await client.request(Ledger(ledger_index="validated"))
    return res.result["ledger_index"], res.result["ledger_hash"]


async def index(client, store: Store, wallet: str, start: int) -> int:
    """Commit ledgers [start, validated] for one watched account, decoded by the indexer's XRPL decoder."""
    top, top_hash = await validated(client)
    res = await client.request(AccountTx(account=wallet, ledger_index_min=start, ledger_index_max=top, forward=True))
    rows = []
    for entry in res.result["transactions"]:
        raw = normalize_entry(entry)
        rows += event_rows(CHAIN, raw, [wallet], raw.ledger_hash)
    st = await store.load_state()
    await store.commit_range(from_block=start, to_block=top, events=rows, expected=st.cursor,
                             cursor=Cursor(top, top_hash), final_number=top)
    return top


@pytest.fixture
async def ledger():
    server, _ = await start_ledger_server()
    try:
        yield server
    finally:
        await server.stop()


async def test_xrpl_deposits_reconcile_and_back_door_payment_is_caught(ledger, pool, tmp_path):
    client = AsyncJsonRpcClient(ledger.http_url)
    genesis = Wallet.from_seed(GENESIS_SEED, algorithm=CryptoAlgorithm.SECP256K1)
    hot, issuer, d1, d2 = (new_wallet() for _ in range(4))
    outsider = new_wallet()
    for w, amount in ((hot, 1000), (issuer, 1000), (d1, 500), (d2, 500)):
        await submit(client, genesis, Payment, destination=w.address, amount=str(amount * XRP))
    ledger.accept()
    usd = lambda v: IssuedCurrencyAmount(currency="USD", issuer=issuer.address, value=v)  # noqa: E731
    await submit(client, issuer, AccountSet, set_flag=AccountSetAsfFlag.ASF_DEFAULT_RIPPLE)
    await submit(client, hot, TrustSet, limit_amount=usd("1000000"))
    await submit(client, d1, TrustSet, limit_amount=usd("1000000"))
    ledger.accept()
    await submit(client, issuer, Payment, destination=d1.address, amount=usd("100"))
    ledger.accept()
    await submit(client, d1, Payment, destination=hot.address, amount=usd("5"))  # before the books open
    ledger.accept()
    start = (await validated(client))[0] + 1

    settings = make_settings(tmp_path, {
        "chains": [{"name": CHAIN, "preset": "xrpl", "rpc": [ledger.http_url],
                    "wallets": [{"name": "hot", "address": hot.address, "assets": ["native", "USD"]}]}],
        "ledger": {"assets": [{"chain": CHAIN, "name": "USD", "currency": "USD", "issuer": issuer.address,
                               "decimals": 6}]},
    })
    store = Store(pool, CHAIN, [LedgerHook(settings)])
    await store.ensure_chain("xrpl", 0)

    await submit(client, d1, Payment, destination=hot.address, amount=str(25 * XRP), destination_tag=42)
    await submit(client, d2, Payment, destination=hot.address, amount=str(10 * XRP))
    ledger.accept()
    await submit(client, d1, Payment, destination=hot.address, amount=usd("12.5"), destination_tag=7)
    # A partial payment: Amount says 50 USD, 2 USD arrive. Only delivered_amount counts.
    await submit(client, d1, Payment, destination=hot.address, amount=usd("50"), send_max=usd("2"),
                 flags=PaymentFlag.TF_PARTIAL_PAYMENT, destination_tag=7)
    await submit(client, hot, AccountSet)  # the wallet's own transaction: its fee is booked
    ledger.accept()
    h = await index(client, store, hot.address, start)

    report = await reconcile_once(settings, pool)
    assert report.exit_code == EXIT_OK, report.to_json()
    res = {r.asset: r for r in report.runs[0].results}
    reader = XrplBalanceReader([ledger.http_url], chain=CHAIN)
    nat_row = {"id": f"{CHAIN}:native", "kind": "native"}
    usd_row = {"id": f"{CHAIN}:USD", "kind": "xrpl_iou", "currency": "USD", "issuer": issuer.address, "decimals": 6}
    on_chain = await reader.balances(h, [BalanceQuery(hot.address, nat_row), BalanceQuery(hot.address, usd_row)])
    assert (res[f"{CHAIN}:native"].actual, res[f"{CHAIN}:USD"].actual) == tuple(on_chain)
    assert res[f"{CHAIN}:USD"].expected == res[f"{CHAIN}:USD"].actual == 19_500_000  # 5 + 12.5 + 2 USD, 6 decimals
    assert res[f"{CHAIN}:native"].difference == 0
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, CHAIN, h)
    assert b[(f"user:{CHAIN}:tag:42", f"{CHAIN}:native")] == -25 * XRP
    assert b[(f"user:{CHAIN}:{d2.address}", f"{CHAIN}:native")] == -10 * XRP
    assert b[(f"user:{CHAIN}:tag:7", f"{CHAIN}:USD")] == -14_500_000
    assert b[(f"fee:{CHAIN}", f"{CHAIN}:native")] == 12

    # Signed with the wallet's key outside the daemon; not indexed yet: H and its figures stay.
    await submit(client, hot, Payment, destination=outsider.address, amount=str(3 * XRP))
    ledger.accept()
    again = await reconcile_once(settings, pool)
    assert again.exit_code == EXIT_OK and again.runs[0].height == h
    assert [(r.asset, r.expected, r.actual) for r in again.runs[0].results] == [
        (r.asset, r.expected, r.actual) for r in report.runs[0].results]

    h2 = await index(client, store, hot.address, h + 1)
    report = await reconcile_once(settings, pool)
    assert report.exit_code == EXIT_MISMATCH and report.runs[0].height == h2
    res = {r.asset: r for r in report.runs[0].results}
    assert res[f"{CHAIN}:native"].difference == -3 * XRP
    assert res[f"{CHAIN}:USD"].difference == 0
    newest = res[f"{CHAIN}:native"].movements[0]
    assert (newest["event"], newest["args"]["destination"], newest["booked_by"]) == ("Payment", outsider.address, ["xrpl.fee"])
    async with pool.acquire() as conn:
        assert await is_paused(conn, f"{CHAIN}:native") and not await is_paused(conn, f"{CHAIN}:USD")

    # Reading at a ledger the node does not have is an error, never a guess.
    with pytest.raises(Exception, match="lgrNotFound|ledgerNotFound"):
        await reader.balances(h2 + 100, [BalanceQuery(hot.address, nat_row)])
