"""The delivery relay as a task of `chainsettle run`: one leader across processes.

Fan-out moves each subscription's cursor under a row lock, so two relays
would not duplicate messages, but two senders would send each message
twice as often; one relay per database is the plan, standby processes wait.
"""

from __future__ import annotations

import asyncio

import asyncpg

from config import Settings
from delivery.relay import run_relay

from .leader import chain_leadership

# Not a valid chain name (':'), so its advisory lock never meets a follower's.
LOCK_NAME = "relay:delivery"


async def run_delivery_relay(settings: Settings, pool: asyncpg.Pool, url: str, stop: asyncio.Event) -> None:
    async with chain_leadership(url, LOCK_NAME, stop) as leading:
        if leading:
            await run_relay(settings, pool, url, stop)
