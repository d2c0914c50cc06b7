"""Apply one decoded, signature-checked transaction to a ledger state.

The order of checks is rippled's Transactor: preflight (tem, tel: the
transaction alone), preclaim (ter, tef, tec: against the ledger: account,
Sequence, LastLedgerSequence, fee, signing key, then the type's own rules),
then apply: the fee is burnt and the Sequence consumed, and the type's
changes are kept on tes or thrown away on tec (fee and Sequence stay).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from xrpl.core.keypairs import derive_classic_address

from . import payments
from .amounts import IOU, AmountError, amount_json, parse_iou
from .payments import PAYMENT_FLAGS, TF_PARTIAL_PAYMENT, TxFail
from .state import (
    LSF_DEFAULT_RIPPLE,
    LSF_REQUIRE_DEST_TAG,
    LedgerState,
    Sandbox,
    TrustLine,
    order_pair,
    touched_accounts,
)

TF_FULLY_CANONICAL_SIG = 0x80000000
UNIVERSAL_FLAGS = TF_FULLY_CANONICAL_SIG
TRUSTSET_FLAGS = 0x00010000 | 0x00020000 | 0x00040000 | 0x00100000 | 0x00200000
ACCOUNTSET_FLAGS = 0x00010000 | 0x00020000 | 0x00040000 | 0x00080000 | 0x00100000 | 0x00200000
TF_SET_NO_RIPPLE = 0x00020000
TF_CLEAR_NO_RIPPLE = 0x00040000
TF_REQUIRE_DEST_TAG = 0x00010000
TF_OPTIONAL_DEST_TAG = 0x00020000
ASF_REQUIRE_DEST = 1
ASF_DEFAULT_RIPPLE = 8
TYPE_FLAGS = {"Payment": PAYMENT_FLAGS, "TrustSet": TRUSTSET_FLAGS, "AccountSet": ACCOUNTSET_FLAGS}


@dataclass(frozen=True)
class Fees:
    """Current mainnet values: 10 drops, 1 XRP base reserve, 0.2 XRP per owned object."""

    base_fee: int = 10
    reserve_base: int = 1_000_000
    reserve_inc: int = 200_000

    def reserve(self, owner_count: int) -> int:
        return self.reserve_base + self.reserve_inc * owner_count


@dataclass
class Outcome:
    result: str
    meta: dict | None  # None when nothing was applied (tem, tef, tel, ter)
    accounts: frozenset[str]
    delivered: int | IOU | None = None


def apply_tx(state: LedgerState, tx: dict, tx_hash: str, *, ledger_seq: int, fees: Fees, network_id: int) -> Outcome:
    """Apply `tx` to `state` in place when its result is tes or tec."""
    try:
        _preflight(tx, network_id)
        sb = Sandbox(state)
        acct = _preclaim_common(sb, tx, ledger_seq, fees)
        fee = int(tx["Fee"])
        charged = replace(acct, balance=acct.balance - fee, sequence=acct.sequence + 1)
    except TxFail as f:
        return Outcome(f.code, None, frozenset())
    delivered = None
    try:
        _preclaim_type(sb, tx, fees)
        sb.put_account(charged)
        delivered = _do_apply(sb, tx, acct.balance, fee, fees, ledger_seq)
        result = "tesSUCCESS"
    except TxFail as f:
        if not f.code.startswith("tec"):
            return Outcome(f.code, None, frozenset())
        result = f.code
        sb = Sandbox(state)
        sb.put_account(charged)
        delivered = None
    nodes = sb.commit(state, tx_hash, ledger_seq)
    state.total_drops -= fee
    meta: dict = {"AffectedNodes": nodes, "TransactionResult": result}
    if result == "tesSUCCESS" and tx["TransactionType"] == "Payment" and tx.get("Flags", 0) & TF_PARTIAL_PAYMENT:
        meta["DeliveredAmount"] = amount_json(delivered)
    return Outcome(result, meta, touched_accounts(nodes), delivered)


def _preflight(tx: dict, network_id: int) -> None:
    fee = tx.get("Fee")
    if not isinstance(fee, str) or not fee.isdigit():
        raise TxFail("temBAD_FEE")
    if not isinstance(tx.get("Sequence"), int):
        raise TxFail("temMALFORMED")
    net = tx.get("NetworkID")
    if network_id <= 1024 and net is not None:
        raise TxFail("telNETWORK_ID_MAKES_TX_NON_CANONICAL")
    if network_id > 1024 and net is None:
        raise TxFail("telREQUIRES_NETWORK_ID")
    if network_id > 1024 and net != network_id:
        raise TxFail("telWRONG_NETWORK")
    kind = tx.get("TransactionType")
    if kind not in TYPE_FLAGS or "TicketSequence" in tx or "Signers" in tx:
        raise TxFail("temDISABLED")
    if tx.get("Flags", 0) & ~(TYPE_FLAGS[kind] | UNIVERSAL_FLAGS):
        raise TxFail("temINVALID_FLAG")
    if kind == "Payment":
        payments.preflight(tx)
    elif kind == "TrustSet":
        try:
            limit = parse_iou(tx.get("LimitAmount"), "LimitAmount")
        except AmountError as exc:
            raise TxFail("temBAD_CURRENCY" if exc.code == "temBAD_CURRENCY" else "temBAD_LIMIT") from None
        if limit.value < 0:
            raise TxFail("temBAD_LIMIT")
        if limit.issuer == tx["Account"]:
            raise TxFail("temDST_IS_SRC")
    else:
        flags = tx.get("Flags", 0)
        if flags & TF_REQUIRE_DEST_TAG and flags & TF_OPTIONAL_DEST_TAG:
            raise TxFail("temINVALID_FLAG")
        if "SetFlag" in tx and tx.get("SetFlag") == tx.get("ClearFlag"):
            raise TxFail("temINVALID_FLAG")


def _preclaim_common(sb: Sandbox, tx: dict, ledger_seq: int, fees: Fees):
    acct = sb.account(tx["Account"])
    if acct is None:
        raise TxFail("terNO_ACCOUNT")
    if tx["Sequence"] < acct.sequence:
        raise TxFail("tefPAST_SEQ")
    if tx["Sequence"] > acct.sequence:
        raise TxFail("terPRE_SEQ")
    lls = tx.get("LastLedgerSequence")
    if lls is not None and ledger_seq > lls:
        raise TxFail("tefMAX_LEDGER")
    fee = int(tx["Fee"])
    if fee < fees.base_fee:
        raise TxFail("telINSUF_FEE_P")
    if fee > acct.balance:
        raise TxFail("terINSUF_FEE_B")
    if derive_classic_address(tx["SigningPubKey"]) != tx["Account"]:
        raise TxFail("tefBAD_AUTH")  # only master keys: no regular keys, no multi-signing
    return acct


def _preclaim_type(sb: Sandbox, tx: dict, fees: Fees) -> None:
    if tx["TransactionType"] == "Payment":
        payments.preclaim(sb, tx, fees.reserve_base)
    elif tx["TransactionType"] == "TrustSet":
        if sb.account(tx["LimitAmount"]["issuer"]) is None:
            raise TxFail("tecNO_DST")


def _do_apply(sb: Sandbox, tx: dict, prior: int, fee: int, fees: Fees, ledger_seq: int):
    acct = sb.account(tx["Account"])
    kind = tx["TransactionType"]
    if kind == "Payment":
        return payments.apply(sb, tx, prior_balance=prior, fee=fee, reserve=fees.reserve(acct.owner_count),
                              ledger_seq=ledger_seq)
    if kind == "TrustSet":
        _trust_set(sb, tx, prior, fees)
    else:
        _account_set(sb, tx)
    return None


def _trust_set(sb: Sandbox, tx: dict, prior: int, fees: Fees) -> None:
    me = tx["Account"]
    limit = parse_iou(tx["LimitAmount"], "LimitAmount")
    issuer, cur = limit.issuer, limit.currency
    flags = tx.get("Flags", 0)
    line = sb.line(me, issuer, cur)
    acct = sb.account(me)
    if line is None:
        if limit.value == 0 and not flags & TF_SET_NO_RIPPLE:
            raise TxFail("tecNO_LINE_REDUNDANT")
        # rippled lets an account's first two objects ride on the base reserve.
        needed = 0 if acct.owner_count < 2 else fees.reserve(acct.owner_count + 1)
        if prior < needed:
            raise TxFail("tecNO_LINE_INSUF_RESERVE")
        low, high = order_pair(me, issuer)
        line = TrustLine(low, high, cur)
        line = line.with_limit(me, limit.value)
        line = replace(line, flags=line.reserve_flag(me))
        if not sb.account(issuer).flags & LSF_DEFAULT_RIPPLE:
            line = replace(line, flags=line.flags | line.no_ripple_flag(issuer))
        sb.put_account(replace(acct, owner_count=acct.owner_count + 1))
    else:
        line = line.with_limit(me, limit.value)
        has_reserve = bool(line.flags & line.reserve_flag(me))
        wants_reserve = line.limit(me) != 0 or line.holds(me) > 0
        if wants_reserve and not has_reserve:
            if prior < fees.reserve(acct.owner_count + 1):
                raise TxFail("tecINSUF_RESERVE_LINE")
            line = replace(line, flags=line.flags | line.reserve_flag(me))
            sb.put_account(replace(acct, owner_count=acct.owner_count + 1))
        elif has_reserve and not wants_reserve:
            line = replace(line, flags=line.flags & ~line.reserve_flag(me))
            sb.put_account(replace(acct, owner_count=acct.owner_count - 1))
    if flags & TF_SET_NO_RIPPLE:
        line = replace(line, flags=line.flags | line.no_ripple_flag(me))
    if flags & TF_CLEAR_NO_RIPPLE:
        line = replace(line, flags=line.flags & ~line.no_ripple_flag(me))
    peer = line.peer(me)
    if (line.balance == 0 and line.low_limit == 0 and line.high_limit == 0
            and not line.flags & (line.reserve_flag(me) | line.reserve_flag(peer))):
        sb.delete_line(line)
    else:
        sb.put_line(line)


def _account_set(sb: Sandbox, tx: dict) -> None:
    acct = sb.account(tx["Account"])
    flags, tf = acct.flags, tx.get("Flags", 0)
    set_flag, clear_flag = tx.get("SetFlag"), tx.get("ClearFlag")
    if set_flag == ASF_REQUIRE_DEST or tf & TF_REQUIRE_DEST_TAG:
        flags |= LSF_REQUIRE_DEST_TAG
    if clear_flag == ASF_REQUIRE_DEST or tf & TF_OPTIONAL_DEST_TAG:
        flags &= ~LSF_REQUIRE_DEST_TAG
    if set_flag == ASF_DEFAULT_RIPPLE:
        flags |= LSF_DEFAULT_RIPPLE
    if clear_flag == ASF_DEFAULT_RIPPLE:
        flags &= ~LSF_DEFAULT_RIPPLE
    sb.put_account(replace(acct, flags=flags))
