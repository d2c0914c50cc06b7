"""OpenAPI pieces of the invoice, verify-payment and sign-in routes (merged by api/openapi.py)."""

from __future__ import annotations

from typing import Any

from .http import IDENT_PATTERN

JSON = "application/json"
STATES = ["new", "seen", "paid", "underpaid", "overpaid", "expired", "paid_late", "reverted", "invalid"]
VERDICTS = ["not_found", "pending", "paid_final", "underpaid", "wrong_asset", "wrong_recipient", "wrong_payer",
            "failed_tx", "already_claimed", "wrong_amount", "invoice_closed", "expired"]
ADDRESS = {"type": "string", "maxLength": 128}
UNITS = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,78}$"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def schemas() -> dict[str, Any]:
    n = {"nullable": True}
    invoice = {"type": "object", "required": ["id", "app_ref", "chain", "asset", "amount", "state", "received",
                                               "shortfall", "excess", "wallet", "account", "expires_at"],
               "properties": {
                   "id": {"type": "string"}, "app_ref": {"type": "string"}, "chain": {"type": "string"},
                   "asset": {"type": "string"}, "asset_id": {"type": "string"}, "amount": {"type": "string"},
                   "tolerance": {"type": "string"}, "wallet": {"type": "string"},
                   "match_method": {"type": "string", "enum": ["destination_tag", "memo", "payer", "amount"]},
                   "destination_tag": {"type": "integer", **n}, "memo": {"type": "string", **n},
                   "payer": {"type": "string", **n}, "account": {"type": "string"},
                   "state": {"type": "string", "enum": STATES}, "received": {"type": "string"},
                   "shortfall": {"type": "string"}, "excess": {"type": "string"}, "reason": {"type": "string", **n},
                   "after_block": {"type": "integer", **n},
                   "expires_at": {"type": "string", "format": "date-time"},
                   "created_at": {"type": "string", "format": "date-time"},
                   "updated_at": {"type": "string", "format": "date-time"},
                   "settled_at": {"type": "string", "format": "date-time", **n},
                   "payments": {"type": "array", "items": {"type": "object"}},
               }}
    return {
        "Invoice": invoice,
        "InvoiceCreated": {"type": "object", "required": ["invoice", "created"],
                           "properties": {"invoice": _ref("Invoice"), "created": {"type": "boolean"}}},
        "InvoiceOne": {"type": "object", "required": ["invoice"], "properties": {"invoice": _ref("Invoice")}},
        "InvoiceBody": {"type": "object", "additionalProperties": False,
                        "required": ["chain", "asset", "amount", "wallet", "app_ref", "account", "match_method"],
                        "properties": {
                            "chain": {"type": "string", "maxLength": 64}, "asset": {"type": "string", "maxLength": 64},
                            "amount": UNITS, "wallet": ADDRESS,
                            "app_ref": {"type": "string", "pattern": IDENT_PATTERN},
                            "account": {"type": "string", "pattern": r"^user:[A-Za-z0-9_.:@+=-]+$", "minLength": 6,
                                        "maxLength": 200},
                            "match_method": {"type": "string", "enum": ["destination_tag", "memo", "payer", "amount"]},
                            "expires_in": {"type": "integer", "minimum": 1, "maximum": 10**9},
                            "tolerance": UNITS,
                            "destination_tag": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                            "memo": {"type": "string", "minLength": 1, "maxLength": 200},
                            "payer": ADDRESS}},
        "VerifyPaymentBody": {"type": "object", "additionalProperties": False, "required": ["chain", "tx_hash"],
                              "properties": {
                                  "chain": {"type": "string", "maxLength": 64},
                                  "tx_hash": {"type": "string", "maxLength": 66},
                                  "to": ADDRESS, "asset": {"type": "string", "maxLength": 64}, "min_amount": UNITS,
                                  "destination_tag": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
                                  "memo": {"type": "string", "minLength": 1, "maxLength": 200}, "payer": ADDRESS,
                                  "invoice": {"type": "string", "pattern": IDENT_PATTERN},
                                  "claim_key": {"type": "string", "pattern": IDENT_PATTERN}}},
        "PaymentVerdict": {"type": "object", "required": ["status", "source", "tx_hash"], "properties": {
            "status": {"type": "string", "enum": VERDICTS}, "source": {"type": "string", "enum": ["index", "chain"]},
            "tx_hash": {"type": "string"}, "reason": {"type": "string"}, "note": {"type": "string"},
            "amount": {"type": "string"},
            "shortfall": {"type": "string"}, "confirmations": {"type": "integer"},
            "claimed_by": {"type": "string", **n}, "payer": {"type": "string", **n},
            "claim_key": {"type": "string", **n}, "invoice_state": {"type": "string"},
            "received": {"type": "string"}, "claimed_now": {"type": "boolean"},
            "claim": {"type": "object", "properties": {"key": {"type": "string"}, "new": {"type": "boolean"},
                                                       "claimed_at": {"type": "string", "format": "date-time"}}},
            "block_number": {"type": "integer", **n}, "log_indexes": {"type": "array", "items": {"type": "integer"}}}},
        "ChallengeBody": {"type": "object", "additionalProperties": False, "required": ["chain", "address"],
                          "properties": {"chain": {"type": "string", "maxLength": 64}, "address": ADDRESS}},
        "Challenge": {"type": "object", "required": ["chain", "kind", "address", "nonce", "message", "expires_at"],
                      "properties": {"chain": {"type": "string"}, "kind": {"type": "string", "enum": ["siwe", "xrpl"]},
                                     "address": {"type": "string"}, "nonce": {"type": "string"},
                                     "message": {"type": "string"},
                                     "expires_at": {"type": "string", "format": "date-time"}}},
        "SigninBody": {"type": "object", "additionalProperties": False, "required": ["chain", "message", "signature"],
                       "properties": {"chain": {"type": "string", "maxLength": 64},
                                      "message": {"type": "string", "minLength": 1, "maxLength": 4000},
                                      "signature": {"type": "string", "minLength": 1, "maxLength": 2000,
                                                    "pattern": "^(0x)?[0-9a-fA-F]+$"},
                                      "public_key": {"type": "string", "pattern": "^[0-9a-fA-F]{66}$"}}},
        "Signin": {"type": "object", "required": ["address", "chain", "method", "token", "expires_at"],
                   "properties": {"address": {"type": "string"}, "chain": {"type": "string"},
                                  "method": {"type": "string", "enum": ["eoa", "eip1271", "xrpl"]},
                                  "token": {"type": "string"},
                                  "expires_at": {"type": "string", "format": "date-time"}}},
        "SigninRefused": {"type": "object", "required": ["error", "status", "message", "reason"], "properties": {
            "error": {"type": "string"}, "status": {"type": "integer"}, "message": {"type": "string"},
            "field": {"type": "string"}, "reason": {"type": "string"}}},
    }


