"""A webhook receiver on loopback (aiohttp), scriptable: fail, hang, 429, recover.

It records every request as received (raw body and headers) and verifies
nothing itself: tests check signatures with the `standardwebhooks` library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    msg_id: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int


@dataclass
class Receiver:
    # behaviour(n, msg_id) -> (status, headers, delay seconds); n counts all requests from 0
    behaviour: Callable[[int, str], tuple[int, dict[str, str], float]] = lambda n, msg_id: (200, {}, 0.0)
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)  # answered 2xx, in arrival order
    url: str = ""
    _runner: web.AppRunner | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        n = len(self.requests)
        status, headers, delay = self.behaviour(n, msg_id)
        rec = Received(msg_id, dict(request.headers), body, time.time(), status)
        self.requests.append(rec)
        if delay:
            await asyncio.sleep(delay)
        if 200 <= status < 300:
            self.accepted.append(rec)
        self.arrived.set()
        return web.Response(status=status, headers=headers, text=f"answer {status}")

    async def start(self, path: str = "/hook") -> "Receiver":
        app = web.Application()
        app.router.add_post(path, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{path}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def first_seen(self) -> list[str]:
        """Accepted message ids, first time each (what a deduplicating receiver applies), in order."""
        seen: set[str] = set()
        out = []
        for r in self.accepted:
            if r.msg_id not in seen:
                seen.add(r.msg_id)
                out.append(r.msg_id)
        return out

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"receiver: condition not met in {timeout}s; {len(self.requests)} requests, "
                                     f"{len(self.first_seen())} distinct accepted")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.1)
            except asyncio.TimeoutError:
                pass
