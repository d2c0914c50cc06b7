"""Typed application state shared by the handler modules."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from aiohttp import web

from config import Settings


class BoundedPool:
    """The pool as handlers see it: `acquire()` waits at most `timeout` seconds.

    A request that cannot get a connection in time gets a 503 (the error
    middleware maps the TimeoutError) instead of queueing behind others;
    everything else is the asyncpg pool's own.
    """

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool = pool
        self.timeout = timeout

    def acquire(self, *, timeout: float | None = None):
        return self._pool.acquire(timeout=timeout if timeout is not None else self.timeout)

    def __getattr__(self, name: str):
        return getattr(self._pool, name)


SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", BoundedPool)
# The actor admin writes record: a label of the token, never the token.
ADMIN_ACTOR = web.AppKey("admin_actor", str)
# The rate limiter's client key of a request (stream slots are counted per client).
CLIENT_KEY = web.AppKey("client_key", Callable[[web.Request], str])
