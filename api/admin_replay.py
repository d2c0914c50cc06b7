"""Admin replays: the request is recorded here, a worker of `chainsettle run` runs it.

The API never fetches from a chain inside a request: a replay of a large
range takes minutes, and a read replica serving the API may not even reach
the RPC endpoints. `daemon/replay.py` claims pending rows and reports back
in the same row, which `GET /v1/admin/replay/{id}` shows.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from db import Queries, audit
from indexer.chain_state import heights

from .http import MAX_BIGINT, PlainText, RequestError, json_response, row_dict
from .routing import QueryInt, Routes, Runtime
from .state import ADMIN_ACTOR, POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
routes = Routes("admin", auth="admin")


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: Annotated[StrictStr, Runtime("chains")] = Field(description="A configured chain")
    from_block: StrictInt = Field(ge=0, le=MAX_BIGINT)
    to_block: StrictInt = Field(ge=0, le=MAX_BIGINT)
    reason: PlainText | None = Field(None, max_length=500)


class ReplayView(BaseModel):
    id: int = Field(ge=1)
    chain: str
    from_block: int
    to_block: int
    blocks: int = Field(ge=1)
    reason: str | None
    requested_by: str
    state: Literal["pending", "running", "done", "failed"]
    attempts: int
    inserted: int | None = Field(description="events the replay restored")
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    audit_id: int | None = Field(None, ge=1)


class Replay(BaseModel):
    replay: ReplayView


class ReplayPath(BaseModel):
    id: QueryInt(1) = Field(description="Replay id")


@routes.post("/v1/admin/replay", body=ReplayBody, response=Replay, status=202,
             headers={202: {"Location": {"schema": {"type": "string"}, "description": "Where to poll"}}},
             errors={409: "The chain has nothing indexed yet"})
async def request_replay(request: web.Request, body: ReplayBody) -> web.Response:
    """Request a replay of an indexed block range; `chainsettle run` executes it (audited)

    Recorded; poll Location for the outcome.
    """
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


@routes.get("/v1/admin/replay/{id}", params=ReplayPath, response=Replay, errors={404: "No such replay request"})
async def replay_status(request: web.Request, p: ReplayPath) -> web.Response:
    """A replay request and its outcome"""
    ident = p.id
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(Q.replay_by_id, ident)
    if row is None:
        raise RequestError("id", "no replay request with this id", status=404, code="not_found")
    replay = row_dict(row)
    replay["blocks"] = row["to_block"] - row["from_block"] + 1
    return json_response({"replay": replay})
