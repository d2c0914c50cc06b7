"""`POST /v1/admin/ledger/adjustments`: an operator books a manual
adjustment (settlement/ledger/adjust.py). Admin only; the actor is the
admin token's label and `author` the person named in the body, both audited.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from settlement.ledger.adjust import Adjustment, AdjustmentRefused, adjust

from .http import PlainText, RequestError, json_body, json_response
from .state import ADMIN_ACTOR, POOL, SETTINGS

routes = web.RouteTableDef()
_STATUS = {"invalid_parameter": 400, "not_found": 404, "conflict": 409}


class AdjustmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    debit: StrictStr = Field(max_length=250)
    credit: StrictStr = Field(max_length=250)
    asset: StrictStr = Field(max_length=200)
    amount: StrictInt | StrictStr
    author: PlainText = Field(min_length=1, max_length=200)
    reason: PlainText = Field(min_length=1, max_length=500)
    block: StrictInt | None = Field(None, ge=0, le=2**63 - 1)
    tx_hash: StrictStr | None = Field(None, max_length=66)
    key: StrictStr = Field(max_length=200)


@routes.post("/v1/admin/ledger/adjustments")
async def create_adjustment(request: web.Request) -> web.Response:
    """201 with the booked adjustment; 200 with the stored one when its key was used for the same one."""
    body: AdjustmentBody = await json_body(request, AdjustmentBody)
    try:
        stored, created = await adjust(request.app[POOL], request.app[SETTINGS], Adjustment(**body.model_dump()),
                                       via=request.app[ADMIN_ACTOR])
    except AdjustmentRefused as exc:
        raise RequestError(exc.field, exc.reason, status=_STATUS.get(exc.code, 400), code=exc.code) from None
    return json_response({"adjustment": stored, "created": created, "actor": request.app[ADMIN_ACTOR]},
                         status=201 if created else 200)
