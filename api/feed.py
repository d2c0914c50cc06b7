"""The live feed: one Postgres poller per process, fanned out to SSE clients.

Two sources share one order: events (`chain_event` messages) and the
outbox of payout, batch, reconciliation, pause and kill-switch changes
(db/migrations/0007_admin.sql). Both carry the inserting transaction's id,
so a position is (transaction, source, row id) with events before outbox
rows of the same transaction, and every read stops at one horizon: the
oldest transaction still running. Its `id:` text is `tx.id` for an event
and `tx.oN` for outbox row N.

A client that reconnects with Last-Event-ID first catches up from the
database, then switches to the shared live queue; every message is sent
only if its position is past the last one sent, so the switch-over neither
skips nor repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import re
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import asyncpg
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field

from config.logs import get_logger
from config.section_api import ApiSettings
from db import Queries, side_connection

from . import metrics as m
from .http import MAX_BIGINT, RequestError, dumps
from .routing import ChainName, Routes, Text
from .scopes import REDACTED, Principal, can_read, feed_area, principal, public_areas
from .state import CLIENT_KEY, POOL, SETTINGS

log = get_logger("api.feed")
Q = Queries(Path(__file__).with_name("queries.sql"))
EVENT, OUTBOX = 0, 1
Position = tuple[int, int, int]  # (transaction id, EVENT | OUTBOX, row id)
POSITION_PATTERN = r"^[0-9]{1,20}\.o?[0-9]{1,19}$"
_POSITION = re.compile(r"^([0-9]{1,20})\.(o?)([0-9]{1,19})$")
DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# NOTIFY'd at commit by the events insert and feed_outbox triggers (0010):
# the feed polls on it at once instead of waiting out its poll interval.
CHANNEL = "chainsettle_delivery"
POLL_BATCH = 1000
CATCH_UP_BATCH = 500
QUEUE_LIMIT = 5000
READY_WAIT = 5.0
routes = Routes("public", auth=None)  # filtered per connection by scope


def format_position(pos: Position) -> str:
    return f"{pos[0]}.{'o' if pos[1] == OUTBOX else ''}{pos[2]}"


def parse_position(field: str, raw: str) -> Position:
    match = _POSITION.fullmatch(raw.strip())
    if not match or int(match.group(1)) >= 2**64 or int(match.group(3)) >= 2**63:
        raise RequestError(field, "must be a position as sent in the stream's id: field, e.g. 7351.1042 or 7351.o12")
    return int(match.group(1)), OUTBOX if match.group(2) else EVENT, int(match.group(3))


@dataclass(frozen=True)
class Item:
    position: Position
    chain: str | None  # None: concerns every chain (a global kill switch)
    message: bytes
    area: str | None = None  # who may read it (api/scopes.py): None is public
    redacted: bytes | None = None  # what a connection that cannot read `area` gets instead, if anything

    def for_reader(self, who: Principal, public: frozenset[str]) -> bytes | None:
        return self.message if can_read(who, self.area, public) else self.redacted


def _message(pos: Position, name: str, data: object) -> bytes:
    return b"id: " + format_position(pos).encode() + b"\nevent: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def event_item(row: asyncpg.Record) -> Item:
    pos = (int(row["tx"]), EVENT, row["id"])
    data = {k: v for k, v in row.items() if k != "tx"}
    return Item(pos, row["chain"], _message(pos, "chain_event", data))


def outbox_item(row: asyncpg.Record) -> Item:
    pos = (int(row["tx"]), OUTBOX, row["id"])
    kind, payload = row["kind"], row["payload"]
    redacted = None
    if kind in REDACTED and isinstance(payload, dict):
        dropped = REDACTED[kind]
        redacted = _message(pos, kind, {k: v for k, v in payload.items() if k not in dropped})
    return Item(pos, row["chain"], _message(pos, kind, payload), feed_area(kind), redacted)


def _bounds(pos: Position) -> tuple[tuple[str, int], tuple[str, int]]:
    """Where each source resumes: an outbox position is past all events of its transaction."""
    tx, source, row = pos
    events_after = (str(tx), row if source == EVENT else MAX_BIGINT)
    outbox_after = (str(tx), row if source == OUTBOX else 0)
    return events_after, outbox_after


class Subscriber:
    """One client's bounded queue; a client that falls behind is cut off, not waited for."""

    def __init__(self, start: Position, limit: int = QUEUE_LIMIT) -> None:
        self.start = start
        self.limit = limit
        self.items: deque[Item] = deque()
        self.closed = False
        self.dropped = False
        self._wake = asyncio.Event()

    def offer(self, item: Item) -> None:
        if len(self.items) >= self.limit:
            self.dropped = True
        else:
            self.items.append(item)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def take(self, timeout: float) -> list[Item]:
        """Everything queued, or [] after `timeout` seconds of nothing."""
        if not self.items and not (self.closed or self.dropped):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        out = list(self.items)
        self.items.clear()
        return out


