"""aiohttp front end: WebSocket and JSON-RPC on one port, like rippled's port_ws/port_rpc.

`GET /` with an Upgrade header is the WebSocket API (requests, responses and
the `ledger` stream in order, through one writer task per connection);
`POST /` is JSON-RPC (`{"method": ..., "params": [{...}]}` →
`{"result": {..., "status": ...}}`). Several servers can serve one
`TestLedger`: each is a node with its own gap and drop hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any

from aiohttp import WSMsgType, web

from .chain import TestLedger
from .results import RpcFail
from .rpc import LedgerNode
from .state import ClosedLedger

log = logging.getLogger("tests.xrpl_ledger")
_STREAMS_NOT_MODELLED = {"transactions", "transactions_proposed", "server", "validations", "consensus",
                         "peer_status", "book_changes", "manifests"}


class _Connection:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.outbox: asyncio.Queue[dict | None] = asyncio.Queue()
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None or self.ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(item))


class LedgerServer:
    """One node of the test ledger on a TCP port; also the library handle for tests."""

    def __init__(self, node: LedgerNode, *, host: str = "127.0.0.1", port: int = 0,
                 close_interval: float | None = None) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.close_interval = close_interval
        self._runner: web.AppRunner | None = None
        self._timer: asyncio.Task | None = None
        self._conns: set[_Connection] = set()
        self._ledger_subs: set[_Connection] = set()

    @property
    def ledger(self) -> TestLedger:
        return self.node.ledger

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # -- test hooks (same as the test_* admin methods) ---------------------------

    def accept(self) -> ClosedLedger:
        return self.ledger.close()

    def drop_next(self, count: int = 1) -> None:
        self.node.drop_pending += count

    def set_gap(self, start: int, end: int) -> None:
        self.node.set_gap(start, end)

    def clear_gap(self) -> None:
        self.node.clear_gap()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self._get)
        app.router.add_post("/", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self.ledger.listeners.append(self._on_close)
        if self.close_interval:
            self._timer = asyncio.create_task(self._tick(self.close_interval))

    async def stop(self) -> None:
        if self._runner is None:
            return
        if self._on_close in self.ledger.listeners:
            self.ledger.listeners.remove(self._on_close)
        if self._timer:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        for conn in list(self._conns):
            conn.outbox.put_nowait(None)
            await conn.ws.close()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> "LedgerServer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.ledger.close()

    def _on_close(self, closed: ClosedLedger) -> None:
        fees = self.ledger.fees
        msg = {
            "type": "ledgerClosed", "fee_base": fees.base_fee, "ledger_hash": closed.hash,
            "ledger_index": closed.index, "ledger_time": closed.close_time, "network_id": self.ledger.network_id,
            "reserve_base": fees.reserve_base, "reserve_inc": fees.reserve_inc, "txn_count": len(closed.txs),
            "validated_ledgers": self.node.complete_ledgers(),
        }
        for conn in list(self._ledger_subs):
            conn.outbox.put_nowait(msg)

    # -- transports -----------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"result": {"error": "badSyntax", "error_code": 1,
                                                 "error_message": "Syntax error.", "status": "error"}})
        method = data.get("method") if isinstance(data, dict) else None
        raw_params = data.get("params", [{}]) if isinstance(data, dict) else None
        params = raw_params[0] if isinstance(raw_params, list) and raw_params and isinstance(raw_params[0], dict) else {}
        if method in ("subscribe", "unsubscribe"):
            fail = RpcFail("noEvents")
            return web.json_response({"result": {**fail.fields(), "status": "error"}})
        body = self._call(method, params, params.get("api_version", 1))
        if "error" in body:
            body = {**body, "request": {**params, "command": method}}
        return web.json_response({"result": {**body, "status": "error" if "error" in body else "success"}})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        if not ws.can_prepare(request).ok:
            return web.Response(text="chainsettle test ledger: WebSocket and JSON-RPC (POST) on this port\n")
        await ws.prepare(request)
        conn = _Connection(ws)
        self._conns.add(conn)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                    if not isinstance(data, dict):
                        raise ValueError("not an object")
                except ValueError:
                    conn.outbox.put_nowait({"error": "jsonInvalid", "status": "error", "type": "error"})
                    continue
                conn.outbox.put_nowait(self._ws_request(conn, data))
        finally:
            self._conns.discard(conn)
            self._ledger_subs.discard(conn)
            conn.outbox.put_nowait(None)
        return ws

    def _ws_request(self, conn: _Connection, data: dict) -> dict:
        command = data.get("command") or data.get("method")
        api_version = data.get("api_version", 1)
        params = {k: v for k, v in data.items() if k not in ("id", "command", "method")}
        if command == "subscribe":
            body = self._subscribe(conn, params)
        elif command == "unsubscribe":
            self._ledger_subs.discard(conn)
            body = {}
        else:
            body = self._call(command, params, api_version)
        out: dict[str, Any] = {"id": data.get("id"), "type": "response"}
        if api_version != 1:
            out["api_version"] = api_version
        if "error" in body:
            out.update(body, request=data, status="error")
        else:
            out.update(result=body, status="success")
        return out

    def _subscribe(self, conn: _Connection, params: dict) -> dict:
        streams = params.get("streams", [])
        if "accounts" in params or "books" in params:
            return RpcFail("notImpl").fields()
        if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
            return RpcFail("malformedStream").fields()
        for s in streams:
            if s in _STREAMS_NOT_MODELLED:
                return RpcFail("notImpl", f"stream {s!r} is not modelled by the test ledger").fields()
            if s != "ledger":
                return RpcFail("malformedStream").fields()
        if "ledger" not in streams:
            return {}
        self._ledger_subs.add(conn)
        last, fees = self.ledger.validated, self.ledger.fees
        return {"fee_base": fees.base_fee, "ledger_hash": last.hash, "ledger_index": last.index,
                "ledger_time": last.close_time, "network_id": self.ledger.network_id,
                "reserve_base": fees.reserve_base, "reserve_inc": fees.reserve_inc,
                "validated_ledgers": self.node.complete_ledgers()}

    def _call(self, method: Any, params: dict, api_version: Any) -> dict:
        if not isinstance(method, str):
            return RpcFail("unknownCmd").fields()
        try:
            return self.node.call(method, params, api_version if api_version in (1, 2) else 2)
        except RpcFail as fail:
            return fail.fields()
        except Exception:  # a bug here must answer, not hang the client
            log.exception("test ledger: %s failed", method)
            return RpcFail("internal").fields()


async def start_ledger_server(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    ledger: TestLedger | None = None,
    close_interval: float | None = None,
    network_id: int = 0,
    account_tx_max_limit: int = 400,
) -> tuple[LedgerServer, str]:
    """Start a node in this event loop; returns (server, ws_url).

    Pass `ledger` to start another node on the same chain (its own gap and
    drop hooks); `close_interval` closes ledgers on a timer, else only
    `ledger_accept` / `server.accept()` close them.
    """
    chain = ledger or TestLedger(network_id=network_id)
    server = LedgerServer(LedgerNode(chain, account_tx_max_limit=account_tx_max_limit), host=host, port=port,
                          close_interval=close_interval)
    await server.start()
    return server, server.ws_url
