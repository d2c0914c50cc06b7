"""Admin routes: registered only when `api.admin_token` is configured.

The bearer token is checked by `middleware.admin_auth` before any handler
here runs. The settlement functions called here write their own audit
rows, in the transaction of the change; the actor they record is
`admin_actor(token)`, a label that names the token without revealing it.
Replays live in `admin_replay.py`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from config import Secret
from db import Queries
from settlement.ledger.books import LedgerError, NoOpenPause
from settlement.ledger.pauses import resolve_pause
from settlement.payouts.operator import cancel_batch, held_payouts, release_batch
from settlement.payouts.requests import (
    BatchNotFound,
    BatchStateConflict,
    PayoutError,
    approve_batch,
    request_payout,
    set_kill_switch,
)

from .http import PlainText, RequestError, json_body, json_response, path_ident
from .settlement_routes import payout_view
from .state import ADMIN_ACTOR, POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
routes = web.RouteTableDef()
BATCH_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
AMOUNT_TEXT = re.compile(r"^[0-9]{1,78}$")
MAX_UNITS = 2**256 - 1


def admin_actor(token: Secret) -> str:
    """'api:' and 8 hex digits of a domain-separated hash: stable per token, never the token."""
    digest = hashlib.sha256(b"chainsettle-admin-actor\x00" + token.reveal().encode()).hexdigest()
    return f"api:{digest[:8]}"


_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}


def _refused(exc: PayoutError, fields: set[str]) -> RequestError:
    """The refusal under the field it names, when that field is one of the request's."""
    status = _STATUS.get(exc.code, 400)
    if exc.field in fields:
        return RequestError(exc.field, exc.reason, status=status, code=exc.code)
    return RequestError(None, str(exc), status=status, code=exc.code)


class PayoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    asset: StrictStr = Field(max_length=64)
    to: StrictStr = Field(max_length=128)
    amount: StrictInt | StrictStr
    key: StrictStr = Field(max_length=200)
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    from_account: StrictStr | None = Field(None, max_length=200)  # default: the recipient's user account


def _amount(value: int | str) -> int:
    if isinstance(value, str):
        if not AMOUNT_TEXT.fullmatch(value):
            raise RequestError("amount", "must be a positive integer in base units (digits only)")
        value = int(value)
    if not 0 < value <= MAX_UNITS:
        raise RequestError("amount", "must be a positive integer in base units, below 2**256")
    return value


@routes.post("/v1/admin/payouts")
async def create_payout(request: web.Request) -> web.Response:
    """201 with a new request; 200 with the stored one when its key was used for the same payout."""
    body: PayoutBody = await json_body(request, PayoutBody)
    amount = _amount(body.amount)
    pool = request.app[POOL]
    try:
        stored, created = await request_payout(
            pool, request.app[SETTINGS], chain=body.chain, asset=body.asset, to=body.to, amount=amount,
            key=body.key, actor=request.app[ADMIN_ACTOR], destination_tag=body.destination_tag,
            from_account=body.from_account)
    except PayoutError as exc:
        raise _refused(exc, set(PayoutBody.model_fields)) from None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(Q.payout_by_ref, None, stored["id"])
    return json_response({"payout": payout_view(row), "created": created}, status=201 if created else 200)


