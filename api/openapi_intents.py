"""The OpenAPI description of the intent routes (api/admin_intents.py),
merged into the document by `openapi.build_spec`."""

from __future__ import annotations

from typing import Any

from .openapi import JSON, RATE_LIMITED


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _get(summary: str, ok: dict[str, Any], params: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    responses = {"200": ok, "400": _error("A parameter is malformed; `field` names it"), "429": RATE_LIMITED,
                 **extra, "default": _error("Any other error, as JSON")}
    return {"get": {"summary": summary, "responses": responses, "parameters": params}}


def _admin_op(summary: str, ok: dict[str, Any], *, body: str | None, body_required: bool = True,
              params: list[dict[str, Any]] | None = None, errors: dict[str, str] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {**ok, "400": _error("The request is malformed or refused; `field` names the problem"),
                                 "401": _error("Missing or wrong bearer token")}
    for status, text in (errors or {}).items():
        responses[status] = _error(text)
    responses["429"] = RATE_LIMITED
    responses["default"] = _error("Any other error, as JSON")
    op: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": body_required,
                             "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if params:
        op["parameters"] = params
    return op

_OBJ = {"type": "object"}
_INTENT_ID = {"name": "id", "in": "path", "required": True,
              "schema": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}, "description": "Intent id"}
_OCC_ID = {"name": "id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"}, "description": "Occurrence id"}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "At most this many (default 1000)")
_OCC_STATES = ["due", "delayed", "awaiting_approval", "requested", "executed", "failed", "missed", "skipped",
               "cancelled"]

SCHEMAS: dict[str, Any] = {
    "IntentBody": {
        "type": "object",
        "description": "An intent: see the README's Intents section for every field; refusals name the field.",
        "required": ["name", "chain", "asset", "to", "timezone", "start"],
        "properties": {
            "name": {"type": "string"}, "chain": {"type": "string"}, "asset": {"type": "string"},
            "to": {"type": "string"}, "amount_mode": {"type": "string", "enum": ["fixed", "above_floor"]},
            "cron": {"type": "string"}, "rrule": {"type": "string"}, "interval_seconds": {"type": "integer"},
            "timezone": {"type": "string"}, "end_of_month": {"type": "string", "enum": ["skip", "clamp"]},
            "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
            "missed_run_policy": {"type": "string", "enum": ["skip", "latest", "all"]},
        },
    },
    "IntentEdit": {"type": "object", "required": ["changes"],
                   "properties": {"changes": _OBJ, "reason": {"type": "string"}}},
    "IntentStateBody": {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 500}}},
}


def read_paths() -> dict[str, Any]:
    return {"/v1/intents/{id}/occurrences": _get(
        "Occurrences of an intent, newest first: state, reason, payout state, every evaluation",
        _json(_OBJ, "Occurrences"),
        params=[_INTENT_ID, _query("state", {"type": "string", "enum": _OCC_STATES}, "Only this state"), _LIMIT],
        extra={"404": _error("No such intent")})}


def admin_paths() -> dict[str, Any]:
    ok = {"200": _json(_OBJ, "The intent")}
    nf = {"404": "No such intent", "409": "The intent is cancelled or not in the state this needs"}
    paths: dict[str, Any] = {
        "/v1/admin/intents": {
            "post": _admin_op("Create an intent (audited)", {"201": _json(_OBJ, "Created")}, body="IntentBody"),
            "get": _admin_op("Intents, by id", {"200": _json(_OBJ, "Intents")}, body=None, params=[
                _query("state", {"type": "string", "enum": ["active", "paused", "cancelled"]}, "Only this state"),
                _LIMIT]),
        },
        "/v1/admin/intents/{id}": {
            "get": _admin_op("One intent with every version", ok, body=None, params=[_INTENT_ID],
                             errors={"404": "No such intent"}),
            "patch": _admin_op("Edit an intent: a new version for occurrences not yet made (audited)", ok,
                               body="IntentEdit", params=[_INTENT_ID], errors=nf),
        },
        "/v1/admin/intents/{id}/preview": {"get": _admin_op(
            "The next occurrences and what each evaluation would say now", {"200": _json(_OBJ, "Preview")},
            body=None, params=[_INTENT_ID, _query("next", {"type": "integer", "minimum": 1, "maximum": 1000},
                                                  "How many (default 12)")], errors={"404": "No such intent"})},
        "/v1/admin/intent-occurrences/{id}/approve": {"post": _admin_op(
            "Approve a catch-up occurrence above its intent's approval amount (audited)",
            {"200": _json(_OBJ, "Approved")}, body=None, params=[_OCC_ID],
            errors={"404": "No such occurrence", "409": "Not awaiting approval"})},
    }
    for action in ("pause", "resume", "cancel"):
        paths[f"/v1/admin/intents/{{id}}/{action}"] = {"post": _admin_op(
            f"{action.capitalize()} an intent (audited)", ok, body="IntentStateBody", body_required=False,
            params=[_INTENT_ID], errors=nf)}
    return paths
