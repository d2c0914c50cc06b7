"""What is delivered: one message per stage of a thing, with a stable id, key and body.

Pure functions, no I/O. Sources are read in the SSE feed's commit order
(api/feed.py): a position is (transaction id, source, row id) with source
0 = events (`observed`), 1 = feed_outbox (payouts, batches, reconciliation,
pauses, kill switches and any kind added later), 2 = delivery_outbox
(`reverted`, and `final` as written before 0013), 3 = delivery_finality
(`final`: one row per finality move, expanded to its events in id order,
the position's id being the event's). Its text is the feed's: `tx.id` for
an event, `tx.oN` for feed_outbox row N, `tx.dN` for lifecycle row N and
`tx.fN` for the final stage of event N, so the cursor a webhook body
carries is the one `/v1/stream` takes (for sources 0 and 1) and the one
`/v1/admin/deliveries/{id}/pull` takes for all four.

Ids: an event is `ev_<chain>_<events.id>` through its whole lifecycle; the
message (the `webhook-id`) is that id plus the stage, so `observed` and
`final` of one event are two messages and a retry or redelivery of either
keeps its id. A feed_outbox row is `fo_<id>` (one message per change).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import orjson

from db.values import json_default

EVENT, OUTBOX, LIFECYCLE, FINAL = 0, 1, 2, 3
Position = tuple[int, int, int]
_TAGS = {EVENT: "", OUTBOX: "o", LIFECYCLE: "d", FINAL: "f"}
_POSITION = re.compile(r"^([0-9]{1,20})\.([odf]?)([0-9]{1,19})$")


class PositionError(ValueError):
    """not a position"""


def format_position(pos: Position) -> str:
    return f"{pos[0]}.{_TAGS[pos[1]]}{pos[2]}"


def parse_position(raw: str) -> Position:
    m = _POSITION.fullmatch(raw.strip())
    if not m or int(m.group(1)) >= 2**64 or int(m.group(3)) >= 2**63:
        raise PositionError("must be a cursor as sent in a message, e.g. 7351.1042, 7351.o12, 7351.d9 or 7351.f1042")
    source = {"": EVENT, "o": OUTBOX, "d": LIFECYCLE, "f": FINAL}[m.group(2)]
    return int(m.group(1)), source, int(m.group(3))


@dataclass(frozen=True)
class Message:
    position: Position
    msg_id: str
    event_id: str | None
    type: str
    key: str
    chain: str | None
    block_number: int | None
    stage: str
    data: dict[str, Any]
    at: dt.datetime
    # Filter material: what the filter fields are matched against.
    kind: str
    address: str | None = None
    event_name: str | None = None
    accounts: frozenset[str] = frozenset()

    def body(self) -> bytes:
        """The exact bytes signed and sent: sorted keys, so a redelivery sends the same bytes."""
        doc = {"type": self.type, "id": self.msg_id, "event_id": self.event_id, "stage": self.stage,
               "cursor": format_position(self.position), "timestamp": self.at, "data": self.data}
        return orjson.dumps(doc, default=json_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)





def _event_data(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index",
                                "address", "event", "args") if k in row}


def _arg_accounts(chain: str, args: Any) -> frozenset[str]:
    """Addresses in an event's arguments, as addresses and as user account codes."""
    out: set[str] = set()
    if isinstance(args, dict):
        for v in args.values():
            if isinstance(v, str) and (v.startswith("0x") and len(v) == 42 or v.startswith("r") and 25 <= len(v) <= 35):
                a = v.lower()
                out.add(a)
                out.add(f"user:{chain}:{a}")
    return frozenset(out)


def event_key(chain: str, address: str) -> str:
    # per_key for chain events: one key per contract, so an event's
    # observed → final/reverted (same contract) keep their order.
    return f"{chain}:{address.lower()}"


def from_event(row: Any) -> Message:
    r = dict(row)
    pos = (int(r["tx"]), EVENT, int(r["id"]))
    eid = f"ev_{r['chain']}_{r['id']}"
    data = _event_data(r)
    return Message(pos, f"{eid}_observed", eid, "chain_event.observed", event_key(r["chain"], r["address"]),
                   r["chain"], r["block_number"], "observed", data, r["at"], "chain_event",
                   r["address"].lower(), r["event"], _arg_accounts(r["chain"], r["args"]))