@routes.post("/v1/admin/batches/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    batch_id = path_ident(request)
    if not BATCH_ID.fullmatch(batch_id):
        raise RequestError("id", "must be a batch id: 0x and 64 hex digits")
    if await request.read():
        raise RequestError("body", "this route takes no body")
    pool = request.app[POOL]
    try:
        result = await approve_batch(pool, batch_id, request.app[ADMIN_ACTOR])
    except BatchNotFound:
        raise RequestError("id", "no batch with this id", status=404, code="not_found") from None
    except BatchStateConflict as exc:
        raise RequestError("id", f"the batch is {exc.state}, not awaiting approval", status=409,
                           code="conflict") from None
    return json_response({"batch": result})


class KillSwitchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr | None = Field(None, max_length=64)
    reason: PlainText | None = Field(None, max_length=500)


async def _kill_switch(request: web.Request, killed: bool) -> web.Response:
    body: KillSwitchBody = await json_body(request, KillSwitchBody, optional=True)
    names = [c.name for c in request.app[SETTINGS].chains]
    if body.chain is not None and body.chain not in names:
        raise RequestError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    scope = body.chain or "*"
    reason = (body.reason or "").strip() or ("paused" if killed else "resumed") + " over the admin API"
    actor = request.app[ADMIN_ACTOR]
    pool = request.app[POOL]
    await set_kill_switch(pool, scope, killed, reason, actor)
    async with pool.acquire() as conn:
        active = [dict(r) for r in await conn.fetch(Q.payout_kill_switches)]
    return json_response({"scope": scope, "killed": killed, "reason": reason, "changed_by": actor,
                          "kill_switches": active})


@routes.post("/v1/admin/payouts/pause")
async def pause_payouts(request: web.Request) -> web.Response:
    """Stop signing on one chain (`chain`) or on all; workers check before each signature."""
    return await _kill_switch(request, True)


@routes.post("/v1/admin/payouts/resume")
async def resume_payouts(request: web.Request) -> web.Response:
    """Lift the switch of that scope only: a global switch still stops a resumed chain."""
    return await _kill_switch(request, False)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(min_length=1, max_length=500)


@routes.post("/v1/admin/assets/{asset_id}/resolve")
async def resolve_asset(request: web.Request) -> web.Response:
    """Lift the reconciliation pause of an asset, with the operator's reason."""
    asset_id = path_ident(request, "asset_id")
    body: ResolveBody = await json_body(request, ResolveBody)
    if not body.reason.strip():
        raise RequestError("reason", "must say why the pause can be lifted")
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        if await conn.fetchval(Q.asset_exists, asset_id) is None:
            raise RequestError("asset_id", "no ledger asset with this id", status=404, code="not_found")
    try:
        result = await resolve_pause(pool, asset_id, request.app[ADMIN_ACTOR], body.reason.strip())
    except NoOpenPause:
        raise RequestError("asset_id", "the asset has no open pause", status=409, code="conflict") from None
    except LedgerError as exc:
        raise RequestError("reason", str(exc)) from None
    return json_response({"resolved": result})


# -- held payouts: list, release, cancel (issue 11) ---------------------------------


@routes.get("/v1/admin/payouts/held")
async def list_held(request: web.Request) -> web.Response:
    """Held requests with their reasons, oldest first (optionally `?chain=`)."""
    chain = request.query.get("chain")
    if chain is not None and chain not in {c.name for c in request.app[SETTINGS].chains}:
        raise RequestError("chain", "not a configured chain")
    async with request.app[POOL].acquire() as conn:
        held = await held_payouts(conn, chain)
    return json_response({"held": held})


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    without: list[Annotated[StrictStr, Field(max_length=128)]] = Field(default_factory=list, max_length=200)
    reason: PlainText | None = Field(None, max_length=500)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(min_length=1, max_length=500)


def _operator_refused(exc: PayoutError) -> RequestError:
    field = "id" if exc.field == "batch" else exc.field
    if isinstance(exc, BatchStateConflict):
        return RequestError(field, exc.reason, status=409, code="conflict")
    if isinstance(exc, BatchNotFound):
        return RequestError(field, "no batch with this id", status=404, code="not_found")
    return RequestError(field, exc.reason)


@routes.post("/v1/admin/batches/{id}/release")
async def release(request: web.Request) -> web.Response:
    """Requeue the batch's held requests (except `without`) once nothing signed can pay them."""
    batch_id = path_ident(request)
    if not BATCH_ID.fullmatch(batch_id):
        raise RequestError("id", "must be a batch id: 0x and 64 hex digits")
    body: ReleaseBody = await json_body(request, ReleaseBody, optional=True)
    try:
        out = await release_batch(request.app[POOL], request.app[SETTINGS], batch_id, request.app[ADMIN_ACTOR],
                                  without=body.without, reason=body.reason)
    except PayoutError as exc:
        raise _operator_refused(exc) from None
    return json_response({"release": out})


@routes.post("/v1/admin/batches/{id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    """Cancel an unsigned batch, or the held requests of a batch that can no longer pay them."""
    batch_id = path_ident(request)
    if not BATCH_ID.fullmatch(batch_id):
        raise RequestError("id", "must be a batch id: 0x and 64 hex digits")
    body: CancelBody = await json_body(request, CancelBody)
    try:
        out = await cancel_batch(request.app[POOL], request.app[SETTINGS], batch_id, request.app[ADMIN_ACTOR],
                                 reason=body.reason)
    except PayoutError as exc:
        raise _operator_refused(exc) from None
    return json_response({"cancel": out})
