"""JSON responses, request errors that name their field, and body parsing.

Every route validates its input through its declaration (api/routing.py),
which uses these helpers: a bad request gets a 400 naming the parameter
and never reaches the database as something Postgres would reject (NUL
bytes, out-of-range integers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import AfterValidator, BaseModel, StrictStr, ValidationError

from config import ChainsettleError
from db.values import json_default

MAX_BIGINT = 2**63 - 1
CHAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
XRPL_ADDRESS = re.compile(r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$")
EVENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Ids and account codes ('user:xrpl:tag:42', '17'): no spaces, slashes or controls.
IDENT_PATTERN = r"^[A-Za-z0-9_.:@+=-]{1,200}$"
IDENT = re.compile(IDENT_PATTERN)
# Postgres text cannot hold NUL; other controls have no business in a reason.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[StrictStr, AfterValidator(_plain_text)]


class RequestError(ChainsettleError):
    """bad request"""

    def __init__(
        self,
        field: str | None,
        message: str,
        *,
        status: int = 400,
        code: str = "invalid_parameter",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.status = status
        self.code = code
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_response(error_body(self.status, self.code, str(self), self.field), status=self.status, headers=self.headers)





def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=json_default, option=orjson.OPT_NON_STR_KEYS)


def json_response(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json", headers=headers)


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "status": status, "message": message}
    if field is not None:
        body["field"] = field
    return body


def row_dict(record: Any) -> dict[str, Any]:
    return dict(record.items())


async def json_body(request: web.Request, model: type[BaseModel], *, optional: bool = False) -> Any:
    """Parse and validate a JSON object body (`optional`: none reads as {}); errors name the field."""
    raw = await request.read()
    if optional and not raw.strip():
        raw = b"{}"
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise RequestError("body", "must be valid JSON") from None
    if not isinstance(data, dict):
        raise RequestError("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_error(exc) from None


def field_error(exc: ValidationError, default: str = "body") -> RequestError:
    """The first error of a validation, as the 400 that names its field."""
    err = exc.errors(include_input=False, include_url=False, include_context=False)[0]
    # The first element is the field; the rest name union members or list items.
    name = str(err["loc"][0]) if err["loc"] else default
    message = err["msg"].removeprefix("Value error, ")
    return RequestError(name if IDENT.fullmatch(name) else repr(name)[:60], message)
