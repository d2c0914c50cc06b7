"""Routes declared once: the route's models validate the request and produce its OpenAPI entry.

A route module makes one `Routes` table per area (its OpenAPI tag) and
declares each route with the models of its input and answer:

    routes = Routes("public", auth=None)   # who may read it: see "Scopes" below

    class ThingQuery(BaseModel):           # path and query parameters in one model:
        id: Ident                          #   a field named in the path is a path parameter,
        limit: QueryInt(1, 100) = 20       #   the rest are query parameters (values arrive as text:
        chain: ChainName | None = None     #   QueryInt, Text, Ident, ChainName, Address parse them)

    class Thing(BaseModel):                # the answer; amounts are `Units` (exact integer strings)
        id: str
        amount: Units

    @routes.get("/v1/things/{id}", params=ThingQuery, response=Thing, errors={404: "No such thing"})
    async def thing(request: web.Request, p: ThingQuery) -> web.Response:
        \"\"\"One thing (the first docstring line is the summary, the rest the description)\"\"\"
        ...
        return json_response({"id": ..., "amount": str(...)})   # a dict shaped like Thing

    @routes.post("/v1/admin/things", body=ThingBody, response=Thing, status=201,
                 responses={200: (Thing, "Stored before")}, errors={409: "Taken"})
    async def create(request: web.Request, body: ThingBody) -> web.Response: ...

Then `app.add_routes(routes)` in `make_app`. That is all: the document
picks the route up from the app's router.

Before the handler runs, the wrapper validates with the error contract of
`api/http.py`: a JSON 400 naming the field for an unknown or repeated
query parameter, a value out of its range or pattern, a body that is not a
JSON object or breaks its model (use `PlainText` for free text: no NUL or
control characters; bound every integer); bodies over `app.MAX_BODY` are a
413. The handler gets `p` (with `params=`) then `body` (with `body=`,
`body_required=False` reads no body as {}), and raises `RequestError` for
what a schema cannot say (404, 409, a chain that is not configured).

Scopes (api/scopes.py, README "Read scopes"): a route is private unless it
says otherwise. `Routes(tag)` (auth="admin") needs the admin token;
`auth=None` makes a table (or one route) public; `area="payouts"` names
the read area of a private read, which the operator may publish with
`[api] public = ["payouts"]`. `auth="wallet"` (the `/v1/me` routes) needs a
wallet access token whose session is open; the handler reads the token's
own account (`scopes.user_account`), never one named in the request. The wrapper refuses before reading any
parameter: 401 without a usable token, 403 when the token's scope is not
enough. The document shows `security` on every route that needs a token.

`/openapi.json` (api/openapi.py) is built on its first request from the
routes the app registered (admin routes only with a token): parameters,
request body, `response` under `status`, `responses` (other statuses with
their own model), an `Error` answer for each of `errors` and for 400, 401
(with `auth`), 429 (rate-limited paths) and `default`. Handlers return
the dicts they build (no model per row on hot paths): the schemathesis
test checks every answer against the document. `Runtime("chains")` inside
a field's type marks a part the configuration decides (configured chains,
payout assets, page size): `openapi.runtime_values` fills it in.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from aiohttp import web
from annotated_types import Interval
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.json_schema import models_json_schema

from .http import (
    CHAIN_NAME,
    EVENT_NAME,
    EVM_ADDRESS,
    IDENT,
    MAX_BIGINT,
    XRPL_ADDRESS,
    RequestError,
    field_error,
    json_body,
)
from .scopes import allowed, require_session

JSON = "application/json"
REF = "#/components/schemas/{model}"
Handler = Callable[..., Awaitable[web.StreamResponse]]
_PATH_NAMES = re.compile(r"\{([^}:]+)")


# -- field types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """Schema marker: `runtime[key]` (api/openapi.py) is merged into this schema when the document is built."""

    key: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["x-runtime"] = self.key
        return schema


def _int_check(low: int, high: int):
    message = f"must be an integer between {low} and {high}"

    def check(value: Any) -> Any:
        if isinstance(value, str):
            # int() accepts '1_000', ' 7' and non-ASCII digits; an API should not.
            if not re.fullmatch(r"-?[0-9]{1,20}", value):
                raise ValueError(message)
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
            raise ValueError(message)
        return value

    return check


def QueryInt(low: int = 0, high: int = MAX_BIGINT) -> Any:  # noqa: N802
    """An integer parameter given as text: ASCII digits only, within [low, high]."""
    return Annotated[int, Interval(ge=low, le=high), BeforeValidator(_int_check(low, high))]


def Text(pattern: str, what: str) -> Any:  # noqa: N802
    """Text matching `pattern` (anchored); the 400 says it `must be {what}`."""
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return Annotated[str, StringConstraints(pattern=pattern), BeforeValidator(check)]


def _lower_evm(value: str) -> str:
    """EVM addresses are stored lowercase; XRPL addresses are case-sensitive."""
    return value.lower() if value.startswith("0x") else value


Ident = Text(IDENT.pattern, "1-200 of the characters A-Z a-z 0-9 _ . : @ + = -")
ChainName = Text(CHAIN_NAME.pattern, "a chain name (lowercase letters, digits, '-', '_')")
EventName = Text(EVENT_NAME.pattern, "an event name such as Transfer")
ADDRESS_PATTERN = f"^(({EVM_ADDRESS.pattern[1:-1]})|({XRPL_ADDRESS.pattern[1:-1]}))$"
AddressText = Text(ADDRESS_PATTERN, "a 0x-prefixed 20-byte hex address or an XRPL classic address")
# As stored: EVM lowercase.
Address = Annotated[AddressText, AfterValidator(_lower_evm)]
# Amounts in answers: exact integer strings in base units, never exponents.
Units = Annotated[str, Field(pattern=r"^-?[0-9]+$", description="base units, an exact integer")]


MAX_UNITS = 2**256 - 1


def UnitsIn(low: int = 1) -> Any:  # noqa: N802
    """An amount in a request: a JSON integer, or digits for any size; the handler gets an int in [low, 2**256)."""
    what = "a positive" if low else "a non-negative"

    def check(value: int | str) -> int:
        if isinstance(value, str):
            if not re.fullmatch(r"[0-9]{1,78}", value):
                raise ValueError(f"must be {what} integer in base units (digits only)")
            value = int(value)
        if not low <= value <= MAX_UNITS:
            raise ValueError(f"must be {what} integer in base units, below 2**256")
        return value

    return Annotated[StrictInt | StrictStr, AfterValidator(check), WithJsonSchema({"anyOf": [
        {"type": "integer", "minimum": low, "maximum": MAX_UNITS},
        {"type": "string", "pattern": "^[0-9]{1,78}$", "description": "base units, for any size"}]})]


class Error(BaseModel):
    """Every error answer."""

    error: str
    status: int = Field(ge=100)
    message: str
    field: str | None = Field(None, description="the parameter or body field at fault")


# -- declarations ------------------------------------------------------------------------------


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    params: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    response: type[BaseModel] | dict[str, Any] | None = None
    status: int = 200
    responses: dict[int, tuple[type[BaseModel], str]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    auth: str | None = "admin"  # the scheme whose token reads it; None: public
    area: str | None = None  # a private read area the operator may publish (`api.public`)
    summary: str | None = None
    description: str | None = None
    headers: dict[int, dict[str, Any]] = field(default_factory=dict)
    allow_head: bool = True
    issues: str | None = None  # the security scheme whose token this route hands out

    @property
    def path_names(self) -> frozenset[str]:
        return frozenset(_PATH_NAMES.findall(self.path))


class Routes:
    """A table of declared routes of one area (`tag`); iterate it, or pass it to `app.add_routes`."""

    def __init__(self, tag: str, *, auth: str | None = "admin", area: str | None = None) -> None:
        self.tag = tag
        self.auth = auth
        self.area = area
        self._routes: list[Route] = []

    def __iter__(self) -> Iterator[web.RouteDef]:
        for r in self._routes:
            kwargs = {"allow_head": r.allow_head} if r.method == "GET" else {}
            yield web.RouteDef(r.method, r.path, r.handler, kwargs)

    def route(self, method: str, path: str, **decl: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            decl.setdefault("auth", self.auth)
            decl.setdefault("area", self.area)
            decl.setdefault("tags", [self.tag])
            route = Route(method, path, handler, **decl)
            wrapped = _wrap(route)
            route.handler = wrapped
            self._routes.append(route)
            return handler

        return register

    def get(self, path: str, **decl: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **decl)

    def post(self, path: str, **decl: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **decl)

    def patch(self, path: str, **decl: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **decl)

    def delete(self, path: str, **decl: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **decl)


# -- validation ------------------------------------------------------------------------------


def _unknown(name: str, allowed: frozenset[str]) -> RequestError:
    shown = name if IDENT.fullmatch(name) else repr(name)[:60]
    return RequestError(shown, f"unknown query parameter; allowed: {', '.join(sorted(allowed)) or 'none'}")


def _param_reader(route: Route) -> Callable[[web.Request], BaseModel | None]:
    model = route.params
    path_names = route.path_names
    if model is None:
        def no_params(request: web.Request) -> None:
            if request.query:
                raise _unknown(next(iter(request.query)), frozenset())

        return no_params
    headers = {f.alias: n for n, f in model.model_fields.items() if _extra(f).get("in") == "header"}
    query = frozenset(n for n in model.model_fields if n not in path_names and n not in headers.values())

    def read(request: web.Request) -> BaseModel:
        q = request.query
        data: dict[str, Any] = {}
        for name in q:
            if name not in query:
                raise _unknown(name, query)
            data[name] = q[name]
        if len(data) != len(q):  # a name given twice (iterating a MultiDict yields each name once)
            raise RequestError(next(n for n in data if len(q.getall(n)) > 1), "given more than once")
        if path_names:
            data.update(request.match_info)
        for alias in headers:
            value = request.headers.get(alias)
            if value is not None:
                data[alias] = value
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise field_error(exc, "query") from None

    return read


def _extra(info: Any) -> dict[str, Any]:
    extra = info.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _wrap(route: Route) -> Handler:
    handler, body, optional = route.handler, route.body, not route.body_required
    read_params = _param_reader(route)
    takes_params = route.params is not None

    auth, area = route.auth, route.area

    async def wrapped(request: web.Request) -> web.StreamResponse:
        allowed(request, auth, area)  # 401/403 before anything of the request is read
        if auth == "wallet":
            await require_session(request)  # a logout or a reused refresh token ends it everywhere
        p = read_params(request)  # also refuses unknown query parameters where none are declared
        args: list[Any] = [p] if takes_params else []
        if body is not None:
            args.append(await json_body(request, body, optional=optional))
        return await handler(request, *args)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    wrapped.__route__ = route  # type: ignore[attr-defined]
    return wrapped


# -- the document ----------------------------------------------------------------------------------


RATE_LIMITED_HEADERS = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait"}}
TAGS = {
    "public": "Readable without a token: status, chain events, the stream (filtered by scope), verify-payment",
    "private": "Reads of accounts, payouts, batches, reconciliation details, intents and deliveries: the admin "
               "token, unless `api.public` publishes the area",
    "auth": "Wallet sign-in: a challenge to sign, then a short-lived access token and a rotating refresh token",
    "wallet": "The signed-in wallet's own account: balances, entries, payouts, invoices, withdrawals",
    "admin": "Writes and operator reads; only served with `api.admin_token`, behind its bearer token",
    "ops": "Probes, metrics, this document and the status page",
}
SECURITY = {
    "admin": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <api.admin_token>`"},
    "wallet": {"type": "http", "scheme": "bearer",
               "description": "The access token `POST /v1/auth/verify` (or `/v1/auth/refresh`) returned"},
}


def registered(app: web.Application) -> list[Route]:
    """The declared routes the app serves, in registration order."""
    out = []
    for r in app.router.routes():
        route = getattr(r.handler, "__route__", None)
        if route is not None and r.method != "HEAD":
            out.append(route)
    return out


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _param_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema: never null (absent is how a parameter says none), no pydantic titles."""
    schema = {k: v for k, v in schema.items() if k not in ("title", "default")}
    options = schema.pop("anyOf", None)
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            schema = {**kept[0], **schema}
        else:
            schema["anyOf"] = kept
    return schema


