"""Typed application state shared by the handler modules."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from config import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# The actor admin writes record: a label of the token, never the token.
ADMIN_ACTOR = web.AppKey("admin_actor", str)
