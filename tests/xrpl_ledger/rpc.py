"""The API methods, answered the way rippled 2.x answers them.

A `LedgerNode` is one server's view of the shared chain: it can miss a
stretch of history (a gap in `complete_ledgers`, as a rippled that was
offline or pruned does) and can be told to drop submissions. API versions
1 and 2 differ as in rippled: v2 moves transactions under `tx_json`, puts
`hash`/`ledger_index`/`ledger_hash` beside it and renames a Payment's
`Amount` to `DeliverMax`; v1 keeps `tx`/flat objects with both fields.
"""

from __future__ import annotations

import re
from typing import Any

from xrpl.core.addresscodec import is_valid_classic_address

from .amounts import iou_text
from .chain import TestLedger
from .results import RpcFail
from .state import (
    LSF_DEFAULT_RIPPLE,
    LSF_REQUIRE_DEST_TAG,
    RIPPLE_EPOCH,
    ClosedLedger,
    TxRecord,
    iso,
)

_HASH = re.compile(r"^[0-9A-Fa-f]{64}$")
SERVER_VERSION = "2.3.0-chainsettle-test"


class LedgerNode:
    """One server's view of a `TestLedger`, with the test hooks."""

    def __init__(self, ledger: TestLedger, *, account_tx_max_limit: int = 400) -> None:
        self.ledger = ledger
        self.missing: list[tuple[int, int]] = []
        self.drop_pending = 0
        self.account_tx_max_limit = account_tx_max_limit

    # -- history this node holds ----------------------------------------------

    def has(self, index: int) -> bool:
        return 1 <= index <= self.ledger.validated.index and not any(a <= index <= b for a, b in self.missing)

    def complete_ranges(self) -> list[tuple[int, int]]:
        ranges = [(1, self.ledger.validated.index)]
        for a, b in sorted(self.missing):
            kept = []
            for lo, hi in ranges:
                if b < lo or a > hi:
                    kept.append((lo, hi))
                    continue
                if lo < a:
                    kept.append((lo, a - 1))
                if b < hi:
                    kept.append((b + 1, hi))
            ranges = kept
        return ranges

    def complete_ledgers(self) -> str:
        ranges = self.complete_ranges()
        return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges) or "empty"

    def validated_range(self) -> tuple[int, int] | None:
        """rippled's getValidatedRange: the contiguous history ending at the validated ledger."""
        ranges = self.complete_ranges()
        if not ranges or ranges[-1][1] != self.ledger.validated.index:
            return None
        return ranges[-1]

    def set_gap(self, start: int, end: int) -> None:
        if not (1 <= start <= end <= self.ledger.validated.index):
            raise RpcFail("invalidParams", f"gap {start}-{end} must lie within validated ledgers 1-{self.ledger.validated.index}")
        self.missing.append((start, end))

    def clear_gap(self) -> None:
        self.missing.clear()

    # -- dispatch -------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any], api_version: int) -> dict:
        handler = _METHODS.get(method)
        if handler is None:
            raise RpcFail("unknownCmd")
        return handler(self, params, api_version)


# -- helpers -------------------------------------------------------------------


def _account(params: dict, field: str = "account") -> str:
    value = params.get(field)
    if value is None:
        raise RpcFail("invalidParams", f"Missing field '{field}'.")
    if not isinstance(value, str) or not is_valid_classic_address(value):
        raise RpcFail("actMalformed")
    return value


def _resolve(node: LedgerNode, params: dict, default: str = "current") -> ClosedLedger | None:
    """A closed ledger the node holds, or None for the open ("current") ledger."""
    chain = node.ledger
    if "ledger_hash" in params:
        h = params["ledger_hash"]
        if not isinstance(h, str) or not _HASH.match(h):
            raise RpcFail("invalidParams", "ledgerHashMalformed")
        found = chain.by_hash.get(h.upper())
        if found is None or not node.has(found.index):
            raise RpcFail("lgrNotFound", "ledgerNotFound")
        return found
    spec = params.get("ledger_index", default)
    if spec in ("validated", "closed"):
        return chain.validated
    if spec == "current" or spec == "":
        return None
    if isinstance(spec, str) and spec.isdigit():
        spec = int(spec)
    if not isinstance(spec, int) or isinstance(spec, bool):
        raise RpcFail("invalidParams", "ledgerIndexMalformed")
    if spec >= chain.open_index + 1 or spec < 1:
        raise RpcFail("lgrNotFound", "ledgerNotFound")
    if spec == chain.open_index:
        return None
    if not node.has(spec):
        raise RpcFail("lgrNotFound", "ledgerNotFound")
    return chain.ledgers[spec]


