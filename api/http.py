"""JSON responses, request errors that name their field, and parameter parsing.

Every handler validates its input through these helpers, so a bad request
gets a 400 naming the parameter and never reaches the database as
something Postgres would reject (NUL bytes, out-of-range integers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from aiohttp import web
from multidict import MultiMapping
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


class Query:
    """Typed access to a request's query string; unknown or repeated names are errors."""

    def __init__(self, params: MultiMapping[str], allowed: set[str]) -> None:
        for name in params:
            if name not in allowed:
                shown = name if IDENT.fullmatch(name) else repr(name)[:60]
                raise RequestError(shown, f"unknown query parameter; allowed: {', '.join(sorted(allowed)) or 'none'}")
            if len(params.getall(name)) > 1:
                raise RequestError(name, "given more than once")
        self._p = params

    def text(self, name: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self._p.get(name)
        if value is None:
            return None
        if not pattern.fullmatch(value):
            raise RequestError(name, f"must be {what}")
        return value

    def integer(self, name: str, *, default: int | None = None, low: int = 0, high: int = MAX_BIGINT) -> int | None:
        raw = self._p.get(name)
        if raw is None:
            return default
        return parse_int(name, raw, low=low, high=high)

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self._p.get(name, default)
        if value not in options:
            raise RequestError(name, f"must be one of {', '.join(options)}")
        return value

    def address(self, name: str = "address") -> str | None:
        """EVM addresses are stored lowercase; XRPL addresses are case-sensitive."""
        value = self._p.get(name)
        if value is None:
            return None
        if EVM_ADDRESS.fullmatch(value):
            return value.lower()
        if XRPL_ADDRESS.fullmatch(value):
            return value
        raise RequestError(name, "must be a 0x-prefixed 20-byte hex address or an XRPL classic address")

    def boolean(self, name: str, default: bool) -> bool:
        value = self._p.get(name)
        if value is None:
            return default
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise RequestError(name, "must be true or false")


def parse_int(name: str, raw: str, *, low: int = 0, high: int = MAX_BIGINT) -> int:
    # int() accepts '1_000', ' 7' and non-ASCII digits; an API should not.
    if not re.fullmatch(r"-?[0-9]{1,20}", raw):
        raise RequestError(name, f"must be an integer between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise RequestError(name, f"must be an integer between {low} and {high}")
    return value


def path_ident(request: web.Request, name: str = "id") -> str:
    value = request.match_info.get(name, "")
    if not IDENT.fullmatch(value):
        raise RequestError(name, "must be 1-200 of the characters A-Z a-z 0-9 _ . : @ + = -")
    return value


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
        err = exc.errors(include_input=False, include_url=False)[0]
        # The first element is the body field; the rest name union members.
        field = str(err["loc"][0]) if err["loc"] else "body"
        raise RequestError(field, err["msg"]) from None
