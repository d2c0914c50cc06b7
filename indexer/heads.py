"""New-head notifications over WebSocket (eth_subscribe newHeads).

Only a wake-up signal: the follower still reads heads and logs over its
RPC client, so a flaky socket can delay it by at most one poll interval and
never changes what it indexes.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
import orjson

from config import mask_url
from config.logs import get_logger

log = get_logger("indexer.heads")


class HeadWatcher:
    def __init__(self, url: str, chain: str) -> None:
        self.url = url
        self.chain = chain
        self.connected = False
        self._event = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=f"heads-{self.chain}")

    async def wait(self, stop: asyncio.Event, timeout: float) -> None:
        waiters = {asyncio.create_task(self._event.wait()), asyncio.create_task(stop.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self._event.clear()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        backoff = 1.0
        while True:
            try:
                async with aiohttp.ClientSession() as session, session.ws_connect(self.url, heartbeat=20) as ws:
                    await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}).decode())
                    self.connected = True
                    backoff = 1.0
                    log.info("heads.subscribed", chain=self.chain, endpoint=mask_url(self.url))
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        if '"eth_subscription"' in msg.data:
                            self._event.set()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                log.warning("heads.disconnected", chain=self.chain, endpoint=mask_url(self.url), error=str(exc)[:200])
            self.connected = False
            await asyncio.sleep(backoff * random.uniform(0.7, 1.3))
            backoff = min(30.0, backoff * 2)