def _ledger_fields(node: LedgerNode, ledger: ClosedLedger | None) -> dict:
    if ledger is None:
        return {"ledger_current_index": node.ledger.open_index, "validated": False}
    return {"ledger_hash": ledger.hash, "ledger_index": ledger.index, "validated": True}


def _with_delivered(rec: TxRecord) -> dict:
    meta = dict(rec.meta)
    if rec.tx["TransactionType"] == "Payment" and rec.result == "tesSUCCESS":
        meta["delivered_amount"] = meta.get("DeliveredAmount", rec.tx["Amount"])
    return meta


def _tx_json(rec: TxRecord, api_version: int, ledger: ClosedLedger | None) -> dict:
    tx = dict(rec.tx)
    if tx["TransactionType"] == "Payment":
        tx["DeliverMax"] = tx["Amount"]
        if api_version > 1:
            del tx["Amount"]
    if api_version == 1:
        tx["hash"] = rec.hash
    if ledger is not None:
        tx["date"] = ledger.close_time
        tx["ledger_index"] = ledger.index
        if api_version == 1:
            tx["inLedger"] = ledger.index
    return tx


def render_tx(node: LedgerNode, rec: TxRecord, api_version: int, *, shape: str) -> dict:
    """A validated transaction as `account_tx` ("entry"), `tx` ("tx") or `ledger` ("ledger") shows it."""
    ledger = node.ledger.ledgers[rec.ledger_index]
    tx = _tx_json(rec, api_version, ledger)
    meta = _with_delivered(rec)
    if api_version > 1:
        out = {"tx_json": tx, "meta": meta, "hash": rec.hash, "ledger_index": ledger.index}
        if shape != "ledger":
            out.update(ledger_hash=ledger.hash, close_time_iso=iso(ledger.close_time), validated=True)
        return out
    if shape == "entry":
        return {"meta": meta, "tx": tx, "validated": True}
    if shape == "ledger":
        return {**tx, "metaData": meta}
    return {**tx, "meta": meta, "validated": True}


# -- methods -----------------------------------------------------------------------


def server_info(node: LedgerNode, params: dict, api_version: int) -> dict:
    chain = node.ledger
    last = chain.validated
    fees = chain.fees
    age = max(0, int(chain.clock()) - RIPPLE_EPOCH - last.close_time)
    return {"info": {
        "build_version": SERVER_VERSION,
        "complete_ledgers": node.complete_ledgers(),
        "hostid": "chainsettle-test-ledger",
        "io_latency_ms": 1,
        "last_close": {"converge_time_s": 0, "proposers": 0},
        "load_factor": 1,
        "network_id": chain.network_id,
        "peers": 0,
        "pubkey_node": "n94wWvFUmaKGYrKUGgpv1DyYgDeXRGdACkNQaSe7zJiy5Znio7UC",
        "server_state": "full",
        "standalone": True,
        "uptime": 1,
        "validated_ledger": {
            "age": age,
            "base_fee_xrp": fees.base_fee / 1_000_000,
            "hash": last.hash,
            "reserve_base_xrp": fees.reserve_base / 1_000_000,
            "reserve_inc_xrp": fees.reserve_inc / 1_000_000,
            "seq": last.index,
        },
        "validation_quorum": 0,
    }}


def fee(node: LedgerNode, params: dict, api_version: int) -> dict:
    base = str(node.ledger.fees.base_fee)
    return {
        "current_ledger_size": str(len(node.ledger.open_txs)),
        "current_queue_size": "0",
        "drops": {"base_fee": base, "median_fee": "5000", "minimum_fee": base, "open_ledger_fee": base},
        "expected_ledger_size": "1000",
        "ledger_current_index": node.ledger.open_index,
        "levels": {"median_level": "128000", "minimum_level": "256", "open_ledger_level": "256", "reference_level": "256"},
        "max_queue_size": "2000",
    }


