"""The OpenAPI description of `POST /v1/admin/ledger/adjustments`
(api/adjust_routes.py), merged into the document by `openapi.build_spec`."""

from __future__ import annotations

from typing import Any

from .openapi import JSON, RATE_LIMITED

_INT_TEXT = {"type": "string", "pattern": "^-?[0-9]+$", "description": "base units, an exact integer"}
_TEXT = {"type": "string"}

SCHEMAS: dict[str, Any] = {
    "AdjustmentBody": {
        "type": "object", "additionalProperties": False,
        "required": ["chain", "debit", "credit", "asset", "amount", "author", "reason", "key"],
        "properties": {
            "chain": {"type": "string", "maxLength": 64},
            "debit": {"type": "string", "maxLength": 250, "description": "account code, e.g. adjustment:anvil:writeoff"},
            "credit": {"type": "string", "maxLength": 250, "description": "account code, e.g. wallet:anvil:0xab.."},
            "asset": {"type": "string", "maxLength": 200, "description": "asset id, e.g. anvil:Token"},
            "amount": {"type": "string", "pattern": "^[0-9]{1,78}$", "description": "positive, base units"},
            "author": {"type": "string", "minLength": 1, "maxLength": 200},
            "reason": {"type": "string", "minLength": 1, "maxLength": 500},
            "block": {"type": "integer", "minimum": 0, "nullable": True,
                      "description": "height the entry is effective at (default: the final height)"},
            "tx_hash": {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]{64}$", "nullable": True},
            "key": {"type": "string", "pattern": "^[A-Za-z0-9_.:@+=-]{1,200}$", "description": "idempotency key"},
        },
    },
    "Adjustment": {"type": "object", "properties": {
        "created": {"type": "boolean"}, "actor": _TEXT,
        "adjustment": {"type": "object", "properties": {
            "key": _TEXT, "transaction_id": {"type": "integer"}, "chain": _TEXT, "block_number": {"type": "integer"},
            "tx_hash": {"type": "string", "nullable": True}, "asset": _TEXT, "amount": _INT_TEXT,
            "debit": _TEXT, "credit": _TEXT, "author": _TEXT, "reason": _TEXT,
            "created_at": {"type": "string", "format": "date-time"},
        }},
    }},
}


def _answer(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def admin_paths() -> dict[str, Any]:
    errors = {status: _answer("Error", text) for status, text in (
        ("400", "The request is malformed or refused; `field` names the problem"),
        ("401", "Missing or wrong bearer token"), ("409", "The key was used for another adjustment"))}
    return {"/v1/admin/ledger/adjustments": {"post": {
        "summary": "Book a manual adjustment: two balanced legs, author and reason, idempotent by `key` (audited)",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": "#/components/schemas/AdjustmentBody"}}}},
        "responses": {"201": _answer("Adjustment", "Booked"),
                      "200": _answer("Adjustment", "The key's stored adjustment, same body"),
                      **errors, "429": RATE_LIMITED, "default": _answer("Error", "Any other error, as JSON")},
    }}}
