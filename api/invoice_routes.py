"""Invoice routes: create and read (admin), and verify a given payment (public, rate limited).

`POST /v1/admin/invoices` and `GET /v1/admin/invoices/{id}` exist only
with an admin token, like every admin route. `POST /v1/verify-payment`
reads: the indexed data for watched wallets, the chain otherwise.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from indexer.errors import BadRpcResponse, RpcError
from settlement.invoices.invoices import InvoiceError, InvoiceRequest, create_invoice, get_invoice
from settlement.invoices.verify import Expectation, verify_payment

from .http import PlainText, RequestError, json_body, json_response, path_ident
from .state import ADMIN_ACTOR, POOL, SETTINGS

admin_routes = web.RouteTableDef()
routes = web.RouteTableDef()
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}
MAX_UNITS = 2**256 - 1


def _refused(exc: InvoiceError) -> RequestError:
    return RequestError(exc.field, exc.reason, status=_STATUS.get(exc.code, 400), code=exc.code)


def _units(field: str, value: int | str, *, zero: bool = False) -> int:
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 78:
            raise RequestError(field, "must be an integer in base units (digits only)")
        value = int(value)
    if not (0 if zero else 1) <= value <= MAX_UNITS:
        raise RequestError(field, f"must be {'a non-negative' if zero else 'a positive'} integer in base units")
    return value


class InvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    asset: StrictStr = Field(max_length=64)
    amount: StrictInt | StrictStr
    wallet: StrictStr = Field(max_length=128)
    # Readable back by GET /v1/admin/invoices/{app_ref}: the path-id alphabet.
    app_ref: StrictStr = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@+=-]{1,200}$")
    account: PlainText = Field(min_length=6, max_length=200, pattern=r"^user:[A-Za-z0-9_.:@+=-]+$")
    match_method: StrictStr = Field(max_length=32)
    expires_in: StrictInt | None = Field(None, ge=1, le=10**9)
    tolerance: StrictInt | StrictStr = 0
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    memo: PlainText | None = Field(None, min_length=1, max_length=200)
    payer: StrictStr | None = Field(None, max_length=128)


@admin_routes.post("/v1/admin/invoices")
async def create(request: web.Request) -> web.Response:
    """201 with a new invoice; 200 with the stored one when app_ref was used for the same invoice."""
    body: InvoiceBody = await json_body(request, InvoiceBody)
    req = InvoiceRequest(chain=body.chain, asset=body.asset, amount=_units("amount", body.amount),
                         wallet=body.wallet, app_ref=body.app_ref, account=body.account,
                         match_method=body.match_method, expires_in=body.expires_in,
                         tolerance=_units("tolerance", body.tolerance, zero=True),
                         destination_tag=body.destination_tag, memo=body.memo, payer=body.payer)
    try:
        inv, created = await create_invoice(request.app[POOL], request.app[SETTINGS], req,
                                            actor=request.app[ADMIN_ACTOR])
    except InvoiceError as exc:
        raise _refused(exc) from None
    return json_response({"invoice": inv, "created": created}, status=201 if created else 200)


@admin_routes.get("/v1/admin/invoices/{id}")
async def read(request: web.Request) -> web.Response:
    ref = path_ident(request)
    inv = await get_invoice(request.app[POOL], ref)
    if inv is None:
        raise RequestError("id", "no invoice with this id or app reference", status=404, code="not_found")
    return json_response({"invoice": inv})


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    tx_hash: StrictStr = Field(max_length=66)
    to: StrictStr | None = Field(None, max_length=128)
    asset: StrictStr | None = Field(None, max_length=64)
    min_amount: StrictInt | StrictStr | None = None
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    memo: PlainText | None = Field(None, min_length=1, max_length=200)
    payer: StrictStr | None = Field(None, max_length=128)
    invoice: StrictStr | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_.:@+=-]{1,200}$")
    claim_key: StrictStr | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9_.:@+=-]{1,200}$")


def _address(field: str, value: str | None) -> str | None:
    from .http import EVM_ADDRESS, XRPL_ADDRESS

    if value is not None and not (EVM_ADDRESS.fullmatch(value) or XRPL_ADDRESS.fullmatch(value)):
        raise RequestError(field, "must be a 0x-prefixed 20-byte hex address or an XRPL classic address")
    return value


@routes.post("/v1/verify-payment")
async def verify(request: web.Request) -> web.Response:
    body: VerifyBody = await json_body(request, VerifyBody)
    exp = Expectation(chain=body.chain, tx_hash=body.tx_hash, to=_address("to", body.to), asset=body.asset,
                      min_amount=None if body.min_amount is None else _units("min_amount", body.min_amount, zero=True),
                      destination_tag=body.destination_tag, memo=body.memo, payer=_address("payer", body.payer),
                      invoice=body.invoice, claim_key=body.claim_key)
    try:
        out = await verify_payment(request.app[POOL], request.app[SETTINGS], exp)
    except InvoiceError as exc:
        raise _refused(exc) from None
    except (RpcError, BadRpcResponse) as exc:
        raise RequestError(None, f"the chain could not be asked: {exc.__class__.__doc__ or 'RPC error'}",
                           status=503, code="chain_unavailable") from None
    return json_response(out)
