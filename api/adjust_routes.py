"""`POST /v1/admin/ledger/adjustments`: an operator books a manual
adjustment (settlement/ledger/adjust.py). Admin only; the actor is the
admin token's label and `author` the person named in the body, both audited.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from settlement.ledger.adjust import Adjustment, AdjustmentRefused, adjust

from .http import PlainText, RequestError, json_response
from .routing import Ident, Routes, Text, Units, UnitsIn
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = Routes("admin", auth="admin")
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}


class AdjustmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    debit: StrictStr = Field(max_length=250, description="account code, e.g. adjustment:anvil:writeoff")
    credit: StrictStr = Field(max_length=250, description="account code, e.g. wallet:anvil:0xab..")
    asset: StrictStr = Field(max_length=200, description="asset id ('anvil:Token') or a name of the chain")
    amount: UnitsIn(1)
    author: PlainText = Field(min_length=1, max_length=200)
    reason: PlainText = Field(min_length=1, max_length=500)
    block: StrictInt | None = Field(None, ge=0, le=2**63 - 1,
                                    description="height the entry is effective at (default: the final height)")
    tx_hash: Text(r"^(0x)?[0-9a-fA-F]{64}$", "a transaction hash: 64 hex digits") | None = None
    key: Ident = Field(description="idempotency key: the same key and body returns the stored adjustment")


class AdjustmentRow(BaseModel):
    key: str
    transaction_id: int
    chain: str
    block_number: int
    tx_hash: str | None
    asset: str
    amount: Units
    debit: str
    credit: str
    author: str
    reason: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class AdjustmentBooked(BaseModel):
    adjustment: AdjustmentRow
    created: bool = Field(description="false: the key's stored adjustment")
    actor: str


@routes.post("/v1/admin/ledger/adjustments", body=AdjustmentBody, response=AdjustmentBooked, status=201,
             responses={200: (AdjustmentBooked, "The key's stored adjustment, same body")},
             errors={404: "Unknown account, asset or chain", 409: "The key was used for another adjustment"})
async def create_adjustment(request: web.Request, body: AdjustmentBody) -> web.Response:
    """Book a manual adjustment: two balanced legs, author and reason, idempotent by `key` (audited)"""
    try:
        stored, created = await adjust(request.app[POOL], request.app[SETTINGS], Adjustment(**body.model_dump()),
                                       via=request.app[ADMIN_ACTOR])
    except AdjustmentRefused as exc:
        raise RequestError(exc.field, exc.reason, status=_STATUS.get(exc.code, 400), code=exc.code) from None
    return json_response({"adjustment": stored, "created": created, "actor": request.app[ADMIN_ACTOR]},
                         status=201 if created else 200)
