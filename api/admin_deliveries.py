"""Delivery subscriptions over the admin API, and a public summary for the status page.

Handlers parse and call `delivery.admin`, which writes the audit row in the
transaction of the change and wakes the relay. A secret is in a response
only once: when the subscription is created with a generated one, or
rotated. Everything else shows secret ids and prefixes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from config.section_deliveries import SubscriptionSpec
from delivery import admin

from .http import MAX_BIGINT, PlainText, RequestError, json_response
from .routing import QueryInt, Routes, Text
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = Routes("admin", auth="admin")  # bearer token
public_routes = Routes("private", area="deliveries")  # the summary: no URLs, no secrets
MSG_ID = r"^[A-Za-z0-9_.:-]{1,200}$"
SubId = Text(r"^[a-z0-9][a-z0-9_-]{0,62}$", "lowercase letters, digits, '-' or '_' (max 63)")
Limit = QueryInt(1, 1000)
NOT_FOUND = {404: "No such subscription"}


class SubPath(BaseModel):
    id: SubId = Field(description="Subscription id")


class Subscription(BaseModel):
    id: str
    sink: Literal["webhook", "redis"]
    url: str
    stream: str | None = None
    filter: dict[str, Any] | None = None
    finality: Literal["instant", "final"]
    ordering: Literal["per_key", "strict"]
    state: Literal["active", "paused", "disabled"]
    state_reason: str | None = None
    cursor: str
    pending: int | None = None
    dead: int | None = None
    lag_seconds: float | None = None
    last_outcome: str | None = Field(None, description="the outcome of the last failed attempt, until the next success")
    last_error: str | None = Field(None, description="why the last attempt failed")
    secret: str | None = Field(None, description="Only in the answer that made it (create, rotate)")


class OneSubscription(BaseModel):
    subscription: Subscription


class Subscriptions(BaseModel):
    subscriptions: list[Subscription]


class Deleted(BaseModel):
    deleted: str


class Queued(BaseModel):
    seq: int
    msg_id: str


class Pinged(BaseModel):
    ping: Queued


class Redelivered(BaseModel):
    redelivered: int = Field(ge=0, description="how many were queued")


class Attempts(BaseModel):
    attempts: list[dict[str, Any]]
    next: int | None


class Messages(BaseModel):
    messages: list[dict[str, Any]]
    next: int | str | None = Field(description="messages: the last seq of a full page; pull: the cursor to go on from")


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
    msg_id: StrictStr | None = Field(None, pattern=MSG_ID)
    event_id: StrictStr | None = Field(None, pattern=MSG_ID)
    from_seq: StrictInt | None = Field(None, ge=1, le=MAX_BIGINT)
    to_seq: StrictInt | None = Field(None, ge=1, le=MAX_BIGINT)
    from_time: dt.datetime | None = None
    to_time: dt.datetime | None = None
    from_block: StrictInt | None = Field(None, ge=0, le=MAX_BIGINT)
    to_block: StrictInt | None = Field(None, ge=0, le=MAX_BIGINT)


@routes.get("/v1/admin/deliveries", response=Subscriptions)
async def list_subscriptions(request: web.Request) -> web.Response:
    """Delivery subscriptions (secrets never shown)"""
    return json_response({"subscriptions": await admin.list_all(request.app[POOL])})


@routes.post("/v1/admin/deliveries", body=SubscriptionSpec, response=OneSubscription, status=201,
             errors={409: "A subscription with this id exists"})
async def create_subscription(request: web.Request, body: SubscriptionSpec) -> web.Response:
    """Create a subscription; a webhook's generated secret is in this answer only (audited)"""
    try:
        sub = await admin.create(request.app[POOL], request.app[SETTINGS], request.app[ADMIN_ACTOR], body)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"subscription": sub}, status=201, headers={"Location": f"/v1/admin/deliveries/{sub['id']}"})


@routes.get("/v1/admin/deliveries/{id}", params=SubPath, response=OneSubscription, errors=NOT_FOUND)
async def get_subscription(request: web.Request, p: SubPath) -> web.Response:
    """One subscription"""
    try:
        return json_response({"subscription": await admin.get(request.app[POOL], p.id)})
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None


@routes.delete("/v1/admin/deliveries/{id}", params=SubPath, response=Deleted, errors=NOT_FOUND)
async def delete_subscription(request: web.Request, p: SubPath) -> web.Response:
    """Delete a subscription, its queue and attempts (audited)"""
    sub_id = p.id
    try:
        await admin.delete(request.app[POOL], request.app[ADMIN_ACTOR], sub_id)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"deleted": sub_id})


async def _state(request: web.Request, p: SubPath, body: StateBody, state: str) -> web.Response:
    try:
        sub = await admin.set_state(request.app[POOL], request.app[ADMIN_ACTOR], p.id, state, body.reason)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"subscription": sub})


STATE = {"params": SubPath, "body": StateBody, "body_required": False, "response": OneSubscription,
         "errors": NOT_FOUND}


@routes.post("/v1/admin/deliveries/{id}/pause", **STATE)
async def pause(request: web.Request, p: SubPath, body: StateBody) -> web.Response:
    """Stop sending; the queue keeps filling (audited)"""
    return await _state(request, p, body, "paused")


@routes.post("/v1/admin/deliveries/{id}/resume", **STATE)
async def resume(request: web.Request, p: SubPath, body: StateBody) -> web.Response:
    """Send again; also re-enables a disabled subscription (audited)"""
    return await _state(request, p, body, "active")


@routes.post("/v1/admin/deliveries/{id}/rotate", params=SubPath, body=RotateBody, body_required=False,
             response=OneSubscription, errors={**NOT_FOUND, 409: "Not a webhook subscription"})
