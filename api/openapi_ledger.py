"""The OpenAPI description of the ledger routes (api/ledger_routes.py),
merged into the document by `openapi.build_spec`."""

from __future__ import annotations

from typing import Any

from .http import IDENT_PATTERN
from .openapi import JSON, RATE_LIMITED

_AMOUNT = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                     {"type": "string", "pattern": "^[0-9]{1,78}$", "description": "base units, for any size"}]}
_IDENT = {"type": "string", "pattern": IDENT_PATTERN}
_UNITS = {"type": "string", "pattern": "^-?[0-9]+$", "description": "base units"}
_NSTR = {"type": "string", "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props) if required is None else required}


_TRANSFER_FIELDS = {
    "id": {**_IDENT, "description": "The client's id: the same id and body replays, a different body is 409"},
    "debit_account": {**_IDENT, "description": "user:<chain>:<address> or app:<name>; pays"},
    "credit_account": {**_IDENT, "description": "user:<chain>:<address> or app:<name>; receives"},
    "asset": {**_IDENT, "description": "Asset id '<chain>:<name>'"},
    "amount": _AMOUNT,
    "code": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "description": "The app's own kind code"},
    "memo": {"type": "string", "maxLength": 500, "nullable": True},
}

SCHEMAS: dict[str, Any] = {
    "TransferBody": {"type": "object", "additionalProperties": False,
                     "required": ["id", "debit_account", "credit_account", "asset", "amount"],
                     "properties": _TRANSFER_FIELDS},
    "TransfersBody": {"type": "object", "additionalProperties": False, "required": ["transfers"],
                      "properties": {"transfers": {"type": "array", "minItems": 1, "maxItems": 200,
                                                   "items": _ref("TransferBody"),
                                                   "description": "Linked: all commit or none"}}},
    "Transfer": _obj({"id": {"type": "string"}, "debit_account": {"type": "string"},
                      "credit_account": {"type": "string"}, "asset": {"type": "string"}, "amount": _UNITS,
                      "code": {"type": "integer"}, "memo": _NSTR, "transaction_id": {"type": "integer"},
                      "created_at": {"type": "string", "format": "date-time"}}),
    "TransfersBooked": _obj({"transfers": {"type": "array", "items": _ref("Transfer")},
                             "created": {"type": "boolean", "description": "false: a replay of the stored answer"}}),
    "HoldBody": {"type": "object", "additionalProperties": False,
                 "required": ["id", "debit_account", "credit_account", "asset", "amount"],
                 "properties": {**_TRANSFER_FIELDS, "timeout_seconds": {
                     "type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 366 * 86400,
                     "nullable": True, "description": "Expires after this (default ledger.hold_timeout_seconds)"}}},
    "HoldPostBody": {"type": "object", "additionalProperties": False,
                     "properties": {"amount": {**_AMOUNT, "nullable": True,
                                               "description": "At most the held amount; default all of it"}}},
    "Hold": _obj({"id": {"type": "string"}, "debit_account": {"type": "string"}, "credit_account": {"type": "string"},
                  "asset": {"type": "string"}, "amount": _UNITS, "code": {"type": "integer", "nullable": True},
                  "memo": _NSTR, "state": {"type": "string", "enum": ["pending", "posted", "voided", "expired"]},
                  "posted_amount": {**_UNITS, "nullable": True},
                  "transaction_id": {"type": "integer", "nullable": True},
                  "expires_at": {"type": "string", "format": "date-time"},
                  "created_at": {"type": "string", "format": "date-time"},
                  "resolved_at": {"type": "string", "format": "date-time", "nullable": True},
                  "resolved_by": _NSTR}),
    "HoldAnswer": _obj({"hold": _ref("Hold"), "created": {"type": "boolean"}}, required=["hold"]),
    "Entry": _obj({"id": {"type": "integer"}, "asset_id": {"type": "string"},
                   "amount": {**_UNITS, "description": "+ debit, - credit"}, "transaction_id": {"type": "integer"},
                   "cause": {"type": "string", "enum": ["event", "transfer", "payout", "manual", "opening"]},
                   "key": {"type": "string"}, "detail": {"type": "object"}, "chain": {"type": "string"},
                   "block_number": {"type": "integer"}, "tx_hash": _NSTR,
                   "created_at": {"type": "string", "format": "date-time"}}),
    "Entries": _obj({"account": _obj({"id": {"type": "integer"}, "code": {"type": "string"},
                                      "kind": {"type": "string"}}),
                     "entries": {"type": "array", "items": _ref("Entry")},
                     "next": {"type": "string", "description": "Cursor of the next page (poll it for new entries)"},
                     "more": {"type": "boolean"}}),
}

_ERRORS = {"400": "Malformed; `field` names it", "401": "Missing or wrong bearer token",
           "404": "No such hold", "409": "The id was used for a different body, or the hold is resolved otherwise",
           "422": "Refused: `error` is the result code (exceeds_available, unknown_account, asset_mismatch, "
                  "unknown_asset, account_kind, same_account, exceeds_hold), `field` and `account` name it"}


def _op(summary: str, ok: dict[str, Any], body: str | None, params=None) -> dict[str, Any]:
    responses = {**ok, **{s: _json(_ref("Error"), t) for s, t in _ERRORS.items()}, "429": RATE_LIMITED,
                 "default": _json(_ref("Error"), "Any other error, as JSON")}
    op: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}], "responses": responses}
    if body:
        op["requestBody"] = {"required": body != "HoldPostBody", "content": {JSON: {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return {"post": op}


_HOLD_ID = {"name": "id", "in": "path", "required": True, "schema": _IDENT, "description": "Hold id"}


def admin_paths() -> dict[str, Any]:
    hold = {"200": _json(_ref("HoldAnswer"), "The hold as it stands (changed: resolved by this call)")}
    return {
        "/v1/admin/ledger/transfers": _op(
            "Book linked transfers (all or none)",
            {"201": _json(_ref("TransfersBooked"), "Booked"), "200": _json(_ref("TransfersBooked"), "Replayed")},
            "TransfersBody"),
        "/v1/admin/ledger/holds": _op(
            "Reserve an amount (a pending transfer)",
            {"201": _json(_ref("HoldAnswer"), "Held"), "200": _json(_ref("HoldAnswer"), "Replayed")}, "HoldBody"),
        "/v1/admin/ledger/holds/{id}/post": _op("Post a pending hold, all or part, once", hold, "HoldPostBody",
                                                [_HOLD_ID]),
        "/v1/admin/ledger/holds/{id}/void": _op("Void a pending hold, once", hold, None, [_HOLD_ID]),
    }


def read_paths(limit: dict[str, Any]) -> dict[str, Any]:
    q = {"in": "query", "required": False}
    params = [{"name": "id", "in": "path", "required": True, "schema": _IDENT, "description": "Account code or id"},
              limit,
              {"name": "cursor", **q, "schema": {"type": "string", "pattern": "^[0-9]{1,19}:[0-9]{1,18}$"},
               "description": "`next` of the previous page"},
              {"name": "asset", **q, "schema": _IDENT, "description": "Only this asset"}]
    responses = {"200": _json(_ref("Entries"), "A page, oldest first, in commit order"),
                 "400": _json(_ref("Error"), "A parameter is malformed; `field` names it"),
                 "404": _json(_ref("Error"), "No such account"), "429": RATE_LIMITED,
                 "default": _json(_ref("Error"), "Any other error, as JSON")}
    return {"/v1/accounts/{id}/entries": {"get": {"summary": "An account's postings with their cause",
                                                  "parameters": params, "responses": responses}}}
