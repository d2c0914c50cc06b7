"""Ledger transfers, holds and account entries (issue 25).

Admin: POST /v1/admin/ledger/transfers (one or several transfers, linked:
all or none), /v1/admin/ledger/holds, /v1/admin/ledger/holds/{id}/post and
/void. Read: GET /v1/accounts/{id}/entries (keyset pages in commit order).
Handlers are thin: settlement/ledger/transfers.py and holds.py decide.
A refusal is 422 with `error` the result code (exceeds_available,
unknown_account, asset_mismatch, ...), `field` and `account`; a reused id
with a different body is 409 naming the field. Amounts are integer strings.
"""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from settlement.ledger.holds import Hold, HoldNotFound, create_hold, post_hold, void_hold
from settlement.ledger.transfers import (
    Transfer,
    TransferBatcher,
    TransferConflict,
    TransferRefused,
    account_by_ref,
    entries_page,
)

from .http import IDENT_PATTERN, PlainText, Query, RequestError, json_body, json_response, path_ident
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = web.RouteTableDef()  # admin
# Concurrent transfer requests of this process share booking transactions (group commit).
BATCHER = web.AppKey("ledger_batcher", TransferBatcher)
read_routes = web.RouteTableDef()
MAX_HTTP_LINKED = 200
AMOUNT_TEXT = re.compile(r"^[0-9]{1,78}$")
CURSOR = re.compile(r"^[0-9]{1,19}:[0-9]{1,18}$")
Ident = Annotated[StrictStr, Field(pattern=IDENT_PATTERN)]


def register(app: web.Application, *, admin: bool) -> None:
    app.add_routes(read_routes)
    if admin:
        app[BATCHER] = TransferBatcher()
        app.add_routes(routes)


def _amount(value: int | str, field: str) -> int:
    if isinstance(value, str):
        if not AMOUNT_TEXT.fullmatch(value):
            raise RequestError(field, "must be a positive integer in base units (digits only)")
        value = int(value)
    if not 0 < value < 10**78:
        raise RequestError(field, "must be a positive integer in base units, below 10**78")
    return value


def refused(exc: TransferRefused | TransferConflict) -> RequestError:
    if isinstance(exc, TransferConflict):
        return RequestError(exc.field, exc.reason, status=409, code="conflict")
    if isinstance(exc, HoldNotFound):
        return RequestError(exc.field, exc.reason, status=404, code="not_found")
    err = RequestError(exc.field, exc.reason, status=422, code=exc.result)
    err.account = exc.account  # type: ignore[attr-defined]
    return err


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident
    debit_account: Ident
    credit_account: Ident
    asset: Ident
    amount: StrictInt | StrictStr
    code: StrictInt = Field(0, ge=0, le=2**31 - 1)
    memo: PlainText | None = Field(None, max_length=500)


class TransfersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The app's 64 KiB body limit (api/app.py MAX_BODY) holds about 200 (the CLI takes 1000).
    transfers: list[TransferBody] = Field(min_length=1, max_length=MAX_HTTP_LINKED)


class HoldBody(TransferBody):
    timeout_seconds: float | None = Field(None, gt=0, le=366 * 86400)


class PostBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictInt | StrictStr | None = None


def _error_response(err: RequestError) -> web.Response:
    body = {"error": err.code, "status": err.status, "message": str(err), "field": err.field}
    account = getattr(err, "account", None)
    if account is not None:
        body["account"] = account
    return json_response(body, status=err.status)


@routes.post("/v1/admin/ledger/transfers")
async def post_transfers(request: web.Request) -> web.Response:
    """201 with the booked transfers; 200 with the stored ones when the same request is replayed."""
    body: TransfersBody = await json_body(request, TransfersBody)
    transfers = [Transfer(t.id, t.debit_account, t.credit_account, t.asset,
                          _amount(t.amount, f"transfers[{i}].amount"), t.code, t.memo)
                 for i, t in enumerate(body.transfers)]
    try:
        out, created = await request.app[BATCHER].submit(request.app[POOL], request.app[SETTINGS], transfers,
                                                         request.app[ADMIN_ACTOR])
    except (TransferRefused, TransferConflict) as exc:
        return _error_response(refused(exc))
    return json_response({"transfers": out, "created": created}, status=201 if created else 200)


@routes.post("/v1/admin/ledger/holds")
async def post_hold_route(request: web.Request) -> web.Response:
    b: HoldBody = await json_body(request, HoldBody)
    h = Hold(b.id, b.debit_account, b.credit_account, b.asset, _amount(b.amount, "amount"), b.code, b.memo,
             b.timeout_seconds)
    try:
        out, created = await create_hold(request.app[POOL], request.app[SETTINGS], h, request.app[ADMIN_ACTOR])
    except (TransferRefused, TransferConflict) as exc:
        return _error_response(refused(exc))
    return json_response({"hold": out, "created": created}, status=201 if created else 200)


async def _resolve(request: web.Request, post: bool) -> web.Response:
    hold_id = path_ident(request)
    amount = None
    if post:
        b: PostBody = await json_body(request, PostBody, optional=True)
        amount = None if b.amount is None else _amount(b.amount, "amount")
    elif await request.read():
        raise RequestError("body", "this route takes no body")
    pool, actor = request.app[POOL], request.app[ADMIN_ACTOR]
    try:
        out, changed = await (post_hold(pool, hold_id, amount, actor) if post else void_hold(pool, hold_id, actor))
    except (TransferRefused, TransferConflict) as exc:
        return _error_response(refused(exc))
    return json_response({"hold": out, "changed": changed})


@routes.post("/v1/admin/ledger/holds/{id}/post")
async def post_hold_post(request: web.Request) -> web.Response:
    """Post all of a pending hold, or `amount` of it (the rest returns); exactly once."""
    return await _resolve(request, True)


@routes.post("/v1/admin/ledger/holds/{id}/void")
async def post_hold_void(request: web.Request) -> web.Response:
    return await _resolve(request, False)


@read_routes.get("/v1/accounts/{id}/entries")
async def account_entries(request: web.Request) -> web.Response:
    """An account's postings, oldest first, in commit order; `next` is the cursor of the next page.

    amount: + debit, - credit (raw sign). Stable under concurrent writes:
    a page shows only transactions older than every one still running.
    """
    api = request.app[SETTINGS].api
    q = Query(request.query, {"limit", "cursor", "asset"})
    limit = q.integer("limit", default=api.default_page_size, low=1, high=api.max_page_size)
    cursor = q.text("cursor", CURSOR, "a cursor from a previous page's `next`") or "0:0"
    asset = q.text("asset", re.compile(IDENT_PATTERN), "an asset id")
    ref = path_ident(request)
    async with request.app[POOL].acquire() as conn:
        account = await account_by_ref(conn, ref)
        if account is None:
            raise RequestError("id", "no ledger account with this code or id", status=404, code="not_found")
        page = await entries_page(conn, account, cursor, limit, asset)
    return json_response(page)
