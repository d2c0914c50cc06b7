"""The OpenAPI 3.0 description of every route, written by hand.

`build_spec` describes exactly the routes `make_app` registers (admin
routes only with a token, the page only when enabled); schemathesis runs
against it in tests/integration/test_api_schemathesis.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config.section_api import ApiSettings

from . import openapi_invoices
from .feed import POSITION_PATTERN
from .http import (
    CHAIN_NAME,
    EVENT_NAME,
    EVM_ADDRESS,
    IDENT_PATTERN,
    MAX_BIGINT,
    XRPL_ADDRESS,
    json_response,
)

OPENAPI = web.AppKey("openapi", dict)
ADDRESS_PATTERN = f"({EVM_ADDRESS.pattern[1:-1]})|({XRPL_ADDRESS.pattern[1:-1]})"
JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _int(nullable: bool = False, minimum: int | None = 0) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "format": "int64"}
    if minimum is not None:
        schema["minimum"] = minimum
    if nullable:
        schema["nullable"] = True
    return schema


def _str(nullable: bool = False, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    if nullable:
        schema["nullable"] = True
    return schema


def _obj(props: dict[str, Any], required: list[str] | None = None, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    schema["required"] = list(props) if required is None else required
    if nullable:
        schema["nullable"] = True
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


RATE_LIMITED = {
    "description": "Per-client rate limit exceeded",
    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait"}},
    "content": {JSON: {"schema": _ref("Error")}},
}


def _get(summary: str, ok: dict[str, Any], params: list[dict[str, Any]] | None = None,
         extra: dict[str, Any] | None = None, limited: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    if params is not None:
        responses["400"] = _error("A parameter is malformed; `field` names it")
    if limited:
        responses["429"] = RATE_LIMITED
    responses.update(extra or {})
    responses["default"] = _error("Any other error, as JSON")
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


def _schemas(api: ApiSettings) -> dict[str, Any]:
    nstr, nint = _str(nullable=True), _int(nullable=True)
    free = {"type": "object", "additionalProperties": True}
    run_summary = {
        "id": _int(), "chain": _str(), "height": nint, "started_at": _str(fmt="date-time"),
        "finished_at": _str(fmt="date-time"), "status": {"type": "string", "enum": ["ok", "mismatch", "error"]},
        "error": nstr, "checked": _int(), "mismatches": _int(),
    }
    result = _obj({
        "account": _str(), "asset_id": _str(), "expected": _str(), "actual": _str(), "difference": _str(),
        "tolerance": _str(), "status": {"type": "string", "enum": ["ok", "within_tolerance", "mismatch"]},
    })
    account = _obj({"id": _int(), "code": _str(), "kind": _str(), "label": nstr})
    payout = _obj({
        "id": _int(), "idempotency_key": _str(), "chain": _str(), "asset": _str(), "recipient": _str(),
        "amount": {"type": "string", "description": "base units"},
        "state": {"type": "string", "enum": ["pending", "batched", "paid", "held"]}, "reason": nstr,
        "requested_by": _str(), "created_at": _str(fmt="date-time"), "updated_at": _str(fmt="date-time"),
        "batch": _obj({"batch_id": _str(), "state": _str(), "executed_block": nint, "executed_tx": nstr,
                       "outcome": nstr}, nullable=True),
    })
    return {
        "Error": _obj({"error": _str(), "status": _int(minimum=100), "message": _str(), "field": _str()},
                      required=["error", "status", "message"]),
        "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}),
        "Ready": _obj({"ready": {"type": "boolean"}, "reasons": {"type": "array", "items": _str()}}),
        "Event": _obj({
            "id": _int(minimum=1), "chain": _str(), "block_number": _int(), "block_hash": _str(), "tx_hash": _str(),
            "tx_index": _int(), "log_index": _int(), "address": _str(), "event": _str(), "args": free,
            "inserted_at": _str(fmt="date-time"), "final": {"type": "boolean"},
        }),
        "EventPage": _obj({"events": {"type": "array", "items": _ref("Event")},
                           "next": {**nstr,
                                    "description": "pass as `cursor` for the next page; null when no more rows now"},
                           "resume": {**nstr,
                                      "description": "ascending order: pass as `cursor` later to get rows committed "
                                                     "since; following `next` then `resume` sees every row once"}}),
        "Reorg": _obj({
            "id": _int(), "detected_at": _str(fmt="date-time"), "common_ancestor": _int(), "old_cursor": _int(),
            "depth": _int(), "deleted_events": _int(),
        }),
        "ChainStatus": _obj({
            "chain": _str(), "kind": {"type": "string", "enum": ["evm", "xrpl"]}, "chain_id": _int(minimum=None),
            "configured": {"type": "boolean"}, "head": nint, "indexed": nint, "finalized": nint,
            "chain_finalized": nint, "lag_blocks": nint, "lag_seconds": {"type": "number", "nullable": True},
            "lag_threshold_blocks": nint, "state": nstr, "halted_reason": nstr, "last_error": nstr,
            "endpoints": {"type": "array", "items": free}, "reorg_count": _int(),
            "recent_reorgs": {"type": "array", "items": _ref("Reorg")},
            "head_seen_at": _str(nullable=True, fmt="date-time"), "updated_at": _str(fmt="date-time"),
            "factory_children": nint,
        }, required=["chain", "kind", "chain_id", "configured", "state", "endpoints", "reorg_count", "recent_reorgs"]),
        "Status": _obj({
            "generated_at": _str(fmt="date-time"),
            "chains": {"type": "array", "items": _ref("ChainStatus")},
            "payouts": _obj({
                "queue": {"type": "array", "items": _obj({
                    "chain": _str(), "asset": _str(), "state": _str(), "count": _int(), "amount": _str()})},
                "open_batches": {"type": "array", "items": _obj({"chain": _str(), "state": _str(), "count": _int()})},
                "kill_switches": {"type": "array", "items": _obj({
                    "scope": _str(), "reason": _str(), "changed_by": _str(), "changed_at": _str(fmt="date-time")})},
            }),
            "reconciliation": _obj({
                "latest": {"type": "array", "items": _obj(run_summary)},
                "paused_assets": {"type": "array", "items": _obj({
                    "asset_id": _str(), "reason": _str(), "run_id": nint, "paused_by": _str(),
                    "paused_at": _str(fmt="date-time")})},
            }),
        }),
        "Account": account,
        "Balances": _obj({"account": account, "balances": {"type": "array", "items": _obj({
            "asset_id": _str(), "chain": _str(), "symbol": nstr, "decimals": nint,
            "balance": {"type": "string", "description": "base units; positive = held (wallets) or owed (users)"},
            "final_balance": {"type": "string", "description": "the part booked at final heights"},
        })}}),
        "PayoutRequest": payout,
        "AccountPayouts": _obj({"account": account, "payouts": {"type": "array", "items": _ref("PayoutRequest")},
                                "next": nint}),
        "Payout": _obj({"payout": _ref("PayoutRequest")}),
        "Batch": _obj({"batch": _obj({
            "batch_id": _str(), "chain": _str(), "asset": _str(), "token": _str(), "source": _int(),
            "treasury": _str(), "batcher": _str(), "item_count": _int(), "total": _str(), "gas_limit": _int(),
            "expiry": _int(minimum=None), "state": _str(), "reason": nstr, "approved_by": nstr,
            "approved_at": _str(nullable=True, fmt="date-time"), "signer": nstr, "replaces": nstr,
            "executed_block": nint, "executed_tx": nstr, "failed_count": nint, "failed_amount": nstr,
            "created_at": _str(fmt="date-time"), "updated_at": _str(fmt="date-time"),
            "items": {"type": "array", "items": _obj({
                "idx": _int(), "request_id": _int(), "recipient": _str(), "amount": _str(), "outcome": nstr})},
            "transactions": {"type": "array", "items": _obj({
                "tx_hash": _str(), "sender": _str(), "nonce": _int(), "attempt": _int(), "state": _str(),
                "broadcasts": _int(), "gas_limit": _int(), "max_fee_per_gas": _str(),
                "max_priority_fee_per_gas": _str(), "mined_block": nint, "receipt_status": nint,
                "last_error": nstr, "created_at": _str(fmt="date-time"),
                "last_broadcast_at": _str(nullable=True, fmt="date-time")})},
        })}),
        "ReconciliationRun": _obj({**run_summary, "results": {"type": "array", "items": result}}),
        "ReconciliationPage": _obj({"runs": {"type": "array", "items": _ref("ReconciliationRun")}, "next": nint}),
        "ReplayRequest": {
            "type": "object", "additionalProperties": False, "required": ["chain", "from_block", "to_block"],
            "properties": {
                "chain": _str(), "from_block": {**_int(), "maximum": MAX_BIGINT},
                "to_block": {**_int(), "maximum": MAX_BIGINT},
                "reason": {"type": "string", "maxLength": 500, "nullable": True},
            },
        },
        "Replay": _obj({"replay": _obj({
            "id": _int(minimum=1), "chain": _str(), "from_block": _int(), "to_block": _int(),
            "blocks": _int(minimum=1), "reason": nstr, "requested_by": _str(),
            "state": {"type": "string", "enum": ["pending", "running", "done", "failed"]},
            "attempts": _int(), "inserted": {**nint, "description": "events the replay restored"},
            "error": nstr, "created_at": _str(fmt="date-time"),
            "started_at": _str(nullable=True, fmt="date-time"), "finished_at": _str(nullable=True, fmt="date-time"),
            "audit_id": _int(minimum=1),
        }, required=["id", "chain", "from_block", "to_block", "blocks", "reason", "requested_by", "state",
                     "attempts", "inserted", "error", "created_at", "started_at", "finished_at"])}),
        "PayoutRequestBody": {
            "type": "object", "additionalProperties": False, "required": ["chain", "asset", "to", "amount", "key"],
            "properties": {
                "chain": {"type": "string", "maxLength": 64, "description": "A chain of [[payouts.chains]]"},
                "asset": {"type": "string", "maxLength": 64, "description": "'native' or a contract name"},
                "to": {"type": "string", "pattern": f"^({ADDRESS_PATTERN})$",
                       "description": "The recipient: a 0x address (EVM) or a classic r-address (XRPL)"},
                "amount": {"oneOf": [
                    {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT},
                    {"type": "string", "pattern": "^[0-9]{1,78}$", "description": "base units, for any size"},
                ]},
                "key": {"type": "string", "pattern": "^[!-~]{1,200}$",
                        "description": "Idempotency key: the same key and payout returns the stored request"},
                "destination_tag": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "nullable": True,
                                    "description": "XRPL only"},
            },
        },
        "PayoutCreated": _obj({"payout": _ref("PayoutRequest"),
                               "created": {"type": "boolean", "description": "false: the key's stored request"}}),
        "BatchApproved": _obj({"batch": _obj({"batch_id": _str(), "state": _str(), "approved_by": _str()})}),
        "KillSwitchBody": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "chain": {"type": "string", "maxLength": 64, "nullable": True,
                          "description": "A configured chain; absent: every chain"},
                "reason": {"type": "string", "maxLength": 500, "nullable": True},
            },
        },
        "KillSwitch": _obj({
            "scope": _str(), "killed": {"type": "boolean"}, "reason": _str(), "changed_by": _str(),
            "kill_switches": {"type": "array", "items": _obj({
                "scope": _str(), "reason": _str(), "changed_by": _str(), "changed_at": _str(fmt="date-time")})},
        }),
        "ResolveBody": {
            "type": "object", "additionalProperties": False, "required": ["reason"],
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
        },
        "Resolved": _obj({"resolved": _obj({
            "asset": _str(), "pause_id": _int(), "paused_because": _str(), "resolution": _str()})}),
        # Held payouts: list, release, cancel (issue 11).
        "Held": _obj({"held": {"type": "array", "items": _obj({
            "id": _int(), "idempotency_key": _str(), "chain": _str(), "asset": _str(), "recipient": _str(),
            "amount": _str(), "reason": {"type": "string", "nullable": True},
            "batch_id": {"type": "string", "nullable": True}, "batch_state": {"type": "string", "nullable": True},
            "updated_at": _str(fmt="date-time")})}}),
        "ReleaseBody": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "without": {"type": "array", "maxItems": 200, "items": {"type": "string", "maxLength": 128},
                            "description": "Recipients that stay held"},
                "reason": {"type": "string", "maxLength": 500, "nullable": True},
            },
        },
        "Released": _obj({"release": _obj({
            "batch_id": _str(), "released": {"type": "array", "items": _int()},
            "kept_held": {"type": "array", "items": _str()}, "then": _str()})}),
        "CancelBody": {
            "type": "object", "additionalProperties": False, "required": ["reason"],
            "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
        },
        "Cancelled": _obj({"cancel": _obj({
            "batch_id": _str(), "cancelled": {"type": "array", "items": _int()}, "reason": _str()})}),
    }


def build_spec(api: ApiSettings, *, admin: bool, chains: list[str],
               payouts: dict[str, list[str]] | None = None, signin: bool = False) -> dict[str, Any]:
    """`payouts`: the asset names of each chain with payouts configured."""
    chain = _query("chain", {"type": "string", "pattern": CHAIN_NAME.pattern}, "Only this chain")
    block = {**_int(), "maximum": MAX_BIGINT}
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": api.max_page_size},
                   f"Page size (default {api.default_page_size}, at most {api.max_page_size})")
    cursor = _query("cursor", {**block}, "The `next` value of the previous page")
    address_pattern = ADDRESS_PATTERN
    ident = {"name": "id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": IDENT_PATTERN}, "description": "Id or code"}
    not_found = {"404": _error("No such resource")}
    paths: dict[str, Any] = {
        "/health": _get("The process is alive", _json(_ref("Health"), "Alive"), limited=False),
        "/ready": _get(
            "Database reachable, every chain within its lag threshold, none halted",
            _json(_ref("Ready"), "Ready"), limited=False,
            extra={"503": _json(_ref("Ready"), "Not ready; `reasons` says why")},
        ),
        "/v1/status": _get("Per-chain follower status, payout queue, last reconciliation",
                           _json(_ref("Status"), "Status"), params=[]),
        "/v1/events": _get("Stored events, filtered, in keyset pages in commit order", _json(_ref("EventPage"), "A page"), params=[
            chain,
            _query("address", {"type": "string", "pattern": f"^({address_pattern})$"},
                   "Emitting contract / account (needs `chain`)"),
            _query("event", {"type": "string", "pattern": EVENT_NAME.pattern}, "Event name, e.g. Transfer (needs `chain`)"),
            _query("from_block", block, "Lowest block number (needs `chain`)"),
            _query("to_block", block, "Highest block number, at least from_block (needs `chain`)"),
            limit,
            _query("cursor", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,80}$"},
                   "The `next` (or `resume`) value of a previous page, unchanged"),
            _query("order", {"type": "string", "enum": ["asc", "desc"]}, "By commit order; default asc"),
        ]),
        "/v1/deliveries": _get("Delivery subscriptions: state, backlog, lag, dead letters (no targets or secrets)",
                               _json(_obj({"subscriptions": {"type": "array", "items": {
                                   "type": "object", "additionalProperties": True}},
                                   "assets": {"type": "array", "description": "symbol and decimals per asset",
                                              "items": {"type": "object", "additionalProperties": True}}}),
                                     "Subscriptions, and the assets' units for display"),
                               params=[]),
        "/v1/stream": {"get": {
            "summary": "Server-sent events in commit order; resumable",
            "description": (
                "Messages named `chain_event` (a stored event), `payout` (a payout request created or "
                "changing state), `batch` (a batch created or changing state), `reconciliation` (a finished "
                "run with its results), `asset_pause` (a reconciliation pause opened or resolved), "
                "`payout_control` (a kill switch set or lifted), `invoice` (an invoice created or changing "
                "state) and `intent` (an intent occurrence executed, delayed, missed, failed, held or "
                "awaiting approval, or a low-buffer warning). Every `id:` is a position in one total "
                "order across all of them: `tx.id` for events, `tx.oN` for the rest."
            ),
            "parameters": [
                chain,
                _query("last_event_id", {"type": "string", "pattern": POSITION_PATTERN},
                       "Resume after this position (the Last-Event-ID header wins)"),
                {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": POSITION_PATTERN},
                 "description": "Sent by EventSource on reconnect"},
            ],
            "responses": {
                "200": {"description": "An endless event stream; `: ping` comments keep it alive",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                "400": _error("A parameter is malformed"),
                "429": RATE_LIMITED,
                "503": _error("Too many clients, or the feed cannot reach the database"),
                "default": _error("Any other error, as JSON"),
            },
        }},
        "/v1/accounts/{id}/balances": _get(
            "Ledger balances of one account, per asset", _json(_ref("Balances"), "Balances"),
            params=[ident], extra=not_found),
        "/v1/accounts/{id}/payouts": _get(
            "Payouts to one account, newest first", _json(_ref("AccountPayouts"), "Payouts"),
            params=[ident, limit, cursor], extra=not_found),
        "/v1/payouts/{id}": _get("One payout request, by id or idempotency key", _json(_ref("Payout"), "The payout"), params=[ident], extra=not_found),
        "/v1/batches/{id}": _get("One payout batch", _json(_ref("Batch"), "The batch"), params=[ident],
                                 extra=not_found),
        "/v1/reconciliation": _get(
            "Reconciliation runs, newest first, with their results", _json(_ref("ReconciliationPage"), "A page"),
            params=[chain, _query("status", {"type": "string", "enum": ["any", "ok", "mismatch", "error"]},
                                  "Only runs with this outcome"), limit, cursor]),
        "/openapi.json": _get("This document", {"description": "OpenAPI 3.0", "content": {JSON: {"schema": {
            "type": "object"}}}}, params=[]),
        "/metrics": _get("Prometheus metrics", {"description": "Exposition format", "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/openmetrics-text": {"schema": {"type": "string"}},
        }}, limited=False),
    }
    if api.status_page:
        html = {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
        paths["/"] = _get("The status page", html)
        for name, media in (("app.js", "text/javascript"), ("style.css", "text/css")):
            paths[f"/static/{name}"] = _get(f"Status page asset {name}", {
                "description": name, "content": {media: {"schema": {"type": "string"}}}})
    from . import openapi_intents  # the intent routes describe themselves

    paths.update(openapi_intents.read_paths())
    from .factory_routes import paths as factory_paths  # the factory children route

    paths.update(factory_paths())
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "chainsettle", "version": "1",
                 "description": "Read API over indexed chain events, the ledger, payouts and reconciliation."},
        "paths": paths,
        "components": {"schemas": _schemas(api)},
    }
    if admin:
        schemas = spec["components"]["schemas"]
        if chains:
            configured = {"type": "string", "enum": chains, "description": "A configured chain"}
            schemas["ReplayRequest"]["properties"]["chain"] = configured
            # OpenAPI 3.0: a nullable enum must list null itself.
            schemas["KillSwitchBody"]["properties"]["chain"] = {**configured, "enum": [*chains, None], "nullable": True}
        if payouts:
            body = schemas["PayoutRequestBody"]["properties"]
            body["chain"] = {"type": "string", "enum": sorted(payouts), "description": "A chain of [[payouts.chains]]"}
            body["asset"] = {"type": "string", "enum": sorted({a for names in payouts.values() for a in names}),
                             "description": "A payout asset of that chain"}
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        paths.update(_admin_paths())
        if chains:
            held = paths["/v1/admin/payouts/held"]["get"]["parameters"][0]
            held["schema"] = {"type": "string", "enum": chains}
        paths.update(_delivery_paths())  # api/admin_deliveries.py
        schemas.update(_delivery_schemas())
        paths.update(openapi_intents.admin_paths())
        schemas.update(openapi_intents.SCHEMAS)
    # Invoices, verify-payment and sign-in (api/openapi_invoices.py).
    spec["components"]["schemas"].update(openapi_invoices.schemas())
    paths.update(openapi_invoices.paths(admin=admin, signin=signin, rate=RATE_LIMITED))
    return spec


def _admin_op(summary: str, ok: dict[str, Any], *, body: str | None, body_required: bool = True,
              params: list[dict[str, Any]] | None = None, errors: dict[str, str] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ok)
    responses["400"] = _error("The request is malformed or refused; `field` names the problem")
    responses["401"] = _error("Missing or wrong bearer token")
    for status, text in (errors or {}).items():
        responses[status] = _error(text)
    responses["429"] = RATE_LIMITED
    responses["default"] = _error("Any other error, as JSON")
    op: dict[str, Any] = {"summary": summary, "security": [{"bearer": []}], "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": body_required, "content": {JSON: {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return op


def _admin_paths() -> dict[str, Any]:
    batch_id = {"name": "id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}, "description": "Batch id"}
    asset_id = {"name": "asset_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": IDENT_PATTERN}, "description": "Asset id, e.g. anvil:native"}
    replay_id = {"name": "id", "in": "path", "required": True,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BIGINT}, "description": "Replay id"}
    kill = "Set the payout kill switch of one chain, or of all (audited)"
    return {
        "/v1/admin/payouts": {"post": _admin_op(
            "Request a payout, idempotent by `key` (audited)",
            {"201": _json(_ref("PayoutCreated"), "Created"),
             "200": _json(_ref("PayoutCreated"), "The key's stored request for this same payout")},
            body="PayoutRequestBody", errors={"409": "The key was used for a different payout"})},
        "/v1/admin/batches/{id}/approve": {"post": _admin_op(
            "Approve a batch awaiting approval (audited)", {"200": _json(_ref("BatchApproved"), "Approved")},
            body=None, params=[batch_id],
            errors={"404": "No such batch", "409": "The batch is not awaiting approval"})},
        "/v1/admin/payouts/pause": {"post": _admin_op(
            kill, {"200": _json(_ref("KillSwitch"), "Set; `kill_switches` lists every active one")},
            body="KillSwitchBody", body_required=False)},
        "/v1/admin/payouts/resume": {"post": _admin_op(
            "Lift the payout kill switch of one chain, or the global one (audited)",
            {"200": _json(_ref("KillSwitch"), "Lifted; `kill_switches` lists those still active")},
            body="KillSwitchBody", body_required=False)},
        "/v1/admin/assets/{asset_id}/resolve": {"post": _admin_op(
            "Lift the reconciliation pause of an asset (audited)", {"200": _json(_ref("Resolved"), "Lifted")},
            body="ResolveBody", params=[asset_id],
            errors={"404": "No such asset", "409": "The asset has no open pause"})},
        "/v1/admin/replay": {"post": _admin_op(
            "Request a replay of an indexed block range; `chainsettle run` executes it (audited)",
            {"202": _json(_ref("Replay"), "Recorded; poll Location for the outcome")},
            body="ReplayRequest", errors={"409": "The chain has nothing indexed yet"})},
        "/v1/admin/payouts/held": {"get": _admin_op(
            "Held payout requests with their reasons", {"200": _json(_ref("Held"), "Oldest first")},
            body=None, params=[{"name": "chain", "in": "query", "required": False, "schema": {"type": "string"},
                                "description": "Only this chain"}])},
        "/v1/admin/batches/{id}/release": {"post": _admin_op(
            "Requeue a batch's held requests once nothing signed can pay them (audited)",
            {"200": _json(_ref("Released"), "Released")}, body="ReleaseBody", body_required=False,
            params=[batch_id], errors={"404": "No such batch", "409": "Nothing held, or the batch could still pay"})},
        "/v1/admin/batches/{id}/cancel": {"post": _admin_op(
            "Cancel an unsigned batch or a batch's held requests; frees the reservation (audited)",
            {"200": _json(_ref("Cancelled"), "Cancelled")}, body="CancelBody", params=[batch_id],
            errors={"404": "No such batch", "409": "Nothing to cancel, or a signature may still execute"})},
        "/v1/admin/replay/{id}": {"get": _admin_op(
            "A replay request and its outcome", {"200": _json(_ref("Replay"), "The request")},
            body=None, params=[replay_id], errors={"404": "No such replay request"})},
    }


def _delivery_schemas() -> dict[str, Any]:
    free = {"type": "object", "additionalProperties": True}
    strs = {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 100}
    sub = {**_obj({"id": _str(), "sink": {"type": "string", "enum": ["webhook", "redis"]}, "url": _str(),
                   "stream": _str(nullable=True), "filter": free,
                   "finality": {"type": "string", "enum": ["instant", "final"]},
                   "ordering": {"type": "string", "enum": ["per_key", "strict"]},
                   "state": {"type": "string", "enum": ["active", "paused", "disabled"]},
                   "state_reason": _str(nullable=True), "cursor": _str(), "pending": _int(), "dead": _int(),
                   "lag_seconds": {"type": "number", "nullable": True},
                   "secret": {**_str(), "description": "Only in the answer that made it (create, rotate)"}},
                  required=["id", "sink", "url", "finality", "ordering", "state", "cursor"]),
           "additionalProperties": True}
    return {
        "DeliverySubscription": _obj({"subscription": sub}),
        "DeliveryList": _obj({"subscriptions": {"type": "array", "items": sub}}),
        "DeliveryCreate": {
            "type": "object", "additionalProperties": False, "required": ["id", "sink", "url"],
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
                "sink": {"type": "string", "enum": ["webhook", "redis"]},
                "url": {"type": "string", "description": "https:// webhook (http:// only to loopback), or redis://"},
                "stream": {"type": "string", "pattern": "^[A-Za-z0-9:._{}-]{1,200}$",
                           "description": "redis only"},
                "secrets": {**strs, "description": "A whsec_ secret to use; generated when absent"},
                "filter": {"type": "object", "additionalProperties": False, "properties": {
                    k: strs for k in ("chains", "contracts", "events", "accounts", "types")}},
                "finality": {"type": "string", "enum": ["instant", "final"]},
                "ordering": {"type": "string", "enum": ["per_key", "strict"]},
                "start": {"type": "string", "enum": ["now", "earliest"]},
            }},
        "DeliveryStateBody": {"type": "object", "additionalProperties": False,
                              "properties": {"reason": {"type": "string", "maxLength": 500, "nullable": True}}},
        "DeliveryRotateBody": {"type": "object", "additionalProperties": False, "properties": {
            "overlap_seconds": {"type": "integer", "minimum": 0, "maximum": 30 * 86_400, "nullable": True}}},
        "DeliveryRedeliverBody": {"type": "object", "additionalProperties": False, "properties": {
            "msg_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$", "nullable": True},
            "event_id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$", "nullable": True},
            "from_seq": {**_int(minimum=1), "nullable": True}, "to_seq": {**_int(minimum=1), "nullable": True},
            "from_time": _str(nullable=True, fmt="date-time"), "to_time": _str(nullable=True, fmt="date-time"),
            "from_block": _int(nullable=True), "to_block": _int(nullable=True)}},
        "DeliveryRows": {"type": "object", "additionalProperties": True},
    }


def _delivery_paths() -> dict[str, Any]:
    sub_id = {"name": "id", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}, "description": "Subscription id"}
    nf = {"404": "No such subscription"}
    one = {"200": _json(_ref("DeliverySubscription"), "The subscription")}
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (default 100)")
    return {
        "/v1/admin/deliveries": {
            "get": _admin_op("Delivery subscriptions (secrets never shown)",
                             {"200": _json(_ref("DeliveryList"), "All")}, body=None),
            "post": _admin_op("Create a subscription; a webhook's generated secret is in this answer only (audited)",
                              {"201": _json(_ref("DeliverySubscription"), "Created")}, body="DeliveryCreate",
                              errors={"409": "A subscription with this id exists"}),
        },
        "/v1/admin/deliveries/{id}": {
            "get": _admin_op("One subscription", one, body=None, params=[sub_id], errors=nf),
            "delete": _admin_op("Delete a subscription, its queue and attempts (audited)",
                                {"200": _json(_ref("DeliveryRows"), "Deleted")}, body=None, params=[sub_id],
                                errors=nf),
        },
        "/v1/admin/deliveries/{id}/pause": {"post": _admin_op(
            "Stop sending; the queue keeps filling (audited)", one, body="DeliveryStateBody", body_required=False,
            params=[sub_id], errors=nf)},
        "/v1/admin/deliveries/{id}/resume": {"post": _admin_op(
            "Send again; also re-enables a disabled subscription (audited)", one, body="DeliveryStateBody",
            body_required=False, params=[sub_id], errors=nf)},
        "/v1/admin/deliveries/{id}/rotate": {"post": _admin_op(
            "New signing secret, in this answer only; old ones sign on during the overlap (audited)", one,
            body="DeliveryRotateBody", body_required=False, params=[sub_id],
            errors={**nf, "409": "Not a webhook subscription"})},
        "/v1/admin/deliveries/{id}/ping": {"post": _admin_op(
            "Queue a test message through the normal path (audited)",
            {"202": _json(_ref("DeliveryRows"), "Queued")}, body=None, params=[sub_id], errors=nf)},
        "/v1/admin/deliveries/{id}/redeliver": {"post": _admin_op(
            "Queue again one message (msg_id, event_id) or a range by seq, commit time or block (audited)",
            {"202": _json(_ref("DeliveryRows"), "How many were queued")}, body="DeliveryRedeliverBody",
            params=[sub_id], errors=nf)},
        "/v1/admin/deliveries/{id}/attempts": {"get": _admin_op(
            "Delivery attempts newest first: outcome, status code, latency, first bytes of the answer",
            {"200": _json(_ref("DeliveryRows"), "A page")}, body=None, params=[
                sub_id, _query("msg_id", {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,200}$"}, "One message"),
                _query("before", {**_int(minimum=1), "maximum": MAX_BIGINT}, "The `next` of the previous page"),
                limit])},
        "/v1/admin/deliveries/{id}/messages": {"get": _admin_op(
            "The subscription's messages in its order, with state and attempts",
            {"200": _json(_ref("DeliveryRows"), "A page")}, body=None, params=[
                sub_id, _query("after", {**_int(), "maximum": MAX_BIGINT}, "Sequence number to start after"),
                _query("state", {"type": "string", "enum": ["any", "pending", "delivered", "dead"]}, "Filter"),
                limit])},
        "/v1/admin/deliveries/{id}/pull": {"get": _admin_op(
            "Missed messages after a cursor (a body's `cursor` or an SSE id), bodies exactly as sent",
            {"200": _json(_ref("DeliveryRows"), "Messages and the next cursor")}, body=None, params=[
                sub_id, {**_query("cursor", {"type": "string", "pattern": "^[0-9]{1,20}\\.[od]?[0-9]{1,19}$"},
                                  "Position to resume after"), "required": True},
                {**limit, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}], errors=nf)},
    }


async def openapi_handler(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
