"""Ledger transfers, holds and account entries.

Admin: POST /v1/admin/ledger/transfers (one or several transfers, linked:
all or none), /v1/admin/ledger/holds, /v1/admin/ledger/holds/{id}/post and
/void. Private read (area `accounts`): GET /v1/accounts/{id}/entries
(keyset pages in commit order). Handlers are thin: settlement/ledger/
transfers.py and holds.py decide. A refusal is 422 with `error` the result
code (exceeds_available, unknown_account, asset_mismatch, ...), `field` and
`account`; a reused id with a different body is 409 naming the field.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from settlement.ledger.holds import Hold, HoldNotFound, create_hold, post_hold, void_hold
from settlement.ledger.transfers import (
    Transfer,
    TransferBatcher,
    TransferConflict,
    TransferRefused,
    account_by_ref,
    entries_page,
)

from .http import PlainText, RequestError, error_body, json_response
from .routing import Error, Ident, Routes, Text, Units, UnitsIn
from .settlement_routes import PageLimit, page_limit
from .state import ADMIN_ACTOR, POOL, SETTINGS

admin_routes = Routes("admin", auth="admin")
routes = Routes("private", area="accounts")
# Concurrent transfer requests of this process share booking transactions (group commit).
BATCHER = web.AppKey("ledger_batcher", TransferBatcher)
# The app's 64 KiB body limit (api/app.py MAX_BODY) holds about 200 (the CLI takes 1000).
MAX_HTTP_LINKED = 200


def register(app: web.Application, *, admin: bool) -> None:
    app.add_routes(routes)
    if admin:
        app[BATCHER] = TransferBatcher()
        app.add_routes(admin_routes)


class Refusal(Error):
    account: str | None = Field(None, description="the account the refusal is about")


class RefusedError(RequestError):
    """422: a transfer or hold refused by the ledger's rules, with its result code and account."""

    def __init__(self, exc: TransferRefused) -> None:
        super().__init__(exc.field, exc.reason, status=422, code=exc.result)
        self.account = exc.account

    def response(self) -> web.Response:
        body = error_body(self.status, self.code, str(self), self.field)
        if self.account is not None:
            body["account"] = self.account
        return json_response(body, status=self.status)


def refused(exc: TransferRefused | TransferConflict) -> RequestError:
    if isinstance(exc, TransferConflict):
        return RequestError(exc.field, exc.reason, status=409, code="conflict")
    if isinstance(exc, HoldNotFound):
        return RequestError(exc.field, exc.reason, status=404, code="not_found")
    return RefusedError(exc)


REFUSED = {422: (Refusal, "Refused by the ledger's rules: `error` is the result code, `account` the account")}
CONFLICT = {409: "The id was used with a different body"}


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident = Field(description="The client's id: the idempotency key")
    debit_account: Ident
    credit_account: Ident
    asset: Ident
    amount: UnitsIn(1)
    code: StrictInt = Field(0, ge=0, le=2**31 - 1, description="The app's own code for the kind of transfer")
    memo: PlainText | None = Field(None, max_length=500)


class TransfersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfers: list[TransferBody] = Field(min_length=1, max_length=MAX_HTTP_LINKED,
                                          description="Linked: all are booked or none")


class TransferRow(BaseModel):
    id: str
    debit_account: str
    credit_account: str
    asset: str
    amount: Units
    code: int
    memo: str | None
    transaction_id: int
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class TransfersBooked(BaseModel):
    transfers: list[TransferRow]
    created: bool = Field(description="false: the same request was booked before (replayed answer)")


class HoldBody(TransferBody):
    timeout_seconds: float | None = Field(None, gt=0, le=366 * 86400,
                                          description="Expires after this (default: ledger.hold_timeout_seconds)")


class PostBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: UnitsIn(1) | None = Field(None, description="Post this much (the rest returns); default all")


class HoldRow(BaseModel):
    id: str
    code: int
    memo: str | None
    debit_account: str
    credit_account: str
    asset: str
    amount: Units
    state: str = Field(description="pending, posted, voided or expired")
    posted_amount: Units | None
    transaction_id: int | None
    expires_at: str = Field(json_schema_extra={"format": "date-time"})
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    resolved_at: str | None
    resolved_by: str | None


class HoldCreated(BaseModel):
    hold: HoldRow
    created: bool = Field(description="false: the id's stored hold, same body")


class HoldResolved(BaseModel):
    hold: HoldRow
    changed: bool = Field(description="false: it was resolved before (by this or another request, or expiry)")


class HoldRef(BaseModel):
    id: Ident


@admin_routes.post("/v1/admin/ledger/transfers", body=TransfersBody, response=TransfersBooked, status=201,
                   responses={200: (TransfersBooked, "The same request, booked before"), **REFUSED},
                   errors=CONFLICT)
