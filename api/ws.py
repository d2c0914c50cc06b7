"""The WebSocket live feed: `GET /v1/ws`, channels per connection, resumable by cursor.

It runs on the SSE feed's machinery (api/feed.py): one Postgres poller per
process (`LifecycleFeed`, a `Feed` whose `read` is the delivery relay's
four-source reader, delivery/fanout.py `read_after`, so chain events come
as `observed`, then `final` or `reverted`), bounded per-client queues
(`Subscriber`), and `Feed.follow`: catch up from the database after the
client's cursor, then the shared live queue, each message once and in order.

Protocol (JSON text frames). The client's first message, within 10 s:

    {"op": "subscribe", "channels": ["feed", "account"], "cursor": "7351.o12", "token": "<access token>"}

`token` is optional (a browser cannot set an Authorization header on a
WebSocket; the header works too); `cursor` is optional (from now). Channels:

- `feed`: what the public scope may read (chain events, kill switches,
  pauses without reasons, reconciliation without results, plus the areas
  `[api] public` names); with the admin token, every area;
- `account`: a wallet token's own account (`user:<chain>:<address>`): its
  payouts and withdrawals, its invoices, chain events naming its address,
  the `balance` outbox rows (0025) of transfers and holds naming exactly its
  account, then a `balance` snapshot (final, pending, available);
- `admin`: the admin token only: everything the SSE feed carries.

The server answers `{"type": "subscribed", "cursor": ...}`, then messages

    {"channel": "feed", "cursor": "7351.o12", "type": "payout", "stage": "requested",
     "finality": "final", "id": "fo_12", "chain": "anvil", "data": {...}}

`finality` is `observed`, `final` or `reverted` for chain events, `final`
for state changes committed by the daemon (payouts, batches, invoices...).
`{"type": "heartbeat", "cursor": ...}` comes after `api.sse_heartbeat`
seconds of nothing (the cursor moves past what the channels filtered out).
Reconnect with the last cursor seen: no gap, no repeat. Errors come as
`{"type": "error", "error": ..., "message": ...}` then a close:
`cursor_too_old` (4410: more than `api.ws_max_catch_up` messages behind;
refetch over REST, then subscribe without a cursor), `too_slow` (4408: the
client's queue of `api.ws_send_queue` messages filled), `unauthorized`
(4401), `forbidden` (4403), `bad_request` (4400).

Browsers: an `Origin` must be the API's own or one of `api.cors_origins`
(403 before the upgrade). One client holds at most
`api.stream_slots_per_client` streams, SSE and WebSocket together (429).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import orjson
from aiohttp import WSMsgType, web
from pydantic import BaseModel, Field

from config.logs import get_logger
from db.values import json_default
from delivery.fanout import read_after
from delivery.messages import PositionError, format_position, parse_position
from settlement.ledger.transfers import account_balances
from settlement.signin.sessions import session_live

from . import metrics as m
from .feed import DB_ERRORS, FEED, READY_WAIT, Feed, Position, running
from .http import RequestError
from .routing import Routes
from .scopes import REDACTED, Principal, can_read, feed_area, principal, public_areas, user_account
from .state import CLIENT_KEY, POOL, SETTINGS

log = get_logger("api.ws")
routes = Routes("public", auth=None)  # who reads what is decided per channel, by the subscribe message
SUBSCRIBE_WAIT = 10.0
SEND_TIMEOUT = 10.0
PING_PERIOD = 30.0
MAX_MESSAGE = 16 * 1024
CHANNELS = ("feed", "account", "admin")


class LifecycleFeed(Feed):
    """The feed of the WebSocket: events, outbox rows, and the `final` / `reverted` stages of events."""

    clients_gauge = m.WS_CLIENTS

    async def read(self, conn: asyncpg.Connection, pos: Position, horizon: str, limit: int) -> list[Any]:
        return await read_after(conn, pos, horizon, limit)


WS_FEED = web.AppKey("ws_feed", LifecycleFeed)
RESOLVE = web.AppKey("ws_resolve", object)


ws_feed_context, close_ws = running(LifecycleFeed, WS_FEED, "api-ws-feed")


def finality(msg: Any) -> str:
    return msg.stage if msg.kind == "chain_event" else "final"


class Reader:
    """What one connection's channels let through, and how it is written."""

    def __init__(self, who: Principal, public: frozenset[str], channels: set[str]) -> None:
        self.who, self.public, self.channels = who, public, channels
        self.account = user_account(who) if who.kind == "wallet" else None
        self.address = who.address.lower() if who.address else None

    def _mine(self, msg: Any) -> bool:
        if self.account is None or msg.chain != self.who.chain:
            return False
        if msg.kind == "balance":  # exactly the account it names: never a counterparty's
            return isinstance(msg.data, dict) and str(msg.data.get("account", "")).lower() == self.account.lower()
        if self.account.lower() in msg.accounts or self.address in msg.accounts:
            return True
        return isinstance(msg.data, dict) and msg.data.get("from_account") == self.account

    def frames(self, msg: Any) -> list[tuple[str, dict]]:
        """(channel, data) for every subscribed channel this message goes to."""
        if msg.kind == "skip":
            return []
        out = []
        if "admin" in self.channels:
            out.append(("admin", msg.data))
        if "feed" in self.channels:
            if can_read(self.who, feed_area(msg.kind), self.public):
                out.append(("feed", msg.data))
            elif msg.kind in REDACTED and isinstance(msg.data, dict):
                out.append(("feed", {k: v for k, v in msg.data.items() if k not in REDACTED[msg.kind]}))
        if "account" in self.channels and self._mine(msg):
            out.append(("account", msg.data))
        return out


