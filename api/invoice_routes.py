"""Invoice routes: create and read (admin), and verify a given payment (public, rate limited).

`POST /v1/admin/invoices` and `GET /v1/admin/invoices/{id}` exist only
with an admin token, like every admin route. `POST /v1/verify-payment`
reads: the indexed data for watched wallets, the chain otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from indexer.errors import BadRpcResponse, RpcError
from settlement.invoices.invoices import InvoiceError, InvoiceRequest, create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment

from .http import IDENT_PATTERN, PlainText, RequestError, json_response
from .routing import AddressText, Ident, Routes, Units, UnitsIn
from .scopes import can_read, principal, public_areas
from .state import ADMIN_ACTOR, POOL, SETTINGS

admin_routes = Routes("admin", auth="admin")
routes = Routes("public", auth=None)
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}
MATCH_METHODS = Literal["destination_tag", "memo", "payer", "amount"]
STATES = Literal["new", "seen", "paid", "underpaid", "overpaid", "expired", "paid_late", "reverted", "invalid"]
VERDICTS = Literal["not_found", "pending", "paid_final", "underpaid", "wrong_asset", "wrong_recipient", "wrong_payer",
                   "failed_tx", "already_claimed", "wrong_amount", "invoice_closed", "expired"]


def _refused(exc: InvoiceError) -> RequestError:
    return RequestError(exc.field, exc.reason, status=_STATUS.get(exc.code, 400), code=exc.code)


class InvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    asset: StrictStr = Field(max_length=64)
    amount: UnitsIn(1)
    wallet: StrictStr = Field(max_length=128)
    # Readable back by GET /v1/admin/invoices/{app_ref}: the path-id alphabet.
    app_ref: StrictStr = Field(min_length=1, max_length=200, pattern=IDENT_PATTERN)
    account: PlainText = Field(min_length=6, max_length=200, pattern=r"^user:[A-Za-z0-9_.:@+=-]+$")
    match_method: StrictStr = Field(max_length=32, json_schema_extra={
        "enum": ["destination_tag", "memo", "payer", "amount"]})
    expires_in: StrictInt | None = Field(None, ge=1, le=10**9)
    tolerance: UnitsIn(0) = 0
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    memo: PlainText | None = Field(None, min_length=1, max_length=200)
    payer: StrictStr | None = Field(None, max_length=128)


class Invoice(BaseModel):
    id: str
    app_ref: str
    chain: str
    asset: str
    asset_id: str | None = None
    amount: Units
    tolerance: Units | None = None
    wallet: str
    match_method: MATCH_METHODS | None = None
    destination_tag: int | None = None
    memo: str | None = None
    payer: str | None = None
    account: str
    state: STATES
    received: Units
    shortfall: Units
    excess: Units
    reason: str | None = None
    after_block: int | None = None
    expires_at: dt.datetime
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    settled_at: dt.datetime | None = None
    payments: list[dict[str, Any]] | None = None


class InvoiceCreated(BaseModel):
    invoice: Invoice
    created: bool


class InvoiceOne(BaseModel):
    invoice: Invoice


@admin_routes.post("/v1/admin/invoices", body=InvoiceBody, response=InvoiceCreated, status=201,
                   responses={200: (InvoiceCreated, "The app_ref's stored invoice")},
                   errors={409: "app_ref, tag, memo or unique amount already used"})
async def create(request: web.Request, body: InvoiceBody) -> web.Response:
    """Create an invoice, idempotent by `app_ref` (audited)

    201 with a new invoice; 200 with the stored one when app_ref was used for the same invoice.
    """
    req = InvoiceRequest(chain=body.chain, asset=body.asset, amount=body.amount,
                         wallet=body.wallet, app_ref=body.app_ref, account=body.account,
                         match_method=body.match_method, expires_in=body.expires_in,
                         tolerance=body.tolerance,
                         destination_tag=body.destination_tag, memo=body.memo, payer=body.payer)
    try:
        inv, created = await create_invoice(request.app[POOL], request.app[SETTINGS], req,
                                            actor=request.app[ADMIN_ACTOR])
    except InvoiceError as exc:
        raise _refused(exc) from None
    return json_response({"invoice": inv, "created": created}, status=201 if created else 200)


class InvoicePath(BaseModel):
    id: Ident = Field(description="Invoice id or app reference")


@admin_routes.get("/v1/admin/invoices/{id}", params=InvoicePath, response=InvoiceOne,
                  errors={404: "No such invoice"})
async def read(request: web.Request, p: InvoicePath) -> web.Response:
    """One invoice: state, received, shortfall, excess, claimed payments"""
    inv = await get_invoice(request.app[POOL], p.id)
    if inv is None:
        raise RequestError("id", "no invoice with this id or app reference", status=404, code="not_found")
    return json_response({"invoice": inv})


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    tx_hash: StrictStr = Field(max_length=66)
    to: AddressText | None = Field(None, max_length=128)
    asset: StrictStr | None = Field(None, max_length=64)
    min_amount: UnitsIn(0) | None = None
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    memo: PlainText | None = Field(None, min_length=1, max_length=200)
    payer: AddressText | None = Field(None, max_length=128)
    invoice: StrictStr | None = Field(None, max_length=200, pattern=IDENT_PATTERN)
    claim_key: Ident | None = Field(None, description="The purpose this transfer is accepted for (e.g. an order id): "
                                    "the same transaction is then never accepted for another key")


class ClaimMade(BaseModel):
    key: str
    new: bool = Field(description="false: the key claimed this transfer before")
    claimed_at: str = Field(json_schema_extra={"format": "date-time"})


class PaymentVerdict(BaseModel):
    status: VERDICTS
    source: Literal["index", "chain"]
    tx_hash: str
    reason: str | None = None
    note: str | None = None
    amount: Units | None = None
    shortfall: Units | None = None
    confirmations: int | None = None
    claimed_by: str | None = None
    payer: str | None = None
    block_number: int | None = None
    log_indexes: list[int] | None = None
    claim_key: str | None = Field(None, description="already_claimed: the key that owns the transfer")
    invoice_state: str | None = None
    received: Units | None = Field(None, description="what the invoice has received so far")
    expected: Units | None = Field(None, description="wrong_amount: the invoice's amount")
    tolerance: Units | None = None
    claimed_now: bool | None = Field(None, description="true: this answer made the claim")
    claim: ClaimMade | None = Field(None, description="with claim_key: the claim this answer stands on")


@routes.post("/v1/verify-payment", body=VerifyBody, response=PaymentVerdict,
             errors={404: "No such invoice", 503: "The chain could not be asked"})
async def verify(request: web.Request, body: VerifyBody) -> web.Response:
    """Verify one transaction against an expectation or an invoice (indexed data for watched wallets, else the chain)"""
    exp = Expectation(chain=body.chain, tx_hash=body.tx_hash, to=body.to, asset=body.asset,
                      min_amount=body.min_amount, destination_tag=body.destination_tag, memo=body.memo,
                      payer=body.payer, invoice=body.invoice, claim_key=body.claim_key)
    try:
        out = await verify_payment(request.app[POOL], request.app[SETTINGS], exp)
    except InvoiceError as exc:
        raise _refused(exc) from None
    except (RpcError, BadRpcResponse) as exc:
        raise RequestError(None, f"the chain could not be asked: {exc.__class__.__doc__ or 'RPC error'}",
                           status=503, code="chain_unavailable") from None
    if not can_read(principal(request), "invoices", public_areas(request.app)):
        out.pop("claimed_by", None)  # another invoice's id: private (README "Read scopes")
        if out.get("claim_key") != body.claim_key:
            out.pop("claim_key", None)  # another purpose's key (an app's order id): private too
    return json_response(out)