def from_lifecycle(row: Any, source: int = LIFECYCLE) -> Message | None:
    """None when a final event's row is gone (removed by hand): nothing left to describe."""
    r = dict(row)
    p = dict(r["event"] or r["payload"] or {})
    if "address" not in p:
        return None
    pos = (int(r["tx"]), source, int(r["id"]))
    eid = f"ev_{r['chain']}_{r['event_id']}"
    data = _event_data(p)
    if r["stage"] == "reverted":
        data["ledger_reversal"] = p.get("ledger_reversal", [])
    return Message(pos, f"{eid}_{r['stage']}", eid, f"chain_event.{r['stage']}", event_key(r["chain"], p["address"]),
                   r["chain"], p["block_number"], r["stage"], data, r["at"], "chain_event",
                   p["address"].lower(), p["event"], _arg_accounts(r["chain"], p.get("args")))


# The payout lifecycle as apps name it; the payload keeps the stored state.
_PAYOUT_STAGES = {"batched": "batched", "paid": "confirmed", "held": "held"}
_BATCH_STAGES = {"signed": "sent", "confirmed": "confirmed", "reverted": "failed", "expired": "failed"}


def outbox_stage(kind: str, payload: dict[str, Any]) -> str:
    """The stage of a state change.

    payout: requested (created), batched, confirmed (paid), held, failed (its
    batch failed and it waits again: `reason` says why); batch: sent (signed
    and broadcast), confirmed, failed (reverted, expired), or its state;
    reconciliation: mismatch or its status; pause: paused or resolved; kill
    switch: killed or released; balance: its reason; any other kind: its state or status.
    """
    if kind == "payout":
        if payload.get("previous_state") is None:
            return "requested"
        state = payload.get("state")
        if state == "pending":
            return "failed" if payload.get("previous_state") == "batched" else "requested"
        return _PAYOUT_STAGES.get(state, str(state))
    if kind == "batch" and payload.get("state") in _BATCH_STAGES:
        return _BATCH_STAGES[payload["state"]]
    if kind == "reconciliation":
        return "mismatch" if (payload.get("mismatches") or 0) > 0 else str(payload.get("status") or "ok")
    if kind == "asset_pause":
        return "paused" if payload.get("paused") else "resolved"
    if kind == "payout_control":
        return "killed" if payload.get("killed") else "released"
    if kind == "balance" and isinstance(payload.get("reason"), str):
        return payload["reason"]
    for field in ("state", "status"):
        if isinstance(payload.get(field), str):
            return payload[field]
    return "changed"


def from_outbox(row: Any) -> Message:
    """Any feed_outbox kind: kinds added by other packages flow without code here."""
    r = dict(row)
    payload = r["payload"] if isinstance(r["payload"], dict) else {"value": r["payload"]}
    kind = r["kind"]
    pos = (int(r["tx"]), OUTBOX, int(r["id"]))
    stage = outbox_stage(kind, payload)
    accounts: set[str] = set()
    for field in ("recipient", "account", "destination"):
        v = payload.get(field)
        if isinstance(v, str):
            accounts.add(v.lower())
            if r["chain"]:
                accounts.add(f"user:{r['chain']}:{v.lower()}")
    for res in payload.get("results") or []:
        if isinstance(res, dict) and isinstance(res.get("account"), str):
            accounts.add(res["account"].lower())
    if kind == "payout" and isinstance(payload.get("recipient"), str):
        key = f"account:{r['chain']}:{payload['recipient'].lower()}"  # per account: a payout's stages in order
    else:
        key = f"{kind}:{r['subject']}"
    subject_id = f"{kind}_{r['subject']}"
    return Message(pos, f"fo_{r['id']}", subject_id, f"{kind}.{stage}", key, r["chain"],
                   payload.get("executed_block") if isinstance(payload.get("executed_block"), int) else None,
                   stage, payload, r["at"], kind, None, None, frozenset(accounts))


def ping(msg_id: str, at: dt.datetime) -> bytes:
    doc = {"type": "ping", "id": msg_id, "event_id": None, "stage": "ping", "cursor": None, "timestamp": at,
           "data": {}}
    return orjson.dumps(doc, default=json_default, option=orjson.OPT_SORT_KEYS)