def _frame(doc: dict) -> str:
    return orjson.dumps(doc, default=json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def message_frame(channel: str, msg: Any, data: Any) -> str:
    return _frame({"channel": channel, "cursor": format_position(msg.position), "type": msg.kind, "stage": msg.stage,
                   "finality": finality(msg), "id": msg.msg_id, "chain": msg.chain, "data": data})


class Closing(Exception):
    def __init__(self, code: int, error: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error, self.message = code, error, message


def _origin_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: the token decides
    allowed = request.app[SETTINGS].api.cors_origins
    if "*" in allowed or origin in allowed:
        return True
    return origin in (f"{request.scheme}://{request.host}", f"http://{request.host}", f"https://{request.host}")


async def _subscribe(request: web.Request, ws: web.WebSocketResponse) -> tuple[Principal, set[str], Position | None]:
    try:
        first = await ws.receive(SUBSCRIBE_WAIT)
    except asyncio.TimeoutError:
        raise Closing(4400, "bad_request", f"send a subscribe message within {SUBSCRIBE_WAIT:.0f} s") from None
    if first.type != WSMsgType.TEXT:
        raise Closing(4400, "bad_request", "the first message must be a JSON subscribe message")
    try:
        body = orjson.loads(first.data)
    except orjson.JSONDecodeError:
        raise Closing(4400, "bad_request", "not JSON") from None
    if not isinstance(body, dict) or body.get("op") != "subscribe":
        raise Closing(4400, "bad_request", 'expected {"op": "subscribe", "channels": [...]}')
    channels = body.get("channels")
    if (not isinstance(channels, list) or not channels or
            not all(isinstance(c, str) and c in CHANNELS for c in channels)):
        raise Closing(4400, "bad_request", f"channels: a non-empty list of {', '.join(CHANNELS)}")
    who = principal(request)
    token = body.get("token")
    if token is not None:
        if not isinstance(token, str) or len(token) > 4096:
            raise Closing(4401, "unauthorized", "token: not a token")
        who = request.app[RESOLVE]("Bearer " + token)  # type: ignore[operator]
    if who.bad_token:
        raise Closing(4401, "unauthorized", "invalid token")
    if "admin" in channels and who.kind != "admin":
        raise Closing(4403, "forbidden", "the admin channel needs the admin token")
    if "account" in channels:
        if who.kind != "wallet":
            raise Closing(4401 if who.kind == "anonymous" else 4403, "unauthorized" if who.kind == "anonymous"
                          else "forbidden", "the account channel needs a wallet access token")
    if who.kind == "wallet":
        async with request.app[POOL].acquire() as conn:
            if who.session is None or not await session_live(conn, who.session):
                raise Closing(4401, "unauthorized", "the session was revoked or has expired; sign in again")
    cursor = body.get("cursor")
    resume = None
    if cursor is not None:
        try:
            resume = parse_position(cursor) if isinstance(cursor, str) else parse_position("")
        except PositionError as exc:
            raise Closing(4400, "bad_request", f"cursor: {exc}") from None
    return who, set(channels), resume


class WsInfo(BaseModel):
    """What a plain GET (no Upgrade) answers: how to use the WebSocket."""

    websocket: str = Field(description="connect here with a WebSocket client")
    channels: list[str]
    subscribe: dict[str, Any] = Field(description="the first message to send")



@routes.get("/v1/ws", allow_head=False, response=WsInfo,
            errors={403: "An Origin that is not allowed", 429: "Too many streams from this client",
                    503: "Too many clients, or the feed cannot reach the database"})
async def websocket(request: web.Request) -> web.StreamResponse:
    """The WebSocket live feed: channels `feed`, `account` (a wallet token's own), `admin`; resumable by cursor

    Send `{"op": "subscribe", "channels": [...], "cursor": "...", "token": "..."}` first. Every
    message carries its `cursor` and `finality` (observed, final, reverted); reconnect with the
    last cursor: no gap, no repeat (README "Live feed over WebSocket"). A plain GET answers this
    description as JSON.
    """
    # Protocol pings find dead peers (a pong is due within half the period); the JSON
    # heartbeat every `sse_heartbeat` seconds is what carries the cursor forward.
    ws = web.WebSocketResponse(heartbeat=max(PING_PERIOD, request.app[SETTINGS].api.sse_heartbeat),
                               max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        return web.json_response({"websocket": "/v1/ws", "channels": list(CHANNELS),
                                  "subscribe": {"op": "subscribe", "channels": ["feed"], "cursor": None,
                                                "token": None}})
    if not _origin_ok(request):
        raise RequestError("Origin", "this origin may not open the feed (api.cors_origins)", status=403,
                           code="origin_not_allowed")
    settings = request.app[SETTINGS].api
    feed = request.app[WS_FEED]
    sse = request.app.get(FEED)
    open_streams = len(feed.subscribers) + (len(sse.subscribers) if sse is not None else 0)
    if open_streams >= settings.sse_max_clients:
        raise RequestError(None, "too many stream clients; retry later", status=503, code="busy",
                           headers={"Retry-After": "5"})
    key_of = request.app.get(CLIENT_KEY)
    client = key_of(request) if key_of is not None else (request.remote or "unknown")
    counter = sse.clients if sse is not None else feed.clients  # one count for SSE and WebSocket streams
    if counter[client] >= settings.stream_slots:
        m.RATE_LIMITED.inc()
        raise RequestError(None, f"too many streams open from this client (at most {settings.stream_slots})",
                           status=429, code="too_many_streams", headers={"Retry-After": "5"})
    counter[client] += 1
    try:
        await ws.prepare(request)
        await _serve(request, ws, feed)
    finally:
        counter[client] -= 1
        if counter[client] <= 0:
            del counter[client]
    return ws


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    # A client that stops reading blocks its own send (the socket's buffer is full): cut it off.
    try:
        await asyncio.wait_for(ws.send_str(text), SEND_TIMEOUT)
    except asyncio.TimeoutError:
        raise Closing(4408, "too_slow", "the client does not read its messages") from None


async def _balance(request: web.Request, reader: Reader, cursor: str) -> str:
    async with request.app[POOL].acquire() as conn:
        rows = await account_balances(conn, reader.account or "")
    data = {"account": reader.account, "balances": [
        {"asset_id": r["asset_id"], **{k: str(r[k]) for k in ("final", "pending", "available")}} for r in rows]}
    return _frame({"channel": "account", "cursor": cursor, "type": "balance", "stage": "changed",
                   "finality": "observed", "id": None, "chain": reader.who.chain, "data": data})


async def _serve(request: web.Request, ws: web.WebSocketResponse, feed: LifecycleFeed) -> None:
    settings = request.app[SETTINGS].api
    sub = None
    reading: asyncio.Task | None = None
    try:
        try:
            await asyncio.wait_for(feed.ready.wait(), READY_WAIT)
        except asyncio.TimeoutError:
            raise Closing(4503, "unavailable", "the feed cannot reach the database") from None
        who, channels, resume = await _subscribe(request, ws)
        reader = Reader(who, public_areas(request.app), channels)
        sub = feed.subscribe(settings.ws_send_queue)

        async def _incoming() -> None:
            # Reading keeps control frames (pong, close) flowing; the client sends nothing else.
            async for _ in ws:
                pass
            sub.close()

        reading = asyncio.create_task(_incoming())
        start = resume if resume is not None else sub.start
        await _send(ws, _frame({"type": "subscribed", "channels": sorted(channels),
                                "cursor": format_position(start)}))
        last = start
        caught_up = 0
        live = resume is None
        async for items in feed.follow(sub, resume, settings.sse_heartbeat):
            if not items:
                await _send(ws, _frame({"type": "heartbeat", "cursor": format_position(last)}))
                continue
            if not live:
                caught_up += len(items)
                if caught_up > settings.ws_max_catch_up:
                    raise Closing(4410, "cursor_too_old", f"the cursor is more than {settings.ws_max_catch_up} "
                                  "messages behind: refetch over REST, then subscribe without a cursor")
                live = items[-1].position >= sub.start
            account_seen = None
            for msg in items:
                last = msg.position
                for channel, data in reader.frames(msg):
                    await _send(ws, message_frame(channel, msg, data))
                    m.WS_SENT.labels(channel).inc()
                    if channel == "account":
                        account_seen = format_position(msg.position)
            if account_seen is not None:
                await _send(ws, await _balance(request, reader, account_seen))
        if sub.dropped:
            raise Closing(4408, "too_slow", f"more than {settings.ws_send_queue} messages queued: reconnect with "
                                            "the last cursor")
    except Closing as exc:
        if exc.error == "too_slow":
            m.WS_DROPPED.inc()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.send_str(_frame({"type": "error", "error": exc.error, "message": exc.message})),
                                   1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=exc.code, message=exc.error.encode()), 1.0)
    except (ConnectionResetError, RuntimeError):
        pass  # the client went away
    except DB_ERRORS as exc:
        log.warning("api.ws_failed", error=exc.__class__.__name__)
    finally:
        if sub is not None:
            feed.unsubscribe(sub)
        if reading is not None:
            reading.cancel()
        if not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
        if not ws.closed and request.transport is not None:
            request.transport.abort()  # a close the client never acknowledged

