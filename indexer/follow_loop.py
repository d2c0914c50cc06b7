"""What the EVM and XRPL followers' `run` loops share: pacing and retry handling.

Both followers retry the same transient faults forever with a jittered,
doubling backoff, and report each one the same way (status `retrying`,
`last_error`, the `FOLLOWER_UP` gauge, the `follower.retry` log), so
dashboards and alerts read both chains alike.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Protocol

import asyncpg

from indexer import metrics as m
from indexer.errors import StaleCursor

MAX_BACKOFF = 30.0  # seconds between retries at most


class Follower(Protocol):
    chain: str
    state: str
    last_error: str | None

    def reload_cursor(self) -> None: ...

    async def report_status(self, force: bool = False) -> None: ...


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


def mark_following(follower: Follower) -> None:
    follower.state = "following"
    m.FOLLOWER_UP.labels(follower.chain).set(1)


async def retry_after(follower: Follower, exc: BaseException, stop: asyncio.Event, backoff: float, log: Any) -> float:
    """Record a transient fault, wait out the backoff; return the next backoff."""
    follower.state = "retrying"
    follower.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
    m.FOLLOWER_UP.labels(follower.chain).set(0)
    log.warning("follower.retry", chain=follower.chain, error=follower.last_error, backoff=round(backoff, 2))
    if isinstance(exc, StaleCursor):
        follower.reload_cursor()
    try:
        await follower.report_status(force=True)
    except (asyncpg.PostgresError, OSError):
        pass  # the database may be what failed; the retry itself must go on
    await sleep_or_stop(stop, backoff * random.uniform(0.7, 1.3))
    return min(MAX_BACKOFF, backoff * 2)
