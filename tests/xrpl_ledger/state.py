"""Ledger state: account roots, trust lines, closed ledgers, metadata.

Objects are immutable; a change replaces the object, so a closed ledger's
snapshot is a cheap shallow copy of two dicts. Ledger object IDs are the
real keylets (SHA-512Half of space key + account IDs + currency), so
metadata `LedgerIndex` values look like rippled's.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

from xrpl.core.addresscodec import decode_classic_address

from .amounts import ZERO, currency_bytes, iou_text

ZERO_HASH = "0" * 64
RIPPLE_EPOCH = 946684800  # 2000-01-01T00:00:00Z in Unix seconds
ACCOUNT_ZERO = "rrrrrrrrrrrrrrrrrrrrBZbvji"  # the issuer shown on RippleState balances

# Ledger-entry flags (rippled LedgerFormats.h).
LSF_REQUIRE_DEST_TAG = 0x00020000
LSF_DEFAULT_RIPPLE = 0x00800000
LSF_LOW_RESERVE = 0x00010000
LSF_HIGH_RESERVE = 0x00020000
LSF_LOW_NO_RIPPLE = 0x00100000
LSF_HIGH_NO_RIPPLE = 0x00200000


def iso(ripple_time: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ripple_time + RIPPLE_EPOCH))


def human(ripple_time: int) -> str:
    return time.strftime("%Y-%b-%d %H:%M:%S.000000000 UTC", time.gmtime(ripple_time + RIPPLE_EPOCH))


def sha512_half(data: bytes) -> str:
    return hashlib.sha512(data).digest()[:32].hex().upper()


def account_id(address: str) -> bytes:
    return bytes(decode_classic_address(address))


def account_key(address: str) -> str:
    return sha512_half(b"\x00a" + account_id(address))


def line_key(low: str, high: str, currency: str) -> str:
    return sha512_half(b"\x00r" + account_id(low) + account_id(high) + currency_bytes(currency))


def order_pair(a: str, b: str) -> tuple[str, str]:
    """(low, high): trust lines are stored under the numerically lower account first."""
    return (a, b) if account_id(a) < account_id(b) else (b, a)


@dataclass(frozen=True)
class AccountRoot:
    account: str
    balance: int
    sequence: int
    flags: int = 0
    owner_count: int = 0
    prev_txn_id: str = ZERO_HASH
    prev_txn_seq: int = 0

    @property
    def key(self) -> str:
        return account_key(self.account)

    def fields(self) -> dict:
        return {"Account": self.account, "Balance": str(self.balance), "Flags": self.flags,
                "OwnerCount": self.owner_count, "Sequence": self.sequence}

    def entry(self) -> dict:
        """As `account_info` shows it."""
        return {**self.fields(), "LedgerEntryType": "AccountRoot", "PreviousTxnID": self.prev_txn_id,
                "PreviousTxnLgrSeq": self.prev_txn_seq, "index": self.key}


@dataclass(frozen=True)
class TrustLine:
    """A RippleState. `balance` > 0: the high account owes the low account."""

    low: str
    high: str
    currency: str
    balance: Decimal = ZERO
    low_limit: Decimal = ZERO
    high_limit: Decimal = ZERO
    flags: int = 0
    prev_txn_id: str = ZERO_HASH
    prev_txn_seq: int = 0

    @property
    def key(self) -> str:
        return line_key(self.low, self.high, self.currency)

    def holds(self, account: str) -> Decimal:
        """What the other side owes `account` (negative: what `account` owes)."""
        return self.balance if account == self.low else -self.balance

    def limit(self, account: str) -> Decimal:
        return self.low_limit if account == self.low else self.high_limit

    def with_holding(self, account: str, holding: Decimal) -> "TrustLine":
        return replace(self, balance=holding if account == self.low else -holding)

    def with_limit(self, account: str, limit: Decimal) -> "TrustLine":
        return replace(self, low_limit=limit) if account == self.low else replace(self, high_limit=limit)

    def reserve_flag(self, account: str) -> int:
        return LSF_LOW_RESERVE if account == self.low else LSF_HIGH_RESERVE

    def no_ripple_flag(self, account: str) -> int:
        return LSF_LOW_NO_RIPPLE if account == self.low else LSF_HIGH_NO_RIPPLE

    def peer(self, account: str) -> str:
        return self.high if account == self.low else self.low

    def fields(self) -> dict:
        return {
            "Balance": {"currency": self.currency, "issuer": ACCOUNT_ZERO, "value": iou_text(self.balance)},
            "Flags": self.flags,
            "HighLimit": {"currency": self.currency, "issuer": self.high, "value": iou_text(self.high_limit)},
            "HighNode": "0",
            "LowLimit": {"currency": self.currency, "issuer": self.low, "value": iou_text(self.low_limit)},
            "LowNode": "0",
        }


@dataclass
class LedgerState:
    accounts: dict[str, AccountRoot] = field(default_factory=dict)
    lines: dict[tuple[str, str, str], TrustLine] = field(default_factory=dict)
    total_drops: int = 0

    def copy(self) -> "LedgerState":
        return LedgerState(dict(self.accounts), dict(self.lines), self.total_drops)

    def lines_of(self, account: str) -> list[TrustLine]:
        return [ln for (lo, hi, _), ln in self.lines.items() if account in (lo, hi)]

    def digest(self) -> str:
        """Stands in for the state-tree root (not a SHAMap: see the package docstring)."""
        h = hashlib.sha512()
        for acct in sorted(self.accounts.values(), key=lambda a: a.key):
            h.update(repr(acct).encode())
        for ln in sorted(self.lines.values(), key=lambda x: x.key):
            h.update(repr(ln).encode())
        return h.digest()[:32].hex().upper()


_ACCOUNT_DIFF = ("Balance", "Flags", "OwnerCount", "Sequence")
_LINE_DIFF = ("Balance", "Flags", "HighLimit", "LowLimit")


class Sandbox:
    """Changes of one transaction over a base state, with the metadata they make."""

    def __init__(self, base: LedgerState) -> None:
        self.base = base
        self.accounts: dict[str, AccountRoot] = {}
        self.lines: dict[tuple[str, str, str], TrustLine | None] = {}

    def account(self, address: str) -> AccountRoot | None:
        return self.accounts.get(address) or self.base.accounts.get(address)

    def put_account(self, acct: AccountRoot) -> None:
        self.accounts[acct.account] = acct

    def line(self, a: str, b: str, currency: str) -> TrustLine | None:
        low, high = order_pair(a, b)
        key = (low, high, currency)
        return self.lines[key] if key in self.lines else self.base.lines.get(key)

    def put_line(self, line: TrustLine) -> None:
        self.lines[(line.low, line.high, line.currency)] = line

    def delete_line(self, line: TrustLine) -> None:
        self.lines[(line.low, line.high, line.currency)] = None

    def commit(self, state: LedgerState, tx_hash: str, ledger_seq: int) -> list[dict]:
        """Write the changes into `state`; return AffectedNodes sorted by LedgerIndex."""
        nodes: list[tuple[str, dict]] = []
        for addr, new in self.accounts.items():
            old = state.accounts.get(addr)
            new = replace(new, prev_txn_id=tx_hash, prev_txn_seq=ledger_seq)
            state.accounts[addr] = new
            nodes.append((new.key, _node("AccountRoot", new.key, old, new, _ACCOUNT_DIFF)))
        for key, new in self.lines.items():
            old = state.lines.get(key)
            if new is None:
                if old is not None:
                    del state.lines[key]
                    nodes.append((old.key, _node("RippleState", old.key, old, None, _LINE_DIFF)))
                continue
            new = replace(new, prev_txn_id=tx_hash, prev_txn_seq=ledger_seq)
            state.lines[key] = new
            nodes.append((new.key, _node("RippleState", new.key, old, new, _LINE_DIFF)))
        return [n for _, n in sorted(nodes, key=lambda kn: kn[0])]


def _node(entry_type: str, key: str, old, new, diff: tuple[str, ...]) -> dict:
    if old is None:
        fields = new.fields()
        new_fields = {k: v for k, v in fields.items()
                      if k not in ("HighNode", "LowNode") and v not in (0, "0") and k != "OwnerCount"}
        if entry_type == "RippleState":
            new_fields["Balance"] = fields["Balance"]
        return {"CreatedNode": {"LedgerEntryType": entry_type, "LedgerIndex": key, "NewFields": new_fields}}
    before = old.fields()
    prev_fields = {}
    final = (new or old).fields()
    for k in diff:
        if new is not None and before[k] != final[k]:
            prev_fields[k] = before[k]
    body = {"FinalFields": final, "LedgerEntryType": entry_type, "LedgerIndex": key}
    if prev_fields:
        body["PreviousFields"] = prev_fields
    if new is None:
        final = dict(final, PreviousTxnID=old.prev_txn_id, PreviousTxnLgrSeq=old.prev_txn_seq)
        body["FinalFields"] = final
        return {"DeletedNode": body}
    body["PreviousTxnID"] = old.prev_txn_id
    body["PreviousTxnLgrSeq"] = old.prev_txn_seq
    return {"ModifiedNode": body}


@dataclass
class TxRecord:
    """A transaction applied to a ledger (the open one until it closes)."""

    hash: str
    blob: str
    tx: dict
    meta: dict
    result: str
    accounts: frozenset[str]
    ledger_index: int
    index: int = 0  # TransactionIndex, fixed when the ledger closes


@dataclass
class ClosedLedger:
    index: int
    hash: str
    parent_hash: str
    close_time: int  # seconds since the Ripple epoch (2000-01-01)
    parent_close_time: int
    total_drops: int
    tx_hash: str
    account_hash: str
    txs: list[TxRecord]
    state: LedgerState

    def header(self) -> dict:
        return {
            "account_hash": self.account_hash,
            "close_flags": 0,
            "close_time": self.close_time,
            "close_time_human": human(self.close_time),
            "close_time_iso": iso(self.close_time),
            "close_time_resolution": 10,
            "closed": True,
            "ledger_hash": self.hash,
            "ledger_index": str(self.index),
            "parent_close_time": self.parent_close_time,
            "parent_hash": self.parent_hash,
            "total_coins": str(self.total_drops),
            "transaction_hash": self.tx_hash,
        }


def touched_accounts(nodes: list[dict]) -> frozenset[str]:
    """The accounts whose history shows the transaction: rippled's TxMeta::getAffectedAccounts.

    Only the metadata counts: account fields of created, modified and
    deleted objects, and the issuers of trust-line limits. A tec payment
    leaves the destination untouched, so it is not in the destination's
    `account_tx`; the sender's AccountRoot always changes (fee, Sequence).
    """
    found: set[str] = set()
    for node in nodes:
        body = next(iter(node.values()))
        fields = body.get("NewFields") if "CreatedNode" in node else body.get("FinalFields")
        for key, value in (fields or {}).items():
            if key in ("Account", "Destination", "Owner", "RegularKey") and isinstance(value, str):
                found.add(value)
            elif key in ("LowLimit", "HighLimit", "TakerPays", "TakerGets") and isinstance(value, dict):
                found.add(value["issuer"])
    found.discard(ACCOUNT_ZERO)
    return frozenset(found)
