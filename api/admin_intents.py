"""Intent routes: the admin writes (create, edit, pause, resume, cancel,
approve a catch-up, preview) behind the admin token, and the read route
`GET /v1/intents/{id}/occurrences` (state, reasons, every evaluation).

The store functions write their own audit rows; refusals name the field.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from settlement.intents import store
from settlement.intents.errors import IntentError
from settlement.intents.fees import RpcFees

from .http import RequestError, json_response, path_ident
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = web.RouteTableDef()  # admin: registered with the admin routes
read_routes = web.RouteTableDef()  # always registered
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}
STATES = ("due", "delayed", "awaiting_approval", "requested", "executed", "failed", "missed", "skipped", "cancelled")


def _refused(exc: IntentError) -> RequestError:
    return RequestError(exc.field, exc.reason, status=_STATUS.get(exc.code, 400), code=exc.code)


def _intent_id(request: web.Request) -> int:
    raw = path_ident(request)
    if not raw.isdigit() or len(raw) > 18:
        raise RequestError("id", "must be an intent id (a positive integer)")
    return int(raw)


async def _body(request: web.Request, *, optional: bool = False) -> dict:
    raw = await request.read()
    if not raw:
        if optional:
            return {}
        raise RequestError("body", "a JSON object is required")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError("body", "must be valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError("body", "must be a JSON object")
    return data


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
        raise RequestError("limit", "must be an integer from 1 to 10000")
    return int(raw)


def _state(request: web.Request) -> str | None:
    state = request.query.get("state")
    if state is not None and state not in STATES:
        raise RequestError("state", f"must be one of {', '.join(STATES)}")
    return state


@routes.post("/v1/admin/intents")
async def create(request: web.Request) -> web.Response:
    data = await _body(request)
    try:
        intent = await store.create_intent(request.app[POOL], request.app[SETTINGS], data, request.app[ADMIN_ACTOR])
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"intent": intent}, status=201)


@routes.get("/v1/admin/intents")
async def list_all(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in ("active", "paused", "cancelled"):
        raise RequestError("state", "must be active, paused or cancelled")
    async with request.app[POOL].acquire() as conn:
        return json_response({"intents": await store.list_intents(conn, state, _limit(request))})


@routes.get("/v1/admin/intents/{id}")
async def show(request: web.Request) -> web.Response:
    iid = _intent_id(request)
    try:
        async with request.app[POOL].acquire() as conn:
            return json_response({"intent": await store.get_intent(conn, iid)})
    except IntentError as exc:
        raise _refused(exc) from None


@routes.patch("/v1/admin/intents/{id}")
async def edit(request: web.Request) -> web.Response:
    """Body {"changes": {...}, "reason": "..."}: a new version for occurrences not yet made."""
    iid = _intent_id(request)
    data = await _body(request)
    extra = set(data) - {"changes", "reason"}
    if extra:
        raise RequestError(sorted(extra)[0], "unknown field (give changes and reason)")
    changes, reason = data.get("changes"), data.get("reason")
    if not isinstance(changes, dict):
        raise RequestError("changes", "must be an object of the fields to change")
    if reason is not None and not isinstance(reason, str):
        raise RequestError("reason", "must be text")
    try:
        intent = await store.edit_intent(request.app[POOL], request.app[SETTINGS], iid, changes,
                                         request.app[ADMIN_ACTOR], reason)
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"intent": intent})


def _state_route(action: str):
    async def handler(request: web.Request) -> web.Response:
        iid = _intent_id(request)
        data = await _body(request, optional=True)
        if set(data) - {"reason"}:
            raise RequestError(sorted(set(data) - {"reason"})[0], "unknown field (only reason)")
        reason = data.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise RequestError("reason", "must be text of at most 500 characters")
        try:
            intent = await store.set_intent_state(request.app[POOL], iid, action, request.app[ADMIN_ACTOR], reason)
        except IntentError as exc:
            raise _refused(exc) from None
        return json_response({"intent": intent})

    handler.__name__ = f"{action}_intent"
    return handler


for _action in ("pause", "resume", "cancel"):
    routes.post(f"/v1/admin/intents/{{id}}/{_action}")(_state_route(_action))


@routes.get("/v1/admin/intents/{id}/preview")
async def preview(request: web.Request) -> web.Response:
    """The next occurrences (`next`, default 12) and what each evaluation would say now."""
    iid = _intent_id(request)
    raw = request.query.get("next", "12")
    if not raw.isdigit():
        raise RequestError("next", "must be an integer from 1 to 1000")
    fees = RpcFees(request.app[SETTINGS])
    try:
        out = await store.preview(request.app[POOL], request.app[SETTINGS], iid, int(raw), fees=fees)
    except IntentError as exc:
        raise _refused(exc) from None
    finally:
        await fees.close()
    return json_response({"intent_id": iid, "occurrences": out})


@routes.post("/v1/admin/intent-occurrences/{id}/approve")
async def approve(request: web.Request) -> web.Response:
    oid = path_ident(request)
    try:
        out = await store.approve_occurrence(request.app[POOL], oid, request.app[ADMIN_ACTOR])
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"occurrence": out})


@read_routes.get("/v1/intents/{id}/occurrences")
async def occurrences(request: web.Request) -> web.Response:
    """Occurrences newest first: state, reason, payout state and every stored evaluation."""
    iid = _intent_id(request)
    try:
        async with request.app[POOL].acquire() as conn:
            rows = await store.occurrences(conn, iid, _state(request), _limit(request))
    except IntentError as exc:
        raise _refused(exc) from None
    return json_response({"intent_id": iid, "occurrences": rows})
