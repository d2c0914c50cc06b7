"""GET /v1/chains/{chain}/children: the contracts factories created (public chain data)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from indexer.chain_state import factory_children

from .http import CHAIN_NAME, EVM_ADDRESS, Query, RequestError, json_response
from .openapi import JSON, RATE_LIMITED
from .state import POOL, SETTINGS

routes = web.RouteTableDef()
MAX_LIMIT = 1000


@routes.get("/v1/chains/{chain}/children")
async def children(request: web.Request) -> web.Response:
    chain = request.match_info["chain"]
    if not CHAIN_NAME.fullmatch(chain) or chain not in {c.name for c in request.app[SETTINGS].chains}:
        raise RequestError("chain", "no such chain", status=404, code="not_found")
    q = Query(request.query, {"factory", "after", "limit"})
    factory = q.text("factory", CHAIN_NAME, "a contract name of this chain")
    after = q.text("after", EVM_ADDRESS, "a 0x-prefixed 20-byte hex address (the `next` of a previous page)")
    limit = q.integer("limit", default=100, low=1, high=MAX_LIMIT)
    async with request.app[POOL].acquire() as conn:
        rows = await factory_children(conn, chain, factory, after.lower() if after else None, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response({"chain": chain, "children": rows, "next": rows[-1]["address"] if more else None})


def paths() -> dict[str, Any]:
    error = {"description": "Error", "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    child = {"type": "object", "properties": {
        "address": {"type": "string"}, "factory": {"type": "string"}, "factory_address": {"type": "string"},
        "block_number": {"type": "integer"}, "block_hash": {"type": "string"}, "tx_hash": {"type": "string"},
        "tx_index": {"type": "integer"}, "log_index": {"type": "integer"}, "final": {"type": "boolean"}}}
    page = {"type": "object", "properties": {
        "chain": {"type": "string"}, "children": {"type": "array", "items": child},
        "next": {"type": "string", "nullable": True}}}
    params = [
        {"name": "chain", "in": "path", "required": True, "schema": {"type": "string", "pattern": CHAIN_NAME.pattern}},
        {"name": "factory", "in": "query", "required": False, "schema": {"type": "string", "pattern": CHAIN_NAME.pattern},
         "description": "Only the children of this factory (its contract name)"},
        {"name": "after", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": EVM_ADDRESS.pattern}, "description": "The `next` of the previous page"},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "description": "Page size (default 100)"},
    ]
    return {"/v1/chains/{chain}/children": {"get": {
        "summary": "Contracts the chain's factories created, by address, with the event that announced each",
        "parameters": params,
        "responses": {"200": {"description": "A page", "content": {JSON: {"schema": page}}},
                      "400": error, "404": error, "429": RATE_LIMITED, "default": error}}}}
