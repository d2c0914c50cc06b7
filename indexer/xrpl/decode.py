"""XRPL transactions → event rows (pure functions, no I/O).

One row per (transaction, watched account it touches), in the same `events`
table as EVM logs: block_number = ledger index, block_hash = ledger hash,
tx_index = the transaction's index in its ledger, log_index = 0,
address = the watched r-address, event = the TransactionType. Hashes stay
as rippled returns them (64 uppercase hex digits, no 0x); addresses are
classic r-addresses.

Payments are credited from what was delivered, never from `Amount`
(`DeliverMax`): a partial payment can deliver far less. Only tesSUCCESS
delivers; tec results are recorded as failed with no delivered amount.
Integers in args are decimal strings; XRP amounts are drops as a string of
digits; issued currencies are {currency, issuer, value} with the value a
plain decimal string (no exponent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from indexer.errors import BadRpcResponse
from indexer.models import EventRow

TF_PARTIAL_PAYMENT = 0x00020000
_HASH = re.compile(r"^[0-9A-Fa-f]{64}$")
_DROPS = re.compile(r"^[0-9]{1,18}$")
_AMOUNT_FIELDS = ("Amount", "DeliverMax", "SendMax", "DeliverMin", "LimitAmount", "TakerGets", "TakerPays")
_COMMON = {
    "Account", "TransactionType", "Fee", "Sequence", "TicketSequence", "Flags", "SigningPubKey", "TxnSignature",
    "Signers", "Memos", "SourceTag", "LastLedgerSequence", "AccountTxnID", "NetworkID", "hash", "date",
    "ledger_index", "inLedger", "ctid", "meta", "metaData", "validated",
}


class XrplDecodeError(BadRpcResponse):
    """an XRPL transaction did not have the expected shape"""


@dataclass(frozen=True)
class RawTx:
    """A validated transaction as any XRPL API shape gives it, normalized."""

    tx: dict[str, Any]
    meta: dict[str, Any]
    hash: str
    ledger_index: int
    ledger_hash: str | None
    close_time_iso: str | None = None

    @property
    def result(self) -> str:
        return self.meta["TransactionResult"]

    @property
    def index(self) -> int:
        return self.meta["TransactionIndex"]


def _hash(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _HASH.match(value):
        raise XrplDecodeError(f"{field}: not a 64-hex-digit hash: {str(value)[:80]!r}")
    return value.upper()


def _uint(value: Any, field: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise XrplDecodeError(f"{field}: not a non-negative integer: {str(value)[:40]!r}")
    return value


def normalize_entry(entry: Any, *, ledger_index: int | None = None, ledger_hash: str | None = None) -> RawTx:
    """Accept API v2 (`tx_json` + `meta`), v1 `account_tx` (`tx` + `meta`), flat `tx`
    answers and `ledger` expansions (`metaData`); a `result` wrapper is unwrapped."""
    if isinstance(entry, dict) and isinstance(entry.get("result"), dict):
        entry = entry["result"]
    if not isinstance(entry, dict):
        raise XrplDecodeError("transaction entry: not a JSON object")
    if isinstance(entry.get("tx_json"), dict):
        tx, outer = entry["tx_json"], entry
    elif isinstance(entry.get("tx"), dict):
        tx, outer = entry["tx"], entry
    else:
        tx, outer = entry, entry
    meta = outer.get("meta", outer.get("metaData", tx.get("meta", tx.get("metaData"))))
    if not isinstance(meta, dict):
        raise XrplDecodeError("transaction entry: meta missing (binary answers are not supported)")
    for field, kind in (("TransactionType", str), ("Account", str)):
        if not isinstance(tx.get(field), kind):
            raise XrplDecodeError(f"transaction entry: tx.{field} missing or not a {kind.__name__}")
    if not isinstance(meta.get("TransactionResult"), str):
        raise XrplDecodeError("transaction entry: meta.TransactionResult missing")
    meta = dict(meta, TransactionIndex=_uint(meta.get("TransactionIndex"), "meta.TransactionIndex"))
    tx_hash = _hash(outer.get("hash", tx.get("hash")), "hash")
    li = outer.get("ledger_index", tx.get("ledger_index", tx.get("inLedger", ledger_index)))
    if li is None:
        raise XrplDecodeError(f"transaction {tx_hash}: ledger_index missing")
    lh = outer.get("ledger_hash", ledger_hash)
    return RawTx(tx, meta, tx_hash, _uint(li, "ledger_index"), _hash(lh, "ledger_hash") if lh is not None else None,
                 outer.get("close_time_iso"))


def plain_decimal(value: Any, field: str) -> str:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise XrplDecodeError(f"{field}: not a decimal number: {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise XrplDecodeError(f"{field}: not a finite number")
    if d == 0:
        return "0"
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def normalize_amount(value: Any, field: str) -> str | dict[str, str]:
    """XRP: drops as a digit string; issued: {currency, issuer, value}; MPT: {mpt_issuance_id, value}."""
    if isinstance(value, str):
        if not _DROPS.match(value):
            raise XrplDecodeError(f"{field}: XRP amounts must be whole drops, got {value[:40]!r}")
        return str(int(value))
    if isinstance(value, dict) and {"currency", "issuer", "value"} <= value.keys():
        return {"currency": str(value["currency"]), "issuer": str(value["issuer"]),
                "value": plain_decimal(value["value"], f"{field}.value")}
    if isinstance(value, dict) and {"mpt_issuance_id", "value"} <= value.keys():
        return {"mpt_issuance_id": str(value["mpt_issuance_id"]), "value": plain_decimal(value["value"], f"{field}.value")}
    raise XrplDecodeError(f"{field}: not an XRPL amount: {str(value)[:80]!r}")


def _memo_text(hex_value: Any) -> str | None:
    if not isinstance(hex_value, str):
        return None
    try:
        return bytes.fromhex(hex_value).decode("utf-8")
    except ValueError:  # odd length, non-hex, or not UTF-8
        return None


def decode_memos(memos: Any) -> list[dict[str, str]]:
    """Memo fields as UTF-8 text when they are valid UTF-8, else as `<field>_hex`."""
    if not isinstance(memos, list):
        raise XrplDecodeError("Memos: not a list")
    out = []
    for i, wrapper in enumerate(memos):
        memo = wrapper.get("Memo") if isinstance(wrapper, dict) else None
        if not isinstance(memo, dict):
            raise XrplDecodeError(f"Memos[{i}]: no Memo object")
        item: dict[str, str] = {}
        for src, name in (("MemoType", "type"), ("MemoData", "data"), ("MemoFormat", "format")):
            if src not in memo:
                continue
            text = _memo_text(memo[src])
            if text is not None:
                item[name] = text
            else:
                item[f"{name}_hex"] = str(memo[src]).upper()
        out.append(item)
    return out


def _stringify(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    return value


def delivered_amount(raw: RawTx) -> tuple[str | dict | None, str]:
    """What a Payment delivered and where that figure came from.

    `"unavailable"` is what rippled answers for payments before 2014-01-20
    (ledger 4594094); a payment without tfPartialPayment delivers exactly
    its Amount, so that is known; a partial one stays unknown and must not
    be credited automatically.
    """
    if raw.result != "tesSUCCESS":
        return None, "failed"
    tx, meta = raw.tx, raw.meta
    value = meta.get("delivered_amount", meta.get("DeliveredAmount"))
    if value is not None and value != "unavailable":
        return normalize_amount(value, "meta.delivered_amount"), "meta"
    if not int(tx.get("Flags", 0)) & TF_PARTIAL_PAYMENT:
        return normalize_amount(_amount_field(tx), "Amount"), "amount_not_partial"
    return "unavailable", "unavailable"


def _amount_field(tx: dict) -> Any:
    return tx["Amount"] if "Amount" in tx else tx.get("DeliverMax")


def decode_args(raw: RawTx, watched: str) -> dict[str, Any]:
    tx = raw.tx
    ok = raw.result == "tesSUCCESS"
    args: dict[str, Any] = {
        "account": tx["Account"],
        "role": "sender" if tx["Account"] == watched else "affected",
        "result": raw.result,
        "status": "success" if ok else "failed",
        "fee": normalize_amount(tx.get("Fee", "0"), "Fee"),
        "sequence": str(_uint(tx.get("Sequence", 0), "Sequence")),
        "flags": str(_uint(tx.get("Flags", 0), "Flags")),
    }
    if "TicketSequence" in tx:
        args["ticket_sequence"] = str(_uint(tx["TicketSequence"], "TicketSequence"))
    if "SourceTag" in tx:
        args["source_tag"] = str(_uint(tx["SourceTag"], "SourceTag"))
    if "Memos" in tx:
        args["memos"] = decode_memos(tx["Memos"])
    if raw.close_time_iso:
        args["close_time_iso"] = raw.close_time_iso
    if tx["TransactionType"] == "Payment":
        args.update(_payment(raw, watched))
    else:
        fields = {}
        for k, v in tx.items():
            if k in _COMMON:
                continue
            fields[k] = normalize_amount(v, k) if k in _AMOUNT_FIELDS else _stringify(v)
        args["fields"] = fields
    return args


def _payment(raw: RawTx, watched: str) -> dict[str, Any]:
    tx = raw.tx
    src, dst = tx["Account"], tx.get("Destination")
    if not isinstance(dst, str):
        raise XrplDecodeError(f"payment {raw.hash}: Destination missing")
    if watched == src and watched == dst:
        direction, counterparty = "self", src
    elif watched == src:
        direction, counterparty = "out", dst
    elif watched == dst:
        direction, counterparty = "in", src
    else:
        direction, counterparty = "other", src
    delivered, source = delivered_amount(raw)
    out: dict[str, Any] = {
        "direction": direction,
        "counterparty": counterparty,
        "destination": dst,
        "amount": normalize_amount(_amount_field(tx), "Amount"),
        "delivered_amount": delivered,
        "delivered_source": source,
        "partial_payment": bool(int(tx.get("Flags", 0)) & TF_PARTIAL_PAYMENT),
    }
    if "DestinationTag" in tx:
        out["destination_tag"] = str(_uint(tx["DestinationTag"], "DestinationTag"))
    for k, name in (("SendMax", "send_max"), ("DeliverMin", "deliver_min")):
        if k in tx:
            out[name] = normalize_amount(tx[k], k)
    if "InvoiceID" in tx:
        out["invoice_id"] = str(tx["InvoiceID"]).upper()
    return out


def event_rows(chain: str, raw: RawTx, watched: Iterable[str], ledger_hash: str) -> list[EventRow]:
    """One row per watched account; raises XrplDecodeError when the args cannot be built."""
    rows = []
    for acct in watched:
        args = orjson.dumps(decode_args(raw, acct)).decode()
        rows.append(EventRow(chain, raw.ledger_index, ledger_hash, raw.hash, raw.index, 0, acct,
                             raw.tx["TransactionType"], args))
    return rows
