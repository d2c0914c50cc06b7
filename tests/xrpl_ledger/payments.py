"""Payment: XRP direct, and issued currencies over one issuer (no order books).

Follows rippled's Payment.cpp checks and result codes for what is modelled:
malformed combinations (temBAD_SEND_XRP_*, temREDUNDANT, temBAD_AMOUNT),
destinations (tecNO_DST, tecNO_DST_INSUF_XRP, telNO_DST_PARTIAL,
tecDST_TAG_NEEDED), the XRP reserve (tecUNFUNDED_PAYMENT) and issued
currencies through their issuer's trust lines (tecPATH_DRY, tecPATH_PARTIAL,
partial payments with tfPartialPayment and DeliverMin).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from .amounts import IOU, ZERO, AmountError, canonical, parse_amount
from .state import LSF_DEFAULT_RIPPLE, LSF_REQUIRE_DEST_TAG, AccountRoot, Sandbox

TF_NO_RIPPLE_DIRECT = 0x00010000
TF_PARTIAL_PAYMENT = 0x00020000
TF_LIMIT_QUALITY = 0x00040000
PAYMENT_FLAGS = TF_NO_RIPPLE_DIRECT | TF_PARTIAL_PAYMENT | TF_LIMIT_QUALITY


class TxFail(Exception):
    """Stop applying with this result code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _amounts(tx: dict) -> tuple[int | IOU, int | IOU | None, int | IOU | None]:
    try:
        amount = parse_amount(tx.get("Amount"), "Amount")
        send_max = parse_amount(tx["SendMax"], "SendMax") if "SendMax" in tx else None
        deliver_min = parse_amount(tx["DeliverMin"], "DeliverMin") if "DeliverMin" in tx else None
    except AmountError as exc:
        raise TxFail(exc.code) from None
    return amount, send_max, deliver_min


def _positive(a: int | IOU | None) -> bool:
    return a is None or (a > 0 if isinstance(a, int) else a.value > 0)


def preflight(tx: dict) -> None:
    flags = tx.get("Flags", 0)
    if "Destination" not in tx:
        raise TxFail("temDST_NEEDED")
    amount, send_max, deliver_min = _amounts(tx)
    if not (_positive(amount) and _positive(send_max) and _positive(deliver_min)):
        raise TxFail("temBAD_AMOUNT")
    partial = bool(flags & TF_PARTIAL_PAYMENT)
    src_xrp = isinstance(send_max if send_max is not None else amount, int)
    xrp_direct = src_xrp and isinstance(amount, int)
    same_currency = (isinstance(amount, int) and src_xrp) or (
        isinstance(amount, IOU) and isinstance(send_max or amount, IOU) and (send_max or amount).currency == amount.currency)
    if tx["Account"] == tx["Destination"] and same_currency and not tx.get("Paths"):
        raise TxFail("temREDUNDANT")
    if xrp_direct and send_max is not None:
        raise TxFail("temBAD_SEND_XRP_MAX")
    if xrp_direct and tx.get("Paths"):
        raise TxFail("temBAD_SEND_XRP_PATHS")
    if xrp_direct and partial:
        raise TxFail("temBAD_SEND_XRP_PARTIAL")
    if xrp_direct and flags & TF_LIMIT_QUALITY:
        raise TxFail("temBAD_SEND_XRP_LIMIT")
    if xrp_direct and flags & TF_NO_RIPPLE_DIRECT:
        raise TxFail("temBAD_SEND_XRP_NO_DIRECT")
    if deliver_min is not None:
        if not partial or type(deliver_min) is not type(amount):
            raise TxFail("temBAD_AMOUNT")
        if isinstance(amount, IOU) and (deliver_min.currency != amount.currency or deliver_min.value > amount.value):
            raise TxFail("temBAD_AMOUNT")
        if isinstance(amount, int) and deliver_min > amount:
            raise TxFail("temBAD_AMOUNT")


