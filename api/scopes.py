"""Read scopes: who is asking (a `Principal`, resolved once per request) and what they may read.

Three kinds of principal: `anonymous` (no token, or one nobody issued),
`admin` (`Authorization: Bearer <api.admin_token>`) and `wallet` (a token
`POST /v1/auth/verify` signed, for one address on one chain). Every
declared route (api/routing.py) names who may read it:

- `auth=None`: anyone (status, chain events, the stream, probes, sign-in);
- `auth="admin"`: the admin token; with `area=` (accounts, payouts, ...)
  also anyone when the operator lists the area in `[api] public`.

A wallet reads nothing private yet: issue 27 lets it read its own accounts
(the `Principal` already carries its address and chain; `allowed` is where
that check goes). The SSE feed asks `feed_area` which messages a
connection may see. Answers: 401 without a usable token, 403 when the
token's scope is not enough. README "Read scopes" has the table.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from config import Secret
from config.logs import get_logger
from settlement.signin.tokens import verify_token

from .http import RequestError
from .state import SETTINGS

log = get_logger("api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chainsettle"'}


@dataclass(frozen=True)
class Principal:
    kind: Literal["anonymous", "admin", "wallet"]
    address: str | None = None  # wallet: the signed-in address (EVM lowercase)
    chain: str | None = None  # wallet: the chain it signed in on
    bad_token: bool = False  # anonymous because the bearer token given was not one we issued


ANONYMOUS = Principal("anonymous")
ADMIN = Principal("admin")
REQUEST_KEY = web.RequestKey("principal", Principal)

# What each SSE message kind belongs to: None is public; "admin" is never published. A kind
# in REDACTED goes, without those fields, to a connection that cannot read its area.
FEED_AREAS: dict[str, str | None] = {
    "chain_event": None,
    "asset_pause": "reconciliation",  # sent without its reason to those who cannot read it
    "payout_control": None,
    "reconciliation": "reconciliation",  # sent without `results` to those who cannot read it
    "payout": "payouts",
    "batch": "payouts",
    "invoice": "invoices",
    "intent": "intents",
    "distribution": "distributions",
    "voucher": "distributions",
}
# Kinds anonymous clients get in part: the fields dropped for them.
REDACTED: dict[str, tuple[str, ...]] = {
    "reconciliation": ("results",),
    "asset_pause": ("reason", "resolution"),
}


def principal(request: web.Request) -> Principal:
    return request.get(REQUEST_KEY, ANONYMOUS)


def can_read(who: Principal, area: str | None, public: frozenset[str] | list[str]) -> bool:
    """May `who` read `area` (None: public; 'admin': admin only; else a read area)?"""
    if area is None or who.kind == "admin":
        return True
    return area != "admin" and area in public


def feed_area(kind: str) -> str | None:
    """The area of an SSE message kind (None: public); kinds added later are admin-only until listed."""
    return FEED_AREAS.get(kind, "admin")


def public_areas(app: web.Application) -> frozenset[str]:
    settings = app.get(SETTINGS)
    return frozenset(settings.api.public) if settings is not None else frozenset()


def allowed(request: web.Request, auth: str | None, area: str | None) -> None:
    """Raise the 401/403 a route declared with `auth` (and `area`) gives this request's principal."""
    if auth is None:
        return
    who = principal(request)
    if area is not None and can_read(who, area, public_areas(request.app)):
        return
    if who.kind == "admin":
        return
    if who.kind == "wallet":
        # Issue 27: a wallet reads its own accounts here.
        raise RequestError("Authorization", "this token's scope (wallet) cannot read this; it needs the admin token",
                           status=403, code="forbidden")
    if who.bad_token:
        from .metrics import ADMIN_AUTH_FAILURES  # metrics declares its route: imported late

        ADMIN_AUTH_FAILURES.inc()
        resource = request.match_info.route.resource
        log.warning("api.admin_auth_failed", peer=request.remote,
                    route=resource.canonical if resource is not None else "unmatched")
        raise RequestError("Authorization", "invalid bearer token", status=401, code="unauthorized",
                           headers=CHALLENGE)
    raise RequestError("Authorization", "a bearer token is required", status=401, code="unauthorized",
                       headers=CHALLENGE)


def principal_middleware(admin: Secret | None, wallet_key: Secret | None) -> Callable:
    """Resolve the bearer token once per request; the secrets never leave this closure."""
    # Comparing digests keeps the comparison constant-time regardless of length.
    expected = hashlib.sha256(admin.reveal().encode()).digest() if admin is not None else None

    def resolve(header: str) -> Principal:
        scheme, _, given = header.partition(" ")
        given = given.strip()
        if not header:
            return ANONYMOUS
        if scheme.lower() != "bearer" or not given:
            return Principal("anonymous", bad_token=True)
        raw = given.encode("utf-8", "surrogateescape")
        if expected is not None and hmac.compare_digest(hashlib.sha256(raw).digest(), expected):
            return ADMIN
        if wallet_key is not None:
            claims = verify_token(wallet_key, given)
            if claims is not None and isinstance(claims.get("sub"), str):
                return Principal("wallet", address=claims["sub"], chain=claims.get("chain"))
        return Principal("anonymous", bad_token=True)

    @web.middleware
    async def principal_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[REQUEST_KEY] = resolve(request.headers.get("Authorization", ""))
        return await handler(request)

    return principal_mw