async def post_transfers(request: web.Request, body: TransfersBody) -> web.Response:
    """Book one or several transfers, linked (all or none), idempotent by each transfer's id"""
    transfers = [Transfer(t.id, t.debit_account, t.credit_account, t.asset, t.amount, t.code, t.memo)
                 for t in body.transfers]
    try:
        out, created = await request.app[BATCHER].submit(request.app[POOL], request.app[SETTINGS], transfers,
                                                         request.app[ADMIN_ACTOR])
    except (TransferRefused, TransferConflict) as exc:
        raise refused(exc) from None
    return json_response({"transfers": out, "created": created}, status=201 if created else 200)


@admin_routes.post("/v1/admin/ledger/holds", body=HoldBody, response=HoldCreated, status=201,
                   responses={200: (HoldCreated, "The id's stored hold"), **REFUSED}, errors=CONFLICT)
async def post_hold_route(request: web.Request, body: HoldBody) -> web.Response:
    """Reserve an amount against the debit account (a two-phase transfer): post, void or let it expire"""
    h = Hold(body.id, body.debit_account, body.credit_account, body.asset, body.amount, body.code, body.memo,
             body.timeout_seconds)
    try:
        out, created = await create_hold(request.app[POOL], request.app[SETTINGS], h, request.app[ADMIN_ACTOR])
    except (TransferRefused, TransferConflict) as exc:
        raise refused(exc) from None
    return json_response({"hold": out, "created": created}, status=201 if created else 200)


async def _resolve(request: web.Request, hold_id: str, amount: int | None, post: bool) -> web.Response:
    pool, actor = request.app[POOL], request.app[ADMIN_ACTOR]
    try:
        out, changed = await (post_hold(pool, hold_id, amount, actor) if post else void_hold(pool, hold_id, actor))
    except (TransferRefused, TransferConflict) as exc:
        raise refused(exc) from None
    return json_response({"hold": out, "changed": changed})


@admin_routes.post("/v1/admin/ledger/holds/{id}/post", params=HoldRef, body=PostBody, body_required=False,
                   response=HoldResolved, responses=REFUSED, errors={404: "No such hold", **CONFLICT})
async def post_hold_post(request: web.Request, p: HoldRef, body: PostBody) -> web.Response:
    """Post all of a pending hold, or `amount` of it (the rest returns); exactly once"""
    return await _resolve(request, p.id, body.amount, True)


@admin_routes.post("/v1/admin/ledger/holds/{id}/void", params=HoldRef, response=HoldResolved,
                   responses=REFUSED, errors={404: "No such hold", **CONFLICT})
async def post_hold_void(request: web.Request, p: HoldRef) -> web.Response:
    """Void a pending hold: its whole amount returns; exactly once"""
    return await _resolve(request, p.id, None, False)


EntriesCursor = Text(r"^[0-9]{1,19}:[0-9]{1,18}$", "a cursor from a previous page's `next`")


class EntriesQuery(BaseModel):
    id: Ident = Field(description="Account code or numeric id")
    limit: PageLimit | None = Field(None, description="Page size")
    cursor: EntriesCursor | None = None
    asset: Ident | None = Field(None, description="Only this asset id")


class AccountRef(BaseModel):
    id: int
    code: str
    kind: str


class Entry(BaseModel):
    id: int
    asset_id: str
    amount: Units = Field(description="debit-positive: + debit, - credit (the stored posting)")
    transaction_id: int
    cause: str = Field(description="event, transfer, payout, manual or opening")
    key: str = Field(description="the ledger transaction's idempotency key")
    detail: dict[str, Any]
    chain: str
    block_number: int
    tx_hash: str | None
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class EntriesPage(BaseModel):
    account: AccountRef
    entries: list[Entry]
    next: str = Field(description="pass as `cursor` for the next page (or later, for what was committed since)")
    more: bool


@routes.get("/v1/accounts/{id}/entries", params=EntriesQuery, response=EntriesPage,
            errors={404: "No such account"})
async def account_entries(request: web.Request, p: EntriesQuery) -> web.Response:
    """An account's postings with their cause, oldest first, in commit order (keyset pages)

    Stable under concurrent writes: a page shows only transactions older
    than every one still running, so a page never changes once read.
    """
    limit = page_limit(p.limit, request.app[SETTINGS].api)
    async with request.app[POOL].acquire() as conn:
        account = await account_by_ref(conn, p.id)
        if account is None:
            raise RequestError("id", "no ledger account with this code or id", status=404, code="not_found")
        page = await entries_page(conn, account, p.cursor or "0:0", limit, p.asset)
    return json_response(page)