class Feed:
    def __init__(self, pool: asyncpg.Pool, poll_interval: float) -> None:
        self.pool = pool
        self.poll_interval = poll_interval
        self.position: Position | None = None
        self.ready = asyncio.Event()
        self.subscribers: set[Subscriber] = set()
        self.clients: Counter[str] = Counter()  # open streams per client key
        self._closing = asyncio.Event()
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    def _notified(self, *_args) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        """Wake on commits of events and outbox rows; the poll interval stays the safety net."""
        if self._listener is not None and not self._listener.is_closed():
            return
        with contextlib.suppress(*DB_ERRORS):
            conn = await side_connection(self.pool)
            try:
                await conn.add_listener(CHANNEL, self._notified)
            except DB_ERRORS:
                await conn.close()
                return
            self._listener = conn

    async def read(self, conn: asyncpg.Connection, pos: Position, horizon: str, limit: int) -> list[Item]:
        """The sources of this feed: events and the outbox (the WebSocket feed, api/ws.py, reads four)."""
        (etx, eid), (otx, oid) = _bounds(pos)
        events = [event_item(r) for r in await conn.fetch(Q.feed_events_after, etx, eid, horizon, limit)]
        outbox = [outbox_item(r) for r in await conn.fetch(Q.feed_outbox_after, otx, oid, horizon, limit)]
        # A full page of one source is complete only up to its last row; the
        # first `limit` of the merge never pass it, as that page alone fills them.
        merged = heapq.merge(events, outbox, key=lambda item: item.position)
        return list(itertools.islice(merged, limit))

    async def fetch_after(self, pos: Position, limit: int) -> list[Item]:
        """Up to `limit` items after `pos` in feed order, complete up to the last one returned."""
        async with self.pool.acquire() as conn:
            # One horizon for every source: with two, a transaction finishing in
            # between could show its outbox rows before its events.
            horizon = await conn.fetchval(Q.feed_horizon)
            return await self.read(conn, pos, horizon, limit)

    async def poll_once(self) -> int:
        if self.position is None:
            async with self.pool.acquire() as conn:
                self.position = (int(await conn.fetchval(Q.feed_horizon)), EVENT, 0)
            self.ready.set()
        published = 0
        while True:
            items = await self.fetch_after(self.position, POLL_BATCH)
            for item in items:
                for sub in self.subscribers:
                    sub.offer(item)
                self.position = item.position
            published += len(items)
            if len(items) < POLL_BATCH:
                return published

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self._listener is not None:
                self._listener.terminate()  # no await: this also runs when the task is cancelled

    async def _run(self) -> None:
        failing = False
        while not self._closing.is_set():
            await self._listen()
            # Cleared before the read: a commit notified during it polls again.
            self._wake.clear()
            try:
                await self.poll_once()
                if failing:
                    log.info("api.feed_recovered")
                failing = False
            except DB_ERRORS as exc:
                m.FEED_POLL_ERRORS.inc()
                if not failing:
                    log.warning("api.feed_poll_failed", error=f"{exc.__class__.__name__}: {exc}")
                failing = True
            waits = [asyncio.ensure_future(self._closing.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    clients_gauge = m.SSE_CLIENTS

    def subscribe(self, limit: int = QUEUE_LIMIT) -> Subscriber:
        assert self.position is not None, "subscribe after the feed is ready"
        sub = Subscriber(self.position, limit)
        self.subscribers.add(sub)
        self.clients_gauge.set(len(self.subscribers))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self.clients_gauge.set(len(self.subscribers))

    def close(self) -> None:
        self._closing.set()
        for sub in self.subscribers:
            sub.close()

    async def catch_up(self, after: Position, until: Position) -> AsyncIterator[list[Item]]:
        """Stored items after `after`, a page at a time, until the live queue takes over at `until`."""
        pos = after
        while pos < until:
            items = await self.fetch_after(pos, CATCH_UP_BATCH)
            if items:
                yield items
            if len(items) < CATCH_UP_BATCH:
                return
            pos = items[-1].position

    async def follow(self, sub: Subscriber, resume: Position | None, heartbeat: float) -> AsyncIterator[list[Item]]:
        """What one connection sends, shared by SSE and WebSocket: the stored items after `resume`
        (catch-up), then the live queue, each item once and in order: an item is passed on only if
        its position is past the last one passed, so the switch-over neither skips nor repeats.
        An empty list is a heartbeat tick (nothing for `heartbeat` seconds). Ends when the
        subscription is closed or dropped (`sub.dropped`: the client fell too far behind)."""
        last = sub.start
        if resume is not None:
            last = resume
            async for page in self.catch_up(resume, sub.start):
                last = page[-1].position
                yield page
        while not (sub.closed or sub.dropped):
            items = await sub.take(heartbeat)
            if not items and not (sub.closed or sub.dropped):
                yield []
                continue
            fresh = [item for item in items if item.position > last]
            if fresh:
                last = fresh[-1].position
                yield fresh


FEED = web.AppKey("feed", Feed)


def running(kind: type[Feed], key: web.AppKey, name: str) -> tuple[Callable, Callable]:
    """(cleanup context, on_shutdown hook) that run one `kind` of feed per app under `key`."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        feed = kind(app[POOL], app[SETTINGS].api.sse_poll_interval)
        app[key] = feed
        task = asyncio.create_task(feed.run(), name=name)
        yield
        feed.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(app: web.Application) -> None:
        # on_shutdown runs before the server waits for open connections: ending
        # the streams here is what lets a shutdown finish promptly.
        app[key].close()

    return context, close


feed_context, close_streams = running(Feed, FEED, "api-feed")


PositionText = Text(POSITION_PATTERN, "a position as sent in the stream's id: field, e.g. 7351.1042 or 7351.o12")


def _blank_none(value: object) -> object:
    # An empty Last-Event-ID means "none yet" (the SSE spec's reset value).
    return None if isinstance(value, str) and not value.strip() else value


class StreamQuery(BaseModel):
    chain: ChainName | None = Field(None, description="Only this chain")
    last_event_id: PositionText | None = Field(
        None, description="Resume after this position (the Last-Event-ID header wins)")
    last_event_id_header: Annotated[PositionText | None, BeforeValidator(_blank_none)] = Field(
        None, alias="Last-Event-ID", json_schema_extra={"in": "header"}, description="Sent by EventSource on reconnect")


EVENT_STREAM = {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "An endless event stream; `: ping` comments keep it alive"}


@routes.get("/v1/stream", allow_head=False, params=StreamQuery, response=EVENT_STREAM,
            errors={503: "Too many clients, or the feed cannot reach the database"})
async def stream(request: web.Request, p: StreamQuery) -> web.StreamResponse:
    """Server-sent events in commit order; resumable

    Messages named `chain_event` (a stored event), `payout` (a payout request created or
    changing state), `batch` (a batch created or changing state), `reconciliation` (a finished
    run with its results), `asset_pause` (a reconciliation pause opened or resolved),
    `payout_control` (a kill switch set or lifted), `invoice` (an invoice created or changing
    state) and `intent` (an intent occurrence executed, delayed, missed, failed, held or
    awaiting approval, or a low-buffer warning). Every `id:` is a position in one total
    order across all of them: `tx.id` for events, `tx.oN` for the rest.

    Filtered per connection by its token's scope (README "Read scopes"): without the
    admin token only `chain_event`, `payout_control`, `asset_pause` (no reason) and
    `reconciliation` (no per-account results) come, plus the areas `api.public` names.
    A message left out still moves the position: ids stay in order, never repeat.
    One client holds at most `api.stream_slots_per_client` streams (then 429).
    """
    settings = request.app[SETTINGS].api
    feed = request.app[FEED]
    resume: Position | None = None
    if p.last_event_id_header is not None:
        resume = parse_position("Last-Event-ID", p.last_event_id_header)
    elif p.last_event_id is not None:
        resume = parse_position("last_event_id", p.last_event_id)
    who, public = principal(request), public_areas(request.app)
    if len(feed.subscribers) >= settings.sse_max_clients:
        raise RequestError(None, "too many stream clients; retry later", status=503, code="busy",
                           headers={"Retry-After": "5"})
    key_of = request.app.get(CLIENT_KEY)
    client = key_of(request) if key_of is not None else (request.remote or "unknown")
    if feed.clients[client] >= settings.stream_slots:
        m.RATE_LIMITED.inc()
        raise RequestError(None, f"too many streams open from this client (at most {settings.stream_slots}); "
                                 "close one or retry later", status=429, code="too_many_streams",
                           headers={"Retry-After": "5"})
    feed.clients[client] += 1  # taken before any await: no race past the cap
    try:
        return await _stream(request, feed, settings, p.chain, resume, who, public)
    finally:
        feed.clients[client] -= 1
        if feed.clients[client] <= 0:
            del feed.clients[client]  # the map holds only clients with a stream open


async def _stream(request: web.Request, feed: Feed, settings: ApiSettings, chain: str | None,
                  resume: Position | None, who: Principal, public: frozenset[str]) -> web.StreamResponse:
    try:
        await asyncio.wait_for(feed.ready.wait(), READY_WAIT)
    except asyncio.TimeoutError:
        raise RequestError(None, "the event feed cannot reach the database", status=503,
                           code="feed_unavailable", headers={"Retry-After": "5"}) from None

    sub = feed.subscribe()
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
    })
    try:
        await response.prepare(request)
        await response.write(b"retry: 2000\n: connected\n\n")
        async for items in feed.follow(sub, resume, settings.sse_heartbeat):
            if not items:
                await response.write(b": ping\n\n")
                continue
            out = bytearray()
            for item in items:
                message = item.for_reader(who, public)
                if message is not None and (chain is None or item.chain in (None, chain)):
                    out += message
                    m.SSE_SENT.inc()
            if out:
                await response.write(bytes(out))
        if sub.dropped:
            m.SSE_DROPPED.inc()
            await response.write(b": too far behind; reconnect with Last-Event-ID\n\n")
    except ConnectionResetError:
        pass  # the client went away; the subscription ends below
    except DB_ERRORS as exc:
        log.warning("api.stream_failed", error=exc.__class__.__name__)
    finally:
        feed.unsubscribe(sub)
    return response