def _parameters(route: Route, defs: dict[str, Any]) -> list[dict[str, Any]]:
    if route.params is None:
        return []
    schema = route.params.model_json_schema(ref_template=REF, mode="validation")
    defs.update(schema.pop("$defs", {}))
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        where = "path" if name in route.path_names else prop.pop("in", "query")
        param = {"name": name, "in": where, "required": where == "path" or name in required,
                 "schema": _param_schema(prop)}
        if "description" in param["schema"]:
            param["description"] = param["schema"].pop("description")
        out.append(param)
    return out


def _secured(route: Route, public: frozenset[str]) -> bool:
    return route.auth is not None and route.area not in public


def _operation(route: Route, limited: bool, defs: dict[str, Any], refs: dict[Any, dict[str, Any]],
               secured: bool) -> dict[str, Any]:
    def _ref(model: type[BaseModel], mode: str = "serialization") -> dict[str, Any]:
        return refs[(model, mode)]

    doc = (route.handler.__doc__ or "").strip()
    summary = route.summary or (doc.splitlines()[0] if doc else f"{route.method} {route.path}")
    op: dict[str, Any] = {"summary": summary, "tags": route.tags, "operationId": route.handler.__name__}
    description = route.description or ("\n".join(doc.splitlines()[1:]).strip() if not route.summary else "")
    if description:
        op["description"] = description
    params = _parameters(route, defs)
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required, "content": {JSON: {"schema": _ref(route.body, "validation")}}}
    responses: dict[str, Any] = {}
    if isinstance(route.response, dict):  # not JSON: {"content": {...}} as OpenAPI writes it
        responses[str(route.status)] = {"description": "OK", **route.response}
    elif route.response is not None:
        responses[str(route.status)] = _json(_ref(route.response), "OK", route.headers.get(route.status))
    for status, (model, text) in route.responses.items():
        responses[str(status)] = _json(_ref(model), text, route.headers.get(status))
    responses["400"] = _json(_ref(Error), "Malformed or refused; `field` names the parameter")
    if secured:
        responses["401"] = _json(_ref(Error), "Missing or wrong bearer token")
        responses["403"] = _json(_ref(Error), "The token's scope cannot read this")
        op["security"] = [{route.auth: []}]
    for status, text in route.errors.items():
        responses[str(status)] = _json(_ref(Error), text, route.headers.get(status))
    if limited:
        responses["429"] = _json(_ref(Error), "Per-client rate limit exceeded", RATE_LIMITED_HEADERS)
    responses["default"] = _json(_ref(Error), "Any other error, as JSON")
    op["responses"] = responses
    return op


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], str]]:
    seen: dict[tuple[type[BaseModel], str], None] = {(Error, "serialization"): None}
    for r in routes:
        if r.body is not None:
            seen[(r.body, "validation")] = None
        if isinstance(r.response, type):
            seen[(r.response, "serialization")] = None
        for model, _ in r.responses.values():
            seen[(model, "serialization")] = None
    return list(seen)