async def rotate(request: web.Request, p: SubPath, body: RotateBody) -> web.Response:
    """New signing secret, in this answer only; old ones sign on during the overlap (audited)"""
    sub_id = p.id
    try:
        sub = await admin.rotate(request.app[POOL], request.app[SETTINGS], request.app[ADMIN_ACTOR], sub_id,
                                 None if body.overlap_seconds is None else float(body.overlap_seconds))
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"subscription": sub})


@routes.post("/v1/admin/deliveries/{id}/ping", params=SubPath, response=Pinged, status=202, errors=NOT_FOUND)
async def ping(request: web.Request, p: SubPath) -> web.Response:
    """Queue a test message through the normal path (audited)"""
    try:
        out = await admin.send_ping(request.app[POOL], request.app[ADMIN_ACTOR], p.id)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"ping": out}, status=202)


@routes.post("/v1/admin/deliveries/{id}/redeliver", params=SubPath, body=RedeliverBody, response=Redelivered,
             status=202, errors=NOT_FOUND)
async def redeliver(request: web.Request, p: SubPath, body: RedeliverBody) -> web.Response:
    """Queue again one message (msg_id, event_id) or a range by seq, commit time or block (audited)"""
    try:
        count = await admin.redeliver(request.app[POOL], request.app[ADMIN_ACTOR], p.id, **body.model_dump())
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"redelivered": count}, status=202)


class AttemptsQuery(SubPath):
    msg_id: Text(MSG_ID, "a message id") | None = Field(None, description="One message")
    before: QueryInt(1) | None = Field(None, description="The `next` of the previous page")
    limit: Limit = Field(100, description="Page size")


@routes.get("/v1/admin/deliveries/{id}/attempts", params=AttemptsQuery, response=Attempts)
async def attempts(request: web.Request, p: AttemptsQuery) -> web.Response:
    """Delivery attempts newest first: outcome, status code, latency, first bytes of the answer"""
    limit = p.limit
    rows = await admin.attempts(request.app[POOL], p.id, msg_id=p.msg_id, before=p.before, limit=limit)
    return json_response({"attempts": rows, "next": rows[-1]["id"] if len(rows) == limit else None})


class MessagesQuery(SubPath):
    after: QueryInt() = Field(0, description="Sequence number to start after")
    state: Literal["any", "pending", "delivered", "dead"] = Field("any", description="Filter")
    limit: Limit = Field(100, description="Page size")


@routes.get("/v1/admin/deliveries/{id}/messages", params=MessagesQuery, response=Messages)
async def messages(request: web.Request, p: MessagesQuery) -> web.Response:
    """The subscription's messages in its order, with state and attempts"""
    limit, state = p.limit, p.state
    rows = await admin.messages(request.app[POOL], p.id, after=p.after,
                                state=None if state == "any" else state, limit=limit)
    return json_response({"messages": rows, "next": rows[-1]["seq"] if len(rows) == limit else None})


class PullQuery(SubPath):
    cursor: Text(r"^[0-9]{1,20}\.[odf]?[0-9]{1,19}$",
                 "a cursor as sent in a message, e.g. 7351.1042, 7351.o12, 7351.d9 or 7351.f1042") = Field(
        description="Position to resume after")
    limit: QueryInt(1, admin.PULL_LIMIT) = Field(100, description="Page size")


@routes.get("/v1/admin/deliveries/{id}/pull", params=PullQuery, response=Messages, errors=NOT_FOUND)
async def pull(request: web.Request, p: PullQuery) -> web.Response:
    """Missed messages after a cursor (a body's `cursor` or an SSE id), bodies exactly as sent"""
    cursor = p.cursor
    try:
        rows = await admin.pull(request.app[POOL], p.id, cursor, p.limit)
    except admin.DeliveryInputError as exc:
        raise _refused(exc) from None
    return json_response({"messages": rows, "next": rows[-1]["cursor"] if rows else cursor})


class SubscriptionSummary(BaseModel):
    id: str
    sink: Literal["webhook", "redis"]
    target: str | None = Field(description="the host only")
    finality: str
    ordering: str
    state: str
    state_reason: str | None
    pending: int
    dead: int
    lag_seconds: float | None
    failing_since: dt.datetime | None
    last_outcome: Literal["http_error", "timeout", "network", "refused", "gone"] | None = Field(
        description="the outcome of the last failed attempt, until the next success")
    last_error: str | None = Field(description="why the last attempt failed (a refused target names the setting)")


class DeliverySummary(BaseModel):
    subscriptions: list[SubscriptionSummary]
    assets: list[dict[str, Any]] = Field(description="symbol and decimals per asset")


@public_routes.get("/v1/deliveries", response=DeliverySummary)
async def summary(request: web.Request) -> web.Response:
    """Delivery subscriptions: state, backlog, lag, dead letters (no targets or secrets)

    Per subscription: state, lag, dead letters; the target's host only.
    """
    out = []
    for s in await admin.list_all(request.app[POOL]):
        out.append({"id": s["id"], "sink": s["sink"], "target": urlsplit(s["url"]).hostname,
                    "finality": s["finality"], "ordering": s["ordering"], "state": s["state"],
                    "state_reason": s["state_reason"], "pending": s["pending"], "dead": s["dead"],
                    "lag_seconds": s["lag_seconds"], "failing_since": s["failing_since"],
                    "last_outcome": s["last_outcome"], "last_error": s["last_error"]})
    return json_response({"subscriptions": out, "assets": await admin.assets(request.app[POOL])})
