"""`make_app`: the aiohttp application, given settings and a pool.

Handlers only read, except the admin routes, which exist only when an
admin token is configured. Tests call this factory directly.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp import web

from config import Secret, Settings, resolve_secret

from . import (
    admin_deliveries,
    admin_intents,
    admin_replay,
    admin_routes,
    auth_routes,
    factory_routes,
    feed,
    invoice_routes,
    read_routes,
    settlement_routes,
)
from .metrics import metrics_handler
from .middleware import (
    CorsPolicy,
    RateLimiter,
    admin_auth,
    error_middleware,
    metrics_middleware,
)
from .openapi import OPENAPI, build_spec, openapi_handler
from .state import ADMIN_ACTOR, POOL, SETTINGS, BoundedPool

STATIC = Path(__file__).with_name("static")
# Admin bodies are a few hundred bytes; nothing else reads a body.
MAX_BODY = 64 * 1024
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def admin_secret(settings: Settings) -> Secret | None:
    ref = settings.api.admin_token
    return resolve_secret(ref, "api.admin_token") if ref else None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)


def _file(name: str, content_type: str):
    path = STATIC / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    return handler


def make_app(settings: Settings, pool: asyncpg.Pool) -> web.Application:
    """Build the app; raises SecretError (naming api.admin_token) if the token cannot be resolved."""
    api = settings.api
    token = admin_secret(settings)
    cors = CorsPolicy(api.cors_origins)
    limiter = RateLimiter(api.rate_limit_per_second, api.rate_limit_burst, api.trusted_proxies,
                          max_inflight=api.max_inflight_per_client)
    middlewares = [metrics_middleware, cors.middleware(), error_middleware, limiter.middleware()]
    if token is not None:
        middlewares.append(admin_auth(token))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[POOL] = BoundedPool(pool, api.acquire_timeout)
    app[OPENAPI] = build_spec(api, admin=token is not None, chains=[c.name for c in settings.chains],
                              payouts={pc.chain: [a.name for a in pc.assets] for pc in settings.payouts.chains},
                              signin=settings.invoices.signin is not None)
    app.on_response_prepare.append(cors.on_prepare)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(feed.feed_context)
    app.on_shutdown.append(feed.close_streams)

    app.add_routes(read_routes.routes)
    app.add_routes(factory_routes.routes)
    app.add_routes(feed.routes)
    app.add_routes(settlement_routes.routes)
    app.add_routes(invoice_routes.routes)
    if settings.invoices.signin is not None:
        auth_routes.token_key(settings)  # an unresolvable key fails at start, naming the field
        app.add_routes(auth_routes.routes)
    app.add_routes(admin_deliveries.public_routes)
    app.add_routes(admin_intents.read_routes)
    app.router.add_get("/openapi.json", openapi_handler)
    app.router.add_get("/metrics", metrics_handler)
    if token is not None:
        app[ADMIN_ACTOR] = admin_routes.admin_actor(token)
        app.add_routes(admin_routes.routes)
        app.add_routes(admin_replay.routes)
        app.add_routes(invoice_routes.admin_routes)
        app.add_routes(admin_deliveries.routes)
        app.add_routes(admin_intents.routes)
    if api.status_page:
        app.router.add_get("/", _file("index.html", "text/html; charset=utf-8"))
        app.router.add_get("/static/app.js", _file("app.js", "text/javascript; charset=utf-8"))
        app.router.add_get("/static/style.css", _file("style.css", "text/css; charset=utf-8"))
    return app