def _post(summary: str, body: str, ok: dict[str, Any], errors: dict[str, Any], rate: dict[str, Any],
          admin: bool = False) -> dict[str, Any]:
    responses = {**ok, "400": _json(_ref("Error"), "Malformed or refused; `field` names it"), **errors,
                 "429": rate, "default": _json(_ref("Error"), "Any other error, as JSON")}
    op: dict[str, Any] = {"summary": summary, "requestBody": {"required": True, "content": {JSON: {"schema": _ref(body)}}},
                          "responses": responses}
    if admin:
        op["security"] = [{"bearer": []}]
        responses["401"] = _json(_ref("Error"), "Missing or wrong bearer token")
    return {"post": op}


def paths(*, admin: bool, signin: bool, rate: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "/v1/verify-payment": _post(
            "Verify one transaction against an expectation or an invoice (indexed data for watched wallets, "
            "else the chain)", "VerifyPaymentBody", {"200": _json(_ref("PaymentVerdict"), "The verdict")},
            {"404": _json(_ref("Error"), "No such invoice"),
             "503": _json(_ref("Error"), "The chain could not be asked")}, rate),
    }
    if admin:
        out["/v1/admin/invoices"] = _post(
            "Create an invoice, idempotent by `app_ref` (audited)", "InvoiceBody",
            {"201": _json(_ref("InvoiceCreated"), "Created"),
             "200": _json(_ref("InvoiceCreated"), "The app_ref's stored invoice")},
            {"409": _json(_ref("Error"), "app_ref, tag, memo or unique amount already used")}, rate, admin=True)
        ident = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": IDENT_PATTERN},
                 "description": "Invoice id or app reference"}
        out["/v1/admin/invoices/{id}"] = {"get": {
            "summary": "One invoice: state, received, shortfall, excess, claimed payments",
            "security": [{"bearer": []}], "parameters": [ident],
            "responses": {"200": _json(_ref("InvoiceOne"), "The invoice"),
                          "400": _json(_ref("Error"), "Malformed id"),
                          "401": _json(_ref("Error"), "Missing or wrong bearer token"),
                          "404": _json(_ref("Error"), "No such invoice"), "429": rate,
                          "default": _json(_ref("Error"), "Any other error, as JSON")}}}
    if signin:
        out["/v1/auth/challenge"] = _post(
            "A sign-in challenge: an EIP-4361 message (or the XRPL equivalent) with a single-use nonce",
            "ChallengeBody", {"201": _json(_ref("Challenge"), "The message to sign")}, {}, rate)
        out["/v1/auth/verify"] = _post(
            "Verify a signed challenge (EOA, EIP-1271 contract wallet, XRPL key); a short-lived token",
            "SigninBody", {"200": _json(_ref("Signin"), "Verified")},
            {"401": _json(_ref("SigninRefused"), "Refused; `reason` says why"),
             "503": _json(_ref("Error"), "The chain could not be asked")}, rate)
    return out
