"""Admin routes: registered only when `api.admin_token` is configured.

The bearer token is checked by the route wrapper (api/scopes.py) before any handler
here runs. The settlement functions called here write their own audit
rows, in the transaction of the change; the actor they record is
`admin_actor(token)`, a label that names the token without revealing it.
Replays live in `admin_replay.py`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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

from .http import PlainText, RequestError, json_response
from .routing import ADDRESS_PATTERN, Ident, Routes, Runtime, Text, UnitsIn
from .settlement_routes import KillSwitchRow, PayoutFields, PayoutRequest, payout_view
from .state import ADMIN_ACTOR, POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
routes = Routes("admin", auth="admin")
FROM_ACCOUNT = (r"^(app:[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
                r"|user:[a-z0-9][a-z0-9_-]{0,62}:(0x[0-9a-fA-F]{40}|r[1-9A-HJ-NP-Za-km-z]{24,34}|tag:[0-9]{1,10}))$")
BatchId = Text(r"^0x[0-9a-fA-F]{64}$", "a batch id: 0x and 64 hex digits")
Chain = Annotated[StrictStr, Field(max_length=64), Runtime("chains")]


def admin_actor(token: Secret) -> str:
    """'api:' and 8 hex digits of a domain-separated hash: stable per token, never the token."""
    digest = hashlib.sha256(b"chainsettle-admin-actor\x00" + token.reveal().encode()).hexdigest()
    return f"api:{digest[:8]}"


_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409, "account_frozen": 403}


def payout_refused(exc: PayoutError, fields: set[str]) -> RequestError:
    """The refusal under the field it names, when that field is one of the request's."""
    status = _STATUS.get(exc.code, 400)
    if exc.field in fields:
        return RequestError(exc.field, exc.reason, status=status, code=exc.code)
    return RequestError(None, str(exc), status=status, code=exc.code)


class PayoutAssetBody(BaseModel):
    """Which payout asset: the fields a payout request and a wallet's withdrawal share."""

    model_config = ConfigDict(extra="forbid")

    chain: Annotated[StrictStr, Runtime("payout_chains")] = Field(max_length=64,
                                                                 description="A chain of [[payouts.chains]]")
    asset: Annotated[StrictStr, Runtime("payout_assets")] = Field(max_length=64,
                                                                 description="'native' or a contract name")


class PayoutBody(PayoutAssetBody):
    to: StrictStr = Field(max_length=128, json_schema_extra={"pattern": ADDRESS_PATTERN},
                          description="The recipient: a 0x address (EVM) or a classic r-address (XRPL)")
    amount: UnitsIn(1)
    key: Text(r"^[!-~]{1,200}$", "1-200 printable characters without spaces") = Field(
        description="Idempotency key: the same key and payout returns the stored request")
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1, description="XRPL only")
    from_account: Text(FROM_ACCOUNT, "an account code: app:<name> or user:<chain>:<address>") | None = Field(
        None, description="The account that pays (e.g. app:prizes); default: the recipient's own user account")


class PayoutCreated(BaseModel):
    payout: PayoutRequest
    created: bool = Field(description="false: the key's stored request")


@routes.post("/v1/admin/payouts", body=PayoutBody, response=PayoutCreated, status=201,
             responses={200: (PayoutCreated, "The key's stored request for this same payout")},
             errors={409: "The key was used for a different payout"})
async def create_payout(request: web.Request, body: PayoutBody) -> web.Response:
    """Request a payout, idempotent by `key` (audited)

    201 with a new request; 200 with the stored one when its key was used for the same payout.
    """
    amount = body.amount
    pool = request.app[POOL]
    try:
        stored, created = await request_payout(
            pool, request.app[SETTINGS], chain=body.chain, asset=body.asset, to=body.to, amount=amount,
            key=body.key, actor=request.app[ADMIN_ACTOR], destination_tag=body.destination_tag,
            from_account=body.from_account)
    except PayoutError as exc:
        raise payout_refused(exc, set(PayoutBody.model_fields)) from None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(Q.payout_by_ref, None, stored["id"])
    return json_response({"payout": payout_view(row), "created": created}, status=201 if created else 200)


class BatchPath(BaseModel):
    id: BatchId = Field(description="Batch id")


class BatchApproval(BaseModel):
    batch_id: str
    state: str
    approved_by: str


class BatchApproved(BaseModel):
    batch: BatchApproval


@routes.post("/v1/admin/batches/{id}/approve", params=BatchPath, response=BatchApproved,
             errors={404: "No such batch", 409: "The batch is not awaiting approval"})
async def approve(request: web.Request, p: BatchPath) -> web.Response:
    """Approve a batch awaiting approval (audited)"""
    batch_id = p.id
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

    chain: Chain | None = Field(None, description="A configured chain; absent: every chain")
    reason: PlainText | None = Field(None, max_length=500)


class KillSwitch(BaseModel):
    scope: str
    killed: bool
    reason: str
    changed_by: str
    kill_switches: list[KillSwitchRow] = Field(description="every active one")


