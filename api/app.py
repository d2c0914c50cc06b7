"""`make_app`: the aiohttp application, given settings and a pool.

Handlers only read, except the admin routes, which exist only when an
admin token is configured. Private reads are always served and refuse
a request without the right token (api/scopes.py). Tests call this factory directly.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp import web

from config import Secret, Settings, resolve_secret

from . import (
    adjust_routes,
    admin_deliveries,
    admin_intents,
    admin_replay,
    admin_routes,
    auth_routes,
    distribution_routes,
    factory_routes,
    feed,
    invoice_routes,
    ledger_routes,
    metrics,
    openapi,
    read_routes,
    settlement_routes,
    wallet_routes,
    ws,
)
from .middleware import (
    CorsPolicy,
    RateLimiter,
    error_middleware,
    metrics_middleware,
)
from .routing import Routes
from .scopes import principal_middleware
from .state import ADMIN_ACTOR, CLIENT_KEY, POOL, SETTINGS, BoundedPool

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


page = Routes("ops", auth=None)
# The wallet example (issue 27): sign in, balance, history, withdraw, live account channel.
example = Routes("ops", auth=None)


def _file(url: str, name: str, content_type: str, summary: str, table: Routes = page) -> None:
    path = STATIC / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    handler.__name__ = "page_" + name.replace(".", "_").replace("/", "_")
    media = content_type.split(";")[0]
    table.get(url, summary=summary, response={"description": name, "content": {media: {"schema": {"type": "string"}}}})(
        handler)


_file("/", "index.html", "text/html; charset=utf-8", "The status page")
_file("/static/app.js", "app.js", "text/javascript; charset=utf-8", "Status page script")
_file("/static/style.css", "style.css", "text/css; charset=utf-8", "Status page style")
_file("/example/", "example/index.html", "text/html; charset=utf-8", "The wallet example page", example)
_file("/example/example.js", "example/example.js", "text/javascript; charset=utf-8", "Wallet example script", example)


def make_app(settings: Settings, pool: asyncpg.Pool) -> web.Application:
    """Build the app; raises SecretError (naming api.admin_token) if the token cannot be resolved."""
    api = settings.api
    token = admin_secret(settings)
    cors = CorsPolicy(api.cors_origins)
    limiter = RateLimiter(api.rate_limit_per_second, api.rate_limit_burst, api.trusted_proxies,
                          max_inflight=api.max_inflight_per_client)
    signin_keys = auth_routes.token_keys(settings) if settings.invoices.signin is not None else None
    principals = principal_middleware(token, signin_keys)
    middlewares = [metrics_middleware, cors.middleware(), error_middleware, limiter.middleware(), principals]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[ws.RESOLVE] = principals.resolve  # the WebSocket's token, sent in its subscribe message
    app[CLIENT_KEY] = limiter.client_key  # the stream slots count per client as the limiter does
    app[POOL] = BoundedPool(pool, api.acquire_timeout)
    app[openapi.SPEC] = {}
    app.on_response_prepare.append(cors.on_prepare)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(feed.feed_context)
    app.cleanup_ctx.append(ws.ws_feed_context)
    app.on_shutdown.append(feed.close_streams)
    app.on_shutdown.append(ws.close_ws)

    app.add_routes(read_routes.probes)
    app.add_routes(read_routes.routes)
    app.add_routes(factory_routes.routes)
    app.add_routes(feed.routes)
    app.add_routes(ws.routes)
    app.add_routes(settlement_routes.routes)
    app.add_routes(invoice_routes.routes)
    if signin_keys is not None:  # an unresolvable key failed above, naming the field
        app.add_routes(auth_routes.routes)
    app.add_routes(admin_deliveries.public_routes)
    app.add_routes(admin_intents.read_routes)
    app.add_routes(openapi.routes)
    app.add_routes(metrics.routes)
    ledger_routes.register(app, admin=token is not None)
    distribution_routes.register(app, admin=token is not None)
    wallet_routes.register(app, admin=token is not None, wallet=signin_keys is not None)
    if token is not None:
        app[ADMIN_ACTOR] = admin_routes.admin_actor(token)
        app.add_routes(admin_routes.routes)
        app.add_routes(admin_replay.routes)
        app.add_routes(invoice_routes.admin_routes)
        app.add_routes(admin_deliveries.routes)
        app.add_routes(admin_intents.routes)
        app.add_routes(adjust_routes.routes)
    if api.status_page:
        app.add_routes(page)
        if signin_keys is not None:
            app.add_routes(example)
    return app