def _fill_runtime(node: Any, values: dict[str, dict[str, Any] | None]) -> None:
    if isinstance(node, dict):
        key = node.pop("x-runtime", None)
        if key is not None and values.get(key):
            node.update(values[key])
        for v in node.values():
            _fill_runtime(v, values)
    elif isinstance(node, list):
        for v in node:
            _fill_runtime(v, values)


def build_spec(routes: list[Route], *, runtime: dict[str, dict[str, Any] | None], unlimited: frozenset[str],
               title: str, description: str, public: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`; `runtime` fills the `Runtime(key)` markers.

    `public`: the read areas the operator published (their routes need no token).
    """
    refs, schema = models_json_schema(_models(routes), ref_template=REF)
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(r, r.path not in unlimited, defs, dict(refs),
                                                                    _secured(r, public))
    tags = sorted({t for r in routes for t in r.tags}, key=list(TAGS).index)
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "tags": [{"name": t, "description": TAGS[t]} for t in tags],
        "paths": paths,
        "components": {"schemas": defs},
    }
    schemes = {r.auth for r in routes if _secured(r, public)} | {r.issues for r in routes if r.issues is not None}
    if schemes:
        spec["components"]["securitySchemes"] = {s: SECURITY[s] for s in sorted(schemes)}
    _fill_runtime(spec, runtime)
    return spec
