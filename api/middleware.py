"""Request pipeline: metrics, CORS, JSON errors, per-client rate limit (the token: api/scopes.py).

Order matters (the first listed wraps the rest): metrics see the final
status of every request; CORS answers preflights before anything else;
the error middleware turns every failure below it into a JSON body, so
the rate limiter and the admin check just raise.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
from aiohttp import web

from config.logs import get_logger

from . import metrics as m
from .http import RequestError, error_body, json_response

log = get_logger("api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Probes and scrapes come from a few fixed peers; limiting them would turn
# a busy API into a failing health check.
UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
STREAM_PATHS = frozenset({"/v1/stream", "/v1/ws"})
ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"


def route_label(request: web.Request) -> str:
    """The route template, not the raw path: bounded label cardinality."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return "unmatched"
    return info.route.resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away first (nginx's code for it)
        raise
    finally:
        route = route_label(request)
        m.REQUESTS.labels(route, request.method, str(status)).inc()
        m.LATENCY.labels(route).observe(time.perf_counter() - started)


def _slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "error"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes a JSON body; nothing a client sends yields a bare 500."""
    try:
        return await handler(request)
    except RequestError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # Keep what the status needs (Allow on 405), drop the text body's headers.
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        default_text = f"{exc.status}: {exc.reason}"
        message = exc.text if exc.text and exc.text != default_text else exc.reason
        return json_response(error_body(exc.status, _slug(exc.reason), message), status=exc.status, headers=headers)
    except asyncio.CancelledError:
        raise
    except asyncpg.QueryCanceledError:
        log.warning("api.db_timeout", route=route_label(request))
        return json_response(error_body(503, "database_timeout", "the database did not answer in time"), status=503)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError) as exc:
        log.warning("api.db_unavailable", route=route_label(request), error=exc.__class__.__name__)
        return json_response(error_body(503, "database_unavailable", "the database is not reachable"), status=503)
    except Exception as exc:
        # A bug, not bad input: log it with its traceback and say nothing more.
        log.exception("api.unhandled_error", route=route_label(request), method=request.method, error=exc.__class__.__name__)
        return json_response(error_body(500, "internal_error", "internal error; see the server log"), status=500)


class CorsPolicy:
    """An allowlist of origins; '*' allows any."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)
        self.any = "*" in self.origins

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin in self.origins)

    def middleware(self) -> Callable:
        @web.middleware
        async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
                if not self.allows(origin):
                    body = error_body(403, "origin_not_allowed", "Origin: not in api.cors_origins", "Origin")
                    return json_response(body, status=403)
                return web.Response(status=204, headers={
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": "600",
                })
            return await handler(request)

        return cors_middleware

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        # A signal rather than a middleware: streamed responses (SSE) send
        # their headers before any middleware sees them.
        origin = request.headers.get("Origin")
        if not self.origins:
            return
        response.headers.add("Vary", "Origin")
        if self.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = "*" if self.any else origin  # type: ignore[assignment]
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"


def client_prefix(addr: str) -> str:
    """The rate-limit key of a client address: an IPv6 client owns at least a
    /64 (one host picks any of 2**64 addresses), so it is keyed on its /64;
    IPv4 (and IPv4-mapped IPv6) on the address."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class RateLimiter:
    """Token bucket per client: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, trusted_proxies: Iterable[str] = (), max_clients: int = 50_000,
                 max_inflight: int | None = None) -> None:
        self.max_inflight = max_inflight
        self._inflight: dict[str, int] = {}
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> float:
        """Spend one token; return 0 when allowed, else seconds until one is available."""
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full = [k for k, (t, s) in self._buckets.items() if t + (now - s) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]

    def _is_trusted(self, addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def client_key(self, request: web.Request) -> str:
        return client_prefix(self._client(request))

    def _client(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        if not self.trusted or not self._is_trusted(peer):
            return peer
        # The nearest address a trusted proxy did not add is the client.
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop[:64]
        return peer

    def middleware(self) -> Callable:
        @web.middleware
        async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in UNLIMITED_PATHS:
                return await handler(request)
            key = self.client_key(request)
            wait = self.take(key, time.monotonic())
            if wait > 0:
                m.RATE_LIMITED.inc()
                raise RequestError(
                    None, "rate limit exceeded; retry later", status=429, code="rate_limited",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
            # [integrity] requests of one client running at once, counted before
            # any handler takes a database connection (a stream is long-lived: it
            # counts against the client's stream slots instead, api/feed.py).
            if self.max_inflight is None or request.path in STREAM_PATHS:
                return await handler(request)
            running = self._inflight.get(key, 0)
            if running >= self.max_inflight:
                m.RATE_LIMITED.inc()
                raise RequestError(
                    None, f"too many requests in flight from this client (at most {self.max_inflight}); retry later",
                    status=429, code="too_many_in_flight", headers={"Retry-After": "1"},
                )
            self._inflight[key] = running + 1
            try:
                return await handler(request)
            finally:
                left = self._inflight[key] - 1
                if left:
                    self._inflight[key] = left
                else:
                    del self._inflight[key]

        return rate_limit_middleware