async def _kill_switch(request: web.Request, body: KillSwitchBody, killed: bool) -> web.Response:
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


KILL_SWITCH = {"body": KillSwitchBody, "body_required": False, "response": KillSwitch}


@routes.post("/v1/admin/payouts/pause", **KILL_SWITCH)
async def pause_payouts(request: web.Request, body: KillSwitchBody) -> web.Response:
    """Set the payout kill switch of one chain, or of all (audited)

    Stop signing on one chain (`chain`) or on all; workers check before each signature.
    """
    return await _kill_switch(request, body, True)


@routes.post("/v1/admin/payouts/resume", **KILL_SWITCH)
async def resume_payouts(request: web.Request, body: KillSwitchBody) -> web.Response:
    """Lift the payout kill switch of one chain, or the global one (audited)

    Lift the switch of that scope only: a global switch still stops a resumed chain.
    """
    return await _kill_switch(request, body, False)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: PlainText = Field(min_length=1, max_length=500)


class AssetPath(BaseModel):
    asset_id: Ident = Field(description="Asset id, e.g. anvil:native")


class Resolution(BaseModel):
    asset: str
    pause_id: int
    paused_because: str
    resolution: str


class Resolved(BaseModel):
    resolved: Resolution


@routes.post("/v1/admin/assets/{asset_id}/resolve", params=AssetPath, body=ReasonBody, response=Resolved,
             errors={404: "No such asset", 409: "The asset has no open pause"})
async def resolve_asset(request: web.Request, p: AssetPath, body: ReasonBody) -> web.Response:
    """Lift the reconciliation pause of an asset (audited)"""
    asset_id = p.asset_id
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


class HeldQuery(BaseModel):
    chain: Annotated[str, Runtime("chains")] | None = Field(None, description="Only this chain")


class HeldPayout(PayoutFields):
    reason: str | None
    batch_id: str | None
    batch_state: str | None
    updated_at: dt.datetime


class Held(BaseModel):
    held: list[HeldPayout]


@routes.get("/v1/admin/payouts/held", params=HeldQuery, response=Held)
async def list_held(request: web.Request, p: HeldQuery) -> web.Response:
    """Held payout requests with their reasons, oldest first"""
    chain = p.chain
    if chain is not None and chain not in {c.name for c in request.app[SETTINGS].chains}:
        raise RequestError("chain", "not a configured chain")
    async with request.app[POOL].acquire() as conn:
        held = await held_payouts(conn, chain)
    return json_response({"held": held})


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    without: list[Annotated[StrictStr, Field(max_length=128)]] = Field(default_factory=list, max_length=200,
                                                                        description="Recipients that stay held")
    reason: PlainText | None = Field(None, max_length=500)


class Release(BaseModel):
    batch_id: str
    released: list[int]
    kept_held: list[str]
    then: str


class Released(BaseModel):
    release: Release


class Cancellation(BaseModel):
    batch_id: str
    cancelled: list[int]
    reason: str


class Cancelled(BaseModel):
    cancel: Cancellation


def _operator_refused(exc: PayoutError) -> RequestError:
    field = "id" if exc.field == "batch" else exc.field
    if isinstance(exc, BatchStateConflict):
        return RequestError(field, exc.reason, status=409, code="conflict")
    if isinstance(exc, BatchNotFound):
        return RequestError(field, "no batch with this id", status=404, code="not_found")
    return RequestError(field, exc.reason)


@routes.post("/v1/admin/batches/{id}/release", params=BatchPath, body=ReleaseBody, body_required=False,
             response=Released, errors={404: "No such batch", 409: "Nothing held, or the batch could still pay"})
async def release(request: web.Request, p: BatchPath, body: ReleaseBody) -> web.Response:
    """Requeue a batch's held requests once nothing signed can pay them (audited)

    Requeue the batch's held requests (except `without`) once nothing signed can pay them.
    """
    try:
        out = await release_batch(request.app[POOL], request.app[SETTINGS], p.id, request.app[ADMIN_ACTOR],
                                  without=body.without, reason=body.reason)
    except PayoutError as exc:
        raise _operator_refused(exc) from None
    return json_response({"release": out})


@routes.post("/v1/admin/batches/{id}/cancel", params=BatchPath, body=ReasonBody, response=Cancelled,
             errors={404: "No such batch", 409: "Nothing to cancel, or a signature may still execute"})
async def cancel(request: web.Request, p: BatchPath, body: ReasonBody) -> web.Response:
    """Cancel an unsigned batch or a batch's held requests; frees the reservation (audited)

    Cancel an unsigned batch, or the held requests of a batch that can no longer pay them.
    """
    try:
        out = await cancel_batch(request.app[POOL], request.app[SETTINGS], p.id, request.app[ADMIN_ACTOR],
                                 reason=body.reason)
    except PayoutError as exc:
        raise _operator_refused(exc) from None
    return json_response({"cancel": out})
