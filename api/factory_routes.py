"""GET /v1/chains/{chain}/children: the contracts factories created (public chain data)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from indexer.chain_state import factory_children

from .http import EVM_ADDRESS, RequestError, json_response
from .routing import ChainName, QueryInt, Routes, Text
from .state import POOL, SETTINGS

routes = Routes("public", auth=None)
MAX_LIMIT = 1000


class ChildrenQuery(BaseModel):
    chain: ChainName
    factory: ChainName | None = Field(None, description="Only the children of this factory (its contract name)")
    after: Text(EVM_ADDRESS.pattern, "a 0x-prefixed 20-byte hex address (the `next` of a previous page)") | None = None
    limit: QueryInt(1, MAX_LIMIT) = Field(100, description="Page size")


class Child(BaseModel):
    address: str
    factory: str
    factory_address: str
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    final: bool


class ChildrenPage(BaseModel):
    chain: str
    children: list[Child]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


@routes.get("/v1/chains/{chain}/children", params=ChildrenQuery, response=ChildrenPage,
            errors={404: "No such chain"})
async def children(request: web.Request, p: ChildrenQuery) -> web.Response:
    """Contracts the chain's factories created, by address, with the event that announced each"""
    if p.chain not in {c.name for c in request.app[SETTINGS].chains}:
        raise RequestError("chain", "no such chain", status=404, code="not_found")
    async with request.app[POOL].acquire() as conn:
        rows = await factory_children(conn, p.chain, p.factory, p.after.lower() if p.after else None, p.limit + 1)
    more = len(rows) > p.limit
    rows = rows[:p.limit]
    return json_response({"chain": p.chain, "children": rows, "next": rows[-1]["address"] if more else None})
