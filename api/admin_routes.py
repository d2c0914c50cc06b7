"""Admin routes: registered only when `api.admin_token` is configured.

The bearer token is checked by `middleware.admin_auth` before any handler
here runs; every accepted request writes an audit row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from db import Queries

from .http import MAX_BIGINT, RequestError, json_response
from .state import POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
ACTOR = "admin-api"
routes = web.RouteTableDef()


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr
    from_block: StrictInt = Field(ge=0, le=MAX_BIGINT)
    to_block: StrictInt = Field(ge=0, le=MAX_BIGINT)
    reason: StrictStr | None = Field(None, max_length=500)


async def json_body(request: web.Request, model: type[BaseModel]) -> Any:
    """Parse and validate a JSON object body; errors name the offending field."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise RequestError("body", "must be valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise RequestError(field, err["msg"]) from None


@routes.post("/v1/admin/replay")
async def replay(request: web.Request) -> web.Response:
    body: ReplayRequest = await json_body(request, ReplayRequest)
    names = [c.name for c in request.app[SETTINGS].chains]
    if body.chain not in names:
        raise RequestError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    if body.to_block < body.from_block:
        raise RequestError("to_block", f"must be at least from_block ({body.from_block})")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        state = await conn.fetchrow(Q.chain_cursor, body.chain)
        indexed = state["cursor_number"] if state else None
        if indexed is None:
            raise RequestError("chain", "nothing indexed yet on this chain", status=409, code="conflict")
        if body.to_block > indexed:
            raise RequestError("to_block", f"is above the indexed block {indexed}; only indexed ranges can be replayed")
        details = {"from_block": body.from_block, "to_block": body.to_block, "reason": body.reason,
                   "peer": request.remote}
        audit = await conn.fetchrow(Q.insert_audit, ACTOR, "replay.requested", f"chain:{body.chain}", details)
    return json_response({
        "status": "recorded",
        "audit_id": audit["id"],
        "chain": body.chain,
        "from_block": body.from_block,
        "to_block": body.to_block,
        "blocks": body.to_block - body.from_block + 1,
    }, status=202)
