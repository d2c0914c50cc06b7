"""verify-payment's verdict over a transaction's transfers (pure)."""

from __future__ import annotations

from settlement.invoices.verify import Transfer, classify
from settlement.ledger.rules import AssetSpec

TOKEN = AssetSpec("c:Token", "c", "Token", "erc20", contract="0x" + "77" * 20)
NATIVE = AssetSpec("c:native", "c", "native", "native")
USD = AssetSpec("x:USD", "x", "USD", "xrpl_iou", currency="USD", issuer="rIssuer", decimals=6)
SHOP, PAYER = "0x" + "5b" * 20, "0x" + "a1" * 20


def t(value="100", recipient=SHOP, payer=PAYER, kind="erc20", contract=TOKEN.contract, **kw) -> Transfer:
    return Transfer(kw.pop("log_index", 0), kind, contract, kw.pop("currency", None), kw.pop("issuer", None),
                    recipient, payer, value, **kw)


def verdict(transfers, spec=TOKEN, min_amount=100, final=True, **kw):
    args = dict(to=SHOP, spec=spec, min_amount=min_amount, tag=None, memo=None, payer=None, invoice=None,
                final=final, confirmations=3)
    args.update(kw)
    return classify(transfers, **args)


def test_verdicts():
    assert verdict([])["status"] == "not_found"
    assert verdict([t(recipient="0x" + "99" * 20)])["status"] == "wrong_recipient"
    assert verdict([t()], spec=NATIVE)["status"] == "wrong_asset"
    assert verdict([t(contract="0x" + "66" * 20)])["status"] == "wrong_asset"  # same symbol, other contract
    assert verdict([t()], payer="0x" + "b0" * 20)["status"] == "wrong_payer"
    v = verdict([t(claimed_by="inv_a")], invoice="inv_b")
    assert (v["status"], v["claimed_by"]) == ("already_claimed", "inv_a")
    assert verdict([t(claimed_by="inv_a")], invoice="inv_a")["status"] == "paid_final"
    v = verdict([t()], final=False)
    assert (v["status"], v["confirmations"]) == ("pending", 3)
    v = verdict([t("60")])
    assert (v["status"], v["shortfall"], v["amount"]) == ("underpaid", "40", "60")
    assert verdict([t("60", log_index=0), t("40", log_index=1)])["status"] == "paid_final"


def test_xrpl_tag_memo_and_delivered_units():
    iou = {"currency": "USD", "issuer": "rIssuer", "value": "0.001"}
    x = t(iou, recipient="rShop", payer="rAlice", kind="xrpl_iou", contract=None, currency="USD", issuer="rIssuer",
          destination_tag="41", memos=[{"data": "order-1"}])
    v = verdict([x], spec=USD, to="rShop", min_amount=1000 * 10**6, tag=41)
    assert (v["status"], v["amount"], v["shortfall"]) == ("underpaid", "1000", str(1000 * 10**6 - 1000))
    assert verdict([x], spec=USD, to="rShop", tag=42)["status"] == "wrong_recipient"
    assert verdict([x], spec=USD, to="rShop", memo="order-2")["status"] == "wrong_recipient"
    assert verdict([x], spec=USD, to="rShop", memo="order-1", min_amount=1000)["status"] == "paid_final"
