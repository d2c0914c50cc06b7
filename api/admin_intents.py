"""Intent routes: the admin writes (create, edit, pause, resume, cancel,
approve a catch-up, preview) behind the admin token, and the read route
`GET /v1/intents/{id}/occurrences` (state, reasons, every evaluation).

The store functions write their own audit rows; refusals name the field.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from settlement.intents import store
from settlement.intents.errors import IntentError
from settlement.intents.fees import RpcFees

from .http import RequestError, json_response
from .routing import Ident, QueryInt, Routes
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = Routes("admin", auth="admin")  # registered with the admin routes
read_routes = Routes("private", area="intents")  # always registered
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}
STATES = Literal["due", "delayed", "awaiting_approval", "requested", "executed", "failed", "missed", "skipped",
                 "cancelled"]
Limit = QueryInt(1, 10000)
NOT_FOUND = {404: "No such intent"}
CONFLICT = {**NOT_FOUND, 409: "The intent is cancelled or not in the state this needs"}


def _refused(exc: IntentError) -> RequestError:
    return RequestError(exc.field, exc.reason, status=_STATUS.get(exc.code, 400), code=exc.code)


class IntentPath(BaseModel):
    id: QueryInt(0, 10**18 - 1) = Field(description="Intent id")


class IntentBody(BaseModel):
    """An intent: see the README's Intents section for every field; refusals name the field."""

    model_config = ConfigDict(extra="allow")

    name: StrictStr
    chain: StrictStr
    asset: StrictStr
    to: StrictStr
    amount_mode: Literal["fixed", "above_floor"] | None = None
    cron: StrictStr | None = None
    rrule: StrictStr | None = None
    interval_seconds: StrictInt | None = None
    timezone: StrictStr
    end_of_month: Literal["skip", "clamp"] | None = None
    start: StrictStr = Field(json_schema_extra={"format": "date-time"})
    end: StrictStr | None = Field(None, json_schema_extra={"format": "date-time"})
    missed_run_policy: Literal["skip", "latest", "all"] | None = None


class IntentEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    changes: dict[str, Any] = Field(description="the fields to change")
    reason: StrictStr | None = None


class IntentStateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StrictStr | None = Field(None, max_length=500)


class Intent(BaseModel):
    intent: dict[str, Any] = Field(description="the intent, its current version and spec")


class Intents(BaseModel):
    intents: list[dict[str, Any]]


class Occurrences(BaseModel):
    intent_id: int
    occurrences: list[dict[str, Any]]


class Occurrence(BaseModel):
    occurrence: dict[str, Any]


@routes.post("/v1/admin/intents", body=IntentBody, response=Intent, status=201)
async def create(request: web.Request, body: IntentBody) -> web.Response:
    """Create an intent (audited)"""
    data = body.model_dump(exclude_unset=True)
    try:
        intent = await store.create_intent(request.app[POOL], request.app[SETTINGS], data, request.app[ADMIN_ACTOR])
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"intent": intent}, status=201)


class ListQuery(BaseModel):
    state: Literal["active", "paused", "cancelled"] | None = Field(None, description="Only this state")
    limit: Limit = Field(1000, description="At most this many")


@routes.get("/v1/admin/intents", params=ListQuery, response=Intents)
async def list_all(request: web.Request, p: ListQuery) -> web.Response:
    """Intents, by id"""
    async with request.app[POOL].acquire() as conn:
        return json_response({"intents": await store.list_intents(conn, p.state, p.limit)})


@routes.get("/v1/admin/intents/{id}", params=IntentPath, response=Intent, errors=NOT_FOUND)
async def show(request: web.Request, p: IntentPath) -> web.Response:
    """One intent with every version"""
    try:
        async with request.app[POOL].acquire() as conn:
            return json_response({"intent": await store.get_intent(conn, p.id)})
    except IntentError as exc:
        raise _refused(exc) from None


@routes.patch("/v1/admin/intents/{id}", params=IntentPath, body=IntentEdit, response=Intent, errors=CONFLICT)
async def edit(request: web.Request, p: IntentPath, body: IntentEdit) -> web.Response:
    """Edit an intent: a new version for occurrences not yet made (audited)"""
    try:
        intent = await store.edit_intent(request.app[POOL], request.app[SETTINGS], p.id, body.changes,
                                         request.app[ADMIN_ACTOR], body.reason)
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"intent": intent})


def _state_route(action: str):
    async def handler(request: web.Request, p: IntentPath, body: IntentStateBody) -> web.Response:
        try:
            intent = await store.set_intent_state(request.app[POOL], p.id, action, request.app[ADMIN_ACTOR],
                                                  body.reason)
        except IntentError as exc:
            raise _refused(exc) from None
        return json_response({"intent": intent})

    handler.__name__ = f"{action}_intent"
    handler.__doc__ = f"{action.capitalize()} an intent (audited)"
    return handler


for _action in ("pause", "resume", "cancel"):
    routes.post(f"/v1/admin/intents/{{id}}/{_action}", params=IntentPath, body=IntentStateBody, body_required=False,
                response=Intent, errors=CONFLICT)(_state_route(_action))


class PreviewQuery(IntentPath):
    next: QueryInt(1, 1000) = Field(12, description="How many")


@routes.get("/v1/admin/intents/{id}/preview", params=PreviewQuery, response=Occurrences, errors=NOT_FOUND)
async def preview(request: web.Request, p: PreviewQuery) -> web.Response:
    """The next occurrences and what each evaluation would say now"""
    fees = RpcFees(request.app[SETTINGS])
    try:
        out = await store.preview(request.app[POOL], request.app[SETTINGS], p.id, p.next, fees=fees)
    except IntentError as exc:
        raise _refused(exc) from None
    finally:
        await fees.close()
    return json_response({"intent_id": p.id, "occurrences": out})


class OccurrencePath(BaseModel):
    id: Ident = Field(description="Occurrence id")


@routes.post("/v1/admin/intent-occurrences/{id}/approve", params=OccurrencePath, response=Occurrence,
             errors={404: "No such occurrence", 409: "Not awaiting approval"})
async def approve(request: web.Request, p: OccurrencePath) -> web.Response:
    """Approve a catch-up occurrence above its intent's approval amount (audited)"""
    try:
        out = await store.approve_occurrence(request.app[POOL], p.id, request.app[ADMIN_ACTOR])
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"occurrence": out})


class OccurrencesQuery(IntentPath):
    state: STATES | None = Field(None, description="Only this state")
    limit: Limit = Field(1000, description="At most this many")


@read_routes.get("/v1/intents/{id}/occurrences", params=OccurrencesQuery, response=Occurrences, errors=NOT_FOUND)
async def occurrences(request: web.Request, p: OccurrencesQuery) -> web.Response:
    """Occurrences of an intent, newest first: state, reason, payout state, every evaluation"""
    try:
        async with request.app[POOL].acquire() as conn:
            rows = await store.occurrences(conn, p.id, p.state, p.limit)
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"intent_id": p.id, "occurrences": rows})
