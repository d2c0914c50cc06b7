"""Prometheus metrics of the API itself, and the /metrics exposition.

/metrics serves the process's default registry: the followers' gauges
(indexer/metrics.py) when the API runs inside `chainsettle run`, plus these.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from .routing import Routes

REQUESTS = Counter("chainsettle_api_requests_total", "API requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "chainsettle_api_request_seconds", "API request handling time", ["route"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
RATE_LIMITED = Counter("chainsettle_api_rate_limited_total", "Requests refused by the per-client rate limit")
ADMIN_AUTH_FAILURES = Counter("chainsettle_api_admin_auth_failures_total", "Admin requests with a wrong bearer token")
SSE_CLIENTS = Gauge("chainsettle_api_sse_clients", "Connected /v1/stream clients")
SSE_SENT = Counter("chainsettle_api_sse_events_total", "Events written to /v1/stream clients")
SSE_DROPPED = Counter("chainsettle_api_sse_dropped_clients_total", "Stream clients cut off because they fell behind")
WS_CLIENTS = Gauge("chainsettle_api_ws_clients", "Connected /v1/ws clients")
WS_SENT = Counter("chainsettle_api_ws_messages_total", "Messages written to /v1/ws clients", ["channel"])
WS_DROPPED = Counter("chainsettle_api_ws_dropped_clients_total", "WebSocket clients cut off because they fell behind")
FEED_POLL_ERRORS = Counter("chainsettle_api_feed_poll_errors_total", "Failed polls of the event feed")
routes = Routes("ops", auth=None)


@routes.get("/metrics", response={"description": "Exposition format", "content": {
    "text/plain": {"schema": {"type": "string"}}, "application/openmetrics-text": {"schema": {"type": "string"}}}})
async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus metrics"""
    # The library negotiates text 0.0.4 or OpenMetrics from the Accept header.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(REGISTRY), headers={"Content-Type": content_type})
