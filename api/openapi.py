"""`/openapi.json`: assembled from the declarations of the routes the app serves.

Nothing is described here: `api/routing.py` builds each operation from its
route's declaration, this module only supplies what the configuration
decides (the configured chains, payout assets, page size) and caches the
document, built on its first request.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from config import Settings

from .middleware import UNLIMITED_PATHS
from .routing import JSON, Routes, build_spec, registered
from .state import SETTINGS

routes = Routes("ops", auth=None)
SPEC = web.AppKey("openapi", dict)  # {"body": bytes} once built


def runtime_values(settings: Settings) -> dict[str, dict[str, Any] | None]:
    """What the `Runtime(key)` markers of the declarations become under these settings."""
    chains = [c.name for c in settings.chains]
    payouts = {pc.chain: [a.name for a in pc.assets] for pc in settings.payouts.chains}
    return {
        "chains": {"enum": chains} if chains else None,
        "payout_chains": {"enum": sorted(payouts)} if payouts else None,
        "payout_assets": {"enum": sorted({a for names in payouts.values() for a in names})} if payouts else None,
        "page_size": {"maximum": settings.api.max_page_size},
    }


def document(app: web.Application, settings: Settings) -> dict[str, Any]:
    return build_spec(registered(app), runtime=runtime_values(settings), unlimited=UNLIMITED_PATHS,
                      title="chainsettle",
                      description="Read API over indexed chain events, the ledger, payouts and reconciliation; "
                                  "the admin API when a token is configured. Routes with `security` need "
                                  "a bearer token (README: Read scopes).",
                      public=frozenset(settings.api.public))


@routes.get("/openapi.json", response={"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}})
async def openapi(request: web.Request) -> web.Response:
    """This document"""
    cache = request.app[SPEC]
    if "body" not in cache:
        # json, not orjson: the amount bounds (2**256 - 1) exceed 64 bits.
        cache["body"] = json.dumps(document(request.app, request.app[SETTINGS])).encode()
    return web.Response(body=cache["body"], content_type="application/json")