def ledger(node: LedgerNode, params: dict, api_version: int) -> dict:
    found = _resolve(node, params)
    chain = node.ledger
    if found is None:
        return {"ledger": {"closed": False, "ledger_index": str(chain.open_index), "parent_hash": chain.validated.hash},
                "ledger_current_index": chain.open_index, "validated": False}
    body = found.header()
    if params.get("transactions"):
        if params.get("expand"):
            body["transactions"] = [render_tx(node, r, api_version, shape="ledger") for r in found.txs]
        else:
            body["transactions"] = [r.hash for r in found.txs]
    return {"ledger": body, "ledger_hash": found.hash, "ledger_index": found.index, "validated": True}


def ledger_closed(node: LedgerNode, params: dict, api_version: int) -> dict:
    last = node.ledger.validated
    return {"ledger_hash": last.hash, "ledger_index": last.index}


def ledger_current(node: LedgerNode, params: dict, api_version: int) -> dict:
    return {"ledger_current_index": node.ledger.open_index}


def account_info(node: LedgerNode, params: dict, api_version: int) -> dict:
    address = _account(params)
    found = _resolve(node, params)
    state = found.state if found else node.ledger.open_state
    acct = state.accounts.get(address)
    if acct is None:
        raise RpcFail("actNotFound", account=address, **_ledger_fields(node, found))
    flags = {
        "defaultRipple": bool(acct.flags & LSF_DEFAULT_RIPPLE),
        "depositAuth": False, "disableMasterKey": False, "disallowIncomingXRP": False, "globalFreeze": False,
        "noFreeze": False, "passwordSpent": False, "requireAuthorization": False,
        "requireDestinationTag": bool(acct.flags & LSF_REQUIRE_DEST_TAG),
    }
    return {"account_data": acct.entry(), "account_flags": flags, **_ledger_fields(node, found)}


def account_lines(node: LedgerNode, params: dict, api_version: int) -> dict:
    address = _account(params)
    peer = _account(params, "peer") if "peer" in params else None
    found = _resolve(node, params)
    state = found.state if found else node.ledger.open_state
    if address not in state.accounts:
        raise RpcFail("actNotFound", account=address, **_ledger_fields(node, found))
    lines = []
    for ln in sorted(state.lines_of(address), key=lambda x: x.key):
        other = ln.peer(address)
        if peer is not None and other != peer:
            continue
        lines.append({
            "account": other, "balance": iou_text(ln.holds(address)), "currency": ln.currency,
            "limit": iou_text(ln.limit(address)), "limit_peer": iou_text(ln.limit(other)),
            "no_ripple": bool(ln.flags & ln.no_ripple_flag(address)),
            "no_ripple_peer": bool(ln.flags & ln.no_ripple_flag(other)),
            "quality_in": 0, "quality_out": 0,
        })
    return {"account": address, "lines": lines, **_ledger_fields(node, found)}


