"""Admin replays: the request is recorded here, a worker of `chainsettle run` runs it.

The API never fetches from a chain inside a request: a replay of a large
range takes minutes, and a read replica serving the API may not even reach
the RPC endpoints. `daemon/replay.py` claims pending rows and reports back
in the same row, which `GET /v1/admin/replay/{id}` shows.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from db import Queries, audit
from indexer.chain_state import heights

from .http import (
    MAX_BIGINT,
    PlainText,
    Query,
    RequestError,
    json_body,
    json_response,
    parse_int,
    row_dict,
)
from .state import ADMIN_ACTOR, POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
routes = web.RouteTableDef()


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr
    from_block: StrictInt = Field(ge=0, le=MAX_BIGINT)
    to_block: StrictInt = Field(ge=0, le=MAX_BIGINT)
    reason: PlainText | None = Field(None, max_length=500)


@routes.post("/v1/admin/replay")
async def request_replay(request: web.Request) -> web.Response:
    body: ReplayBody = await json_body(request, ReplayBody)
    names = [c.name for c in request.app[SETTINGS].chains]
    if body.chain not in names:
        raise RequestError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    if body.to_block < body.from_block:
        raise RequestError("to_block", f"must be at least from_block ({body.from_block})")
    actor = request.app[ADMIN_ACTOR]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        state = await heights(conn, body.chain)
        indexed = state.cursor if state else None
        if indexed is None:
            raise RequestError("chain", "nothing indexed yet on this chain", status=409, code="conflict")
        if body.to_block > indexed:
            raise RequestError("to_block", f"is above the indexed block {indexed}; only indexed ranges can be replayed")
        row = await conn.fetchrow(Q.insert_replay, body.chain, body.from_block, body.to_block, body.reason, actor)
        details = {"replay_id": row["id"], "from_block": body.from_block, "to_block": body.to_block,
                   "reason": body.reason, "peer": request.remote}
        audit_row = await audit(conn, actor, "replay.requested", f"chain:{body.chain}", details)
    replay = row_dict(row)
    replay["blocks"] = body.to_block - body.from_block + 1
    replay["audit_id"] = audit_row["id"]
    return json_response({"replay": replay}, status=202, headers={"Location": f"/v1/admin/replay/{row['id']}"})


@routes.get("/v1/admin/replay/{id}")
async def replay_status(request: web.Request) -> web.Response:
    Query(request.query, set())
    ident = parse_int("id", request.match_info["id"], low=1)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(Q.replay_by_id, ident)
    if row is None:
        raise RequestError("id", "no replay request with this id", status=404, code="not_found")
    replay = row_dict(row)
    replay["blocks"] = row["to_block"] - row["from_block"] + 1
    return json_response({"replay": replay})