def preclaim(sb: Sandbox, tx: dict, reserve_base: int) -> None:
    amount, _, _ = _amounts(tx)
    dst = sb.account(tx["Destination"])
    if dst is None:
        if not isinstance(amount, int):
            raise TxFail("tecNO_DST")
        if tx.get("Flags", 0) & TF_PARTIAL_PAYMENT:
            raise TxFail("telNO_DST_PARTIAL")
        if amount < reserve_base:
            raise TxFail("tecNO_DST_INSUF_XRP")
    elif dst.flags & LSF_REQUIRE_DEST_TAG and "DestinationTag" not in tx:
        raise TxFail("tecDST_TAG_NEEDED")


def apply(sb: Sandbox, tx: dict, *, prior_balance: int, fee: int, reserve: int, ledger_seq: int) -> int | IOU:
    """Move the funds; return what was delivered. `reserve` is the sender's current reserve."""
    amount, send_max, deliver_min = _amounts(tx)
    if isinstance(amount, int) and (send_max is None or isinstance(send_max, int)):
        return _xrp_direct(sb, tx, amount, prior_balance, fee, reserve, ledger_seq)
    if isinstance(amount, int) or isinstance(send_max, int) or (send_max is not None and send_max.currency != amount.currency):
        # Cross-currency needs order books or AMM pools; this ledger has none.
        raise TxFail("tecPATH_DRY")
    return _issued(sb, tx, amount, send_max, deliver_min)


def _xrp_direct(sb: Sandbox, tx: dict, amount: int, prior: int, fee: int, reserve: int, ledger_seq: int) -> int:
    src = sb.account(tx["Account"])
    if prior < amount + max(reserve, fee):
        raise TxFail("tecUNFUNDED_PAYMENT")
    sb.put_account(replace(src, balance=src.balance - amount))
    dst = sb.account(tx["Destination"])
    if dst is None:
        # DeletableAccounts: a new account's Sequence starts at the ledger index.
        sb.put_account(AccountRoot(tx["Destination"], amount, ledger_seq))
    else:
        sb.put_account(replace(dst, balance=dst.balance + amount))
    return amount


def _issued(sb: Sandbox, tx: dict, amount: IOU, send_max: IOU | None, deliver_min: IOU | None) -> IOU:
    src, dst, issuer = tx["Account"], tx["Destination"], amount.issuer
    cur = amount.currency
    if sb.account(issuer) is None:
        raise TxFail("tecPATH_DRY")
    big = Decimal("1e97")
    # What the sender can spend: what the issuer owes it, plus credit the issuer extended.
    if src == issuer:
        can_send = big
    else:
        line = sb.line(src, issuer, cur)
        can_send = max(ZERO, line.holds(src) + line.limit(issuer)) if line else ZERO
    # What the receiver still accepts under the limit it set for the issuer.
    if dst == issuer:
        can_take = big
    else:
        line = sb.line(dst, issuer, cur)
        can_take = max(ZERO, line.limit(dst) - line.holds(dst)) if line else ZERO
    if src != issuer and dst != issuer:
        issuer_root = sb.account(issuer)
        if not issuer_root.flags & LSF_DEFAULT_RIPPLE:
            can_send = ZERO  # the issuer does not let balances ripple between holders
    cap = min(can_send, can_take, send_max.value if send_max is not None else big)
    if cap >= amount.value:
        delivered = amount.value
    elif tx.get("Flags", 0) & TF_PARTIAL_PAYMENT:
        delivered = canonical(cap)
        if delivered <= 0:
            raise TxFail("tecPATH_DRY")
        if deliver_min is not None and delivered < deliver_min.value:
            raise TxFail("tecPATH_PARTIAL")
    else:
        raise TxFail("tecPATH_PARTIAL" if cap > 0 else "tecPATH_DRY")
    if src != issuer:
        line = sb.line(src, issuer, cur)
        sb.put_line(line.with_holding(src, canonical(line.holds(src) - delivered)))
    if dst != issuer:
        line = sb.line(dst, issuer, cur)
        sb.put_line(line.with_holding(dst, canonical(line.holds(dst) + delivered)))
    return IOU(cur, issuer, delivered)
