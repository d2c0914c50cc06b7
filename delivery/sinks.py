"""Sinks: a Standard Webhooks endpoint, a Redis stream. Each send is one attempt.

A sink never touches Postgres: the relay reads what to send, closes its
connection, calls `send`, then records the `Outcome` in a short transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from standardwebhooks.webhooks import Webhook

from config.section_deliveries import DeliverySettings

from .ssrf import GuardedResolver, TargetRefused, check_url

USER_AGENT = "chainsettle-webhooks/1"


@dataclass(frozen=True)
class Outgoing:
    seq: int
    msg_id: str
    body: bytes
    generation: int


@dataclass(frozen=True)
class Outcome:
    outcome: str              # ok | http_error | timeout | network | refused | gone
    latency_ms: float
    status_code: int | None = None
    response_head: str | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class Sink(Protocol):
    async def send(self, msg: Outgoing) -> Outcome: ...

    async def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def sign(secrets: list[str], msg_id: str, at: dt.datetime, body: bytes) -> str:
    """The webhook-signature header: one `v1,<base64>` per active secret, space-separated (the spec's rotation)."""
    text = body.decode()
    return " ".join(Webhook(s).sign(msg_id, at, text) for s in secrets)


class WebhookSink:
    """POST the stored bytes with Standard Webhooks headers; no redirects, one timeout per attempt."""

    def __init__(self, url: str, secrets: list[str], settings: DeliverySettings) -> None:
        self.url = url
        self.secrets = secrets
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.settings), limit=64,
                                             use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        return self._session

    async def send(self, msg: Outgoing) -> Outcome:
        started = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            check_url(self.url, self.settings)
        except TargetRefused as exc:
            return Outcome("refused", took(), error=f"url: {exc}")
        if not self.secrets:
            return Outcome("refused", took(), error="no active signing secret")
        now = dt.datetime.now(dt.timezone.utc)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg.msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(self.secrets, msg.msg_id, now, msg.body),
        }
        try:
            async with self._client().post(self.url, data=msg.body, headers=headers, allow_redirects=False) as resp:
                head = await resp.content.read(self.settings.response_bytes) if self.settings.response_bytes else b""
                text = head.decode("utf-8", "replace")
                if 200 <= resp.status < 300:
                    return Outcome("ok", took(), resp.status, text)
                if resp.status == 410:
                    return Outcome("gone", took(), resp.status, text, "endpoint answered 410 Gone")
                return Outcome("http_error", took(), resp.status, text, f"HTTP {resp.status}",
                               parse_retry_after(resp.headers.get("Retry-After")))
        except asyncio.TimeoutError:
            return Outcome("timeout", took(), error=f"no answer within {self.settings.timeout}s")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome("network", took(), error=f"{exc.__class__.__name__}: {exc}"[:300])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# Idempotent XADD. Redis has no "add once per id" for streams (XADD's
# explicit ids must grow, which a redelivery cannot honour), so this is
# hand-written: a marker key per (stream, message id, generation), set in
# the same atomic script as the XADD. A relay killed after the XADD and
# before it recorded success sends again; the marker answers with the
# entry already added, and the stream holds the message once.
_XADD_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return {0, existing} end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                         'id', ARGV[2], 'type', ARGV[3], 'body', ARGV[4])
redis.call('SET', KEYS[2], entry, 'EX', ARGV[5])
return {1, entry}
"""


class RedisSink:
    def __init__(self, url: str, stream: str, settings: DeliverySettings) -> None:
        self.stream = stream
        self.settings = settings
        self.client = aioredis.from_url(url, socket_timeout=settings.timeout, socket_connect_timeout=settings.timeout)
        self.script = self.client.register_script(_XADD_ONCE)

    async def send(self, msg: Outgoing, msg_type: str = "") -> Outcome:
        started = time.perf_counter()
        marker = f"{self.stream}:delivered:{msg.msg_id}:{msg.generation}"
        try:
            added, entry = await self.script(
                keys=[self.stream, marker],
                args=[self.settings.redis_maxlen, msg.msg_id, msg_type, msg.body, self.settings.redis_dedupe_ttl])
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            return Outcome("network", (time.perf_counter() - started) * 1000, error=f"{exc.__class__.__name__}: {exc}"[:300])
        entry = entry.decode() if isinstance(entry, bytes) else str(entry)
        return Outcome("ok", (time.perf_counter() - started) * 1000, None,
                       f"{'added' if added else 'already added'} {entry}")

    async def close(self) -> None:
        await self.client.aclose()