def _int_param(params: dict, name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcFail("invalidParams", f"Invalid field '{name}', not integer.")
    return value


def account_tx(node: LedgerNode, params: dict, api_version: int) -> dict:
    address = _account(params)
    for flag in ("binary", "forward"):
        if flag in params and not isinstance(params[flag], bool):
            raise RpcFail("invalidParams", f"Invalid field '{flag}'.")
    if params.get("binary"):
        raise RpcFail("notImpl")
    forward = bool(params.get("forward"))
    limit = _int_param(params, "limit", 200)
    if limit < 1:
        raise RpcFail("invalidParams", "Invalid field 'limit'.")
    limit = min(limit, node.account_tx_max_limit)
    has_range = "ledger_index_min" in params or "ledger_index_max" in params
    if api_version > 1 and has_range and ("ledger_hash" in params or "ledger_index" in params):
        raise RpcFail("invalidParams", "invalidParams")
    vrange = node.validated_range()
    if vrange is None:
        raise RpcFail("lgrIdxsInvalid" if api_version == 1 else "notSynced")
    vmin, vmax = vrange
    lo, hi = vmin, vmax
    if has_range:
        req_min = _int_param(params, "ledger_index_min", -1)
        req_max = _int_param(params, "ledger_index_max", -1)
        if api_version > 1 and ((req_max > vmax and req_max != -1) or (0 < req_min < vmin)):
            raise RpcFail("lgrIdxMalformed")
        lo = max(vmin, req_min) if req_min >= 0 else vmin
        hi = min(vmax, req_max) if req_max >= 0 else vmax
        if hi < lo:
            raise RpcFail("lgrIdxsInvalid" if api_version == 1 else "invalidLgrRange")
    elif "ledger_index" in params or "ledger_hash" in params:
        found = _resolve(node, params)
        if found is None or not (vmin <= found.index <= vmax):
            raise RpcFail("lgrNotValidated")
        lo = hi = found.index
    items = [r for r in node.ledger.history.get(address, []) if lo <= r.ledger_index <= hi]
    if not forward:
        items.reverse()
    marker = params.get("marker")
    if marker is not None:
        if not (isinstance(marker, dict) and isinstance(marker.get("ledger"), int) and isinstance(marker.get("seq"), int)):
            raise RpcFail("invalidParams", "invalid marker. Provide ledger index via ledger field, and transaction "
                                           "sequence number via seq field")
        pos = (marker["ledger"], marker["seq"])
        items = [r for r in items if ((r.ledger_index, r.index) >= pos if forward else (r.ledger_index, r.index) <= pos)]
    page, rest = items[:limit], items[limit:]
    out = {
        "account": address, "ledger_index_min": lo, "ledger_index_max": hi, "limit": limit,
        "transactions": [render_tx(node, r, api_version, shape="entry") for r in page], "validated": True,
    }
    if rest:
        out["marker"] = {"ledger": rest[0].ledger_index, "seq": rest[0].index}
    return out


def tx(node: LedgerNode, params: dict, api_version: int) -> dict:
    h = params.get("transaction")
    if not isinstance(h, str) or not _HASH.match(h):
        raise RpcFail("invalidParams", "Invalid parameters.")
    h = h.upper()
    if params.get("binary"):
        raise RpcFail("notImpl")
    chain = node.ledger
    rec = chain.txs.get(h)
    if rec is not None and node.has(rec.ledger_index):
        return render_tx(node, rec, api_version, shape="tx")
    pending = chain.open_tx(h)
    if pending is not None:
        body = _tx_json(pending, api_version, None)
        return {"tx_json": body, "hash": h, "validated": False} if api_version > 1 else {**body, "validated": False}
    extra = {}
    if "min_ledger" in params and "max_ledger" in params:
        lo, hi = _int_param(params, "min_ledger", 0), _int_param(params, "max_ledger", 0)
        if hi < lo:
            raise RpcFail("invalidLgrRange")
        extra["searched_all"] = all(node.has(i) for i in range(lo, hi + 1))
    raise RpcFail("txnNotFound", **extra)


def submit(node: LedgerNode, params: dict, api_version: int) -> dict:
    blob = params.get("tx_blob")
    if not isinstance(blob, str):
        raise RpcFail("invalidParams", "Missing field 'tx_blob'.")
    drop = node.drop_pending > 0
    if drop:
        node.drop_pending -= 1
    return node.ledger.submit(blob, drop=drop)


def ledger_accept(node: LedgerNode, params: dict, api_version: int) -> dict:
    node.ledger.close()
    return {"ledger_current_index": node.ledger.open_index}


def ping(node: LedgerNode, params: dict, api_version: int) -> dict:
    return {}


def test_drop_next(node: LedgerNode, params: dict, api_version: int) -> dict:
    count = _int_param(params, "count", 1)
    if count < 0:
        raise RpcFail("invalidParams", "Invalid field 'count'.")
    node.drop_pending += count
    return {"drop_pending": node.drop_pending}


def test_set_gap(node: LedgerNode, params: dict, api_version: int) -> dict:
    node.set_gap(_int_param(params, "start", 0), _int_param(params, "end", 0))
    return {"complete_ledgers": node.complete_ledgers()}


def test_clear_gap(node: LedgerNode, params: dict, api_version: int) -> dict:
    node.clear_gap()
    return {"complete_ledgers": node.complete_ledgers()}


_METHODS = {
    "server_info": server_info, "fee": fee, "ledger": ledger, "ledger_closed": ledger_closed,
    "ledger_current": ledger_current, "account_info": account_info, "account_lines": account_lines,
    "account_tx": account_tx, "tx": tx, "submit": submit, "ledger_accept": ledger_accept, "ping": ping,
    "test_drop_next": test_drop_next, "test_set_gap": test_set_gap, "test_clear_gap": test_clear_gap,
}
