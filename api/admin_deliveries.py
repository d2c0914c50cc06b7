"""Delivery subscriptions over the admin API, and a public summary for the status page.

Handlers parse and call `delivery.admin`, which writes the audit row in the
transaction of the change and wakes the relay. A secret is in a response
only once: when the subscription is created with a generated one, or
rotated. Everything else shows secret ids and prefixes.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from config.section_deliveries import SubscriptionSpec
from delivery import admin

from .http import MAX_BIGINT, PlainText, Query, RequestError, json_body, json_response
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = web.RouteTableDef()         # admin (bearer token)
public_routes = web.RouteTableDef()  # the status page's summary: no URLs, no secrets
SUB_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MSG_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
CURSOR = re.compile(r"^[0-9]{1,20}\.[odf]?[0-9]{1,19}$")


def _sub_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if not SUB_ID.fullmatch(value):
        raise RequestError("id", "must be lowercase letters, digits, '-' or '_' (max 63)")
    return value


def _refused(exc: admin.DeliveryInputError) -> RequestError:
    return RequestError(exc.field, exc.message, status=exc.status, code=exc.code)


class StateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: PlainText | None = Field(None, max_length=500)


class RotateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_seconds: StrictInt | None = Field(None, ge=0, le=30 * 86_400)


class RedeliverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    msg_id: StrictStr | None = Field(None, pattern=MSG_ID.pattern)
    event_id: StrictStr | None = Field(None, pattern=MSG_ID.pattern)
    from_seq: StrictInt | None = Field(None, ge=1, le=MAX_BIGINT)
    to_seq: StrictInt | None = Field(None, ge=1, le=MAX_BIGINT)
    from_time: dt.datetime | None = None
    to_time: dt.datetime | None = None
    from_block: StrictInt | None = Field(None, ge=0, le=MAX_BIGINT)
    to_block: StrictInt | None = Field(None, ge=0, le=MAX_BIGINT)


@routes.get("/v1/admin/deliveries")
async def list_subscriptions(request: web.Request) -> web.Response:
    Query(request.query, set())
    return json_response({"subscriptions": await admin.list_all(request.app[POOL])})


@routes.post("/v1/admin/deliveries")
async def create_subscription(request: web.Request) -> web.Response:
    body: SubscriptionSpec = await json_body(request, SubscriptionSpec)
    try:
        sub = await admin.create(request.app[POOL], request.app[SETTINGS], request.app[ADMIN_ACTOR], body)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"subscription": sub}, status=201, headers={"Location": f"/v1/admin/deliveries/{sub['id']}"})


@routes.get("/v1/admin/deliveries/{id}")
async def get_subscription(request: web.Request) -> web.Response:
    Query(request.query, set())
    try:
        return json_response({"subscription": await admin.get(request.app[POOL], _sub_id(request))})
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None


@routes.delete("/v1/admin/deliveries/{id}")
async def delete_subscription(request: web.Request) -> web.Response:
    sub_id = _sub_id(request)
    try:
        await admin.delete(request.app[POOL], request.app[ADMIN_ACTOR], sub_id)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"deleted": sub_id})


async def _state(request: web.Request, state: str) -> web.Response:
    sub_id = _sub_id(request)
    body: StateBody = await json_body(request, StateBody, optional=True)
    try:
        sub = await admin.set_state(request.app[POOL], request.app[ADMIN_ACTOR], sub_id, state, body.reason)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"subscription": sub})


@routes.post("/v1/admin/deliveries/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    return await _state(request, "paused")


@routes.post("/v1/admin/deliveries/{id}/resume")
async def resume(request: web.Request) -> web.Response:
    return await _state(request, "active")


@routes.post("/v1/admin/deliveries/{id}/rotate")
async def rotate(request: web.Request) -> web.Response:
    sub_id = _sub_id(request)
    body: RotateBody = await json_body(request, RotateBody, optional=True)
    try:
        sub = await admin.rotate(request.app[POOL], request.app[SETTINGS], request.app[ADMIN_ACTOR], sub_id,
                                 None if body.overlap_seconds is None else float(body.overlap_seconds))
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"subscription": sub})


@routes.post("/v1/admin/deliveries/{id}/ping")
async def ping(request: web.Request) -> web.Response:
    sub_id = _sub_id(request)
    try:
        out = await admin.send_ping(request.app[POOL], request.app[ADMIN_ACTOR], sub_id)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"ping": out}, status=202)


@routes.post("/v1/admin/deliveries/{id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    sub_id = _sub_id(request)
    body: RedeliverBody = await json_body(request, RedeliverBody)
    try:
        count = await admin.redeliver(request.app[POOL], request.app[ADMIN_ACTOR], sub_id, **body.model_dump())
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"redelivered": count}, status=202)


@routes.get("/v1/admin/deliveries/{id}/attempts")
async def attempts(request: web.Request) -> web.Response:
    sub_id = _sub_id(request)
    q = Query(request.query, {"msg_id", "before", "limit"})
    limit = q.integer("limit", default=100, low=1, high=1000)
    rows = await admin.attempts(request.app[POOL], sub_id, msg_id=q.text("msg_id", MSG_ID, "a message id"),
                                before=q.integer("before", low=1), limit=limit)
    return json_response({"attempts": rows, "next": rows[-1]["id"] if len(rows) == limit else None})


@routes.get("/v1/admin/deliveries/{id}/messages")
async def messages(request: web.Request) -> web.Response:
    sub_id = _sub_id(request)
    q = Query(request.query, {"after", "state", "limit"})
    limit = q.integer("limit", default=100, low=1, high=1000)
    state = q.choice("state", ("any", "pending", "delivered", "dead"), "any")
    rows = await admin.messages(request.app[POOL], sub_id, after=q.integer("after", default=0),
                                state=None if state == "any" else state, limit=limit)
    return json_response({"messages": rows, "next": rows[-1]["seq"] if len(rows) == limit else None})


@routes.get("/v1/admin/deliveries/{id}/pull")
async def pull(request: web.Request) -> web.Response:
    """Missed messages after a cursor (a body's `cursor`, or an SSE `id:`), bodies as sent."""
    sub_id = _sub_id(request)
    q = Query(request.query, {"cursor", "limit"})
    cursor = q.text("cursor", CURSOR, "a cursor as sent in a message, e.g. 7351.1042, 7351.o12, 7351.d9 or 7351.f1042")
    if cursor is None:
        raise RequestError("cursor", "required")
    limit = q.integer("limit", default=100, low=1, high=admin.PULL_LIMIT)
    try:
        rows = await admin.pull(request.app[POOL], sub_id, cursor, limit)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"messages": rows, "next": rows[-1]["cursor"] if rows else cursor})


@public_routes.get("/v1/deliveries")
async def summary(request: web.Request) -> web.Response:
    """Per subscription: state, lag, dead letters; the target's host only."""
    Query(request.query, set())
    out = []
    for s in await admin.list_all(request.app[POOL]):
        out.append({"id": s["id"], "sink": s["sink"], "target": urlsplit(s["url"]).hostname,
                    "finality": s["finality"], "ordering": s["ordering"], "state": s["state"],
                    "state_reason": s["state_reason"], "pending": s["pending"], "dead": s["dead"],
                    "lag_seconds": s["lag_seconds"], "failing_since": s["failing_since"]})
    return json_response({"subscriptions": out, "assets": await admin.assets(request.app[POOL])})
