"""Read scopes: who is asking (a `Principal`, resolved once per request) and what they may read.

Three kinds of principal: `anonymous` (no token, or one nobody issued),
`admin` (`Authorization: Bearer <api.admin_token>`) and `wallet` (a token
`POST /v1/auth/verify` signed, for one address on one chain). Every
declared route (api/routing.py) names who may read it:

- `auth=None`: anyone (status, chain events, the stream, probes, sign-in);
- `auth="admin"`: the admin token; with `area=` (accounts, payouts, ...)
  also anyone when the operator lists the area in `[api] public`;
- `auth="wallet"`: a wallet access token whose session is still open
  (checked in Postgres: a logout or a reused refresh token ends it at once,
  on every replica). These routes (`/v1/me/...`) take no account from the
  request: they read `user:<chain>:<address>` of the token, so a token
  never reads another account. The admin token gets 403 there (it has no
  account of its own).

The feeds (SSE, WebSocket) ask `feed_area` which messages a connection
may see. Answers: 401 without a usable token, 403 when the token's scope
is not enough. README "Read scopes" has the table.
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
from settlement.signin.sessions import session_live
from settlement.signin.tokens import verify_token

from .http import RequestError
from .state import POOL, SETTINGS

log = get_logger("api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="chainsettle"'}


@dataclass(frozen=True)
class Principal:
    kind: Literal["anonymous", "admin", "wallet"]
    address: str | None = None  # wallet: the signed-in address (EVM lowercase)
    chain: str | None = None  # wallet: the chain it signed in on
    session: str | None = None  # wallet: the session (refresh family) the token belongs to
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
    "balance": "accounts",  # an account's balance changed by a transfer or a hold (0025)
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


def user_account(who: Principal) -> str:
    """The ledger account a wallet principal owns: `user:<chain>:<address>` (EVM lowercase)."""
    assert who.kind == "wallet" and who.address is not None and who.chain is not None
    return f"user:{who.chain}:{who.address}"


def _unauthorized(request: web.Request, who: Principal) -> RequestError:
    if who.bad_token:
        from .metrics import ADMIN_AUTH_FAILURES  # metrics declares its route: imported late

        ADMIN_AUTH_FAILURES.inc()
        resource = request.match_info.route.resource
        log.warning("api.admin_auth_failed", peer=request.remote,
                    route=resource.canonical if resource is not None else "unmatched")
        return unauthorized("invalid bearer token")
    return unauthorized("a bearer token is required")


def unauthorized(message: str) -> RequestError:
    return RequestError("Authorization", message, status=401, code="unauthorized", headers=CHALLENGE)


def forbidden(message: str) -> RequestError:
    return RequestError("Authorization", message, status=403, code="forbidden")


async def require_session(request: web.Request) -> Principal:
    """The wallet principal of a `auth="wallet"` route, its session checked open in Postgres (else 401)."""
    who = principal(request)
    if who.session is None:
        raise unauthorized("this token has no session; sign in again")
    async with request.app[POOL].acquire() as conn:
        if not await session_live(conn, who.session):
            raise unauthorized("the session was revoked or has expired; sign in again")
    return who


def allowed(request: web.Request, auth: str | None, area: str | None) -> None:
    """Raise the 401/403 a route declared with `auth` (and `area`) gives this request's principal."""
    if auth is None:
        return
    who = principal(request)
    if auth == "wallet":
        if who.kind == "wallet":
            return
        if who.kind == "admin":
            raise forbidden("this route reads the signed-in wallet's own account; the admin token has none "
                            "(read /v1/accounts/{id}/... instead)")
        raise _unauthorized(request, who)
    if area is not None and can_read(who, area, public_areas(request.app)):
        return
    if who.kind == "admin":
        return
    if who.kind == "wallet":
        # A wallet reads its own account under /v1/me/..., never through these routes.
        raise forbidden("this token's scope (wallet) cannot read this; it needs the admin token "
                        "(a wallet reads its own account under /v1/me)")
    raise _unauthorized(request, who)


def principal_middleware(admin: Secret | None, wallet_keys: list[Secret] | None) -> Callable:
    """Resolve the bearer token once per request; the secrets never leave this closure.

    `resolve` is also what the WebSocket feed uses for a token sent in its first message."""
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
        if wallet_keys:
            claims = verify_token(wallet_keys, given)
            if (claims is not None and isinstance(claims.get("sub"), str) and isinstance(claims.get("chain"), str)
                    and claims.get("typ", "access") == "access"):
                sid = claims.get("sid")
                return Principal("wallet", address=claims["sub"], chain=claims["chain"],
                                 session=sid if isinstance(sid, str) else None)
        return Principal("anonymous", bad_token=True)

    @web.middleware
    async def principal_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[REQUEST_KEY] = resolve(request.headers.get("Authorization", ""))
        return await handler(request)

    principal_mw.resolve = resolve  # type: ignore[attr-defined]  # the WebSocket feed's token in its first message
    return principal_mw
