"""rippled / Clio access through xrpl-py: several endpoints, failover, the ledger stream.

ws:// and wss:// endpoints use xrpl-py's AsyncWebsocketClient (one kept-open
connection each, reopened after a failure), http(s):// ones its
AsyncJsonRpcClient. A request goes to the healthiest endpoint and fails
over on transport faults, timeouts and "this server cannot answer that
now" errors (tooBusy, lgrNotFound, ...); answers about the request itself
(actNotFound, txnNotFound, invalidParams, ...) return at once. Calls that
must see one server's consistent view (paging `account_tx` with markers)
pin an endpoint and fail instead of switching mid-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.exceptions import WebSocketException
from xrpl.asyncio.clients import AsyncJsonRpcClient, AsyncWebsocketClient
from xrpl.asyncio.clients.exceptions import (
    XRPLRequestFailureException,
    XRPLWebsocketException,
)
from xrpl.models.requests import GenericRequest, StreamParameter, Subscribe
from xrpl.models.response import ResponseStatus

from config.logs import get_logger
from indexer import metrics as m
from indexer.endpoints import Endpoint
from indexer.errors import AllEndpointsFailed, BadRpcResponse, RpcError, RpcErrorKind
from indexer.xrpl import metrics as xm

log = get_logger("indexer.xrpl_rpc")
K = RpcErrorKind
RIPPLE_EPOCH = 946684800  # 2000-01-01T00:00:00Z, the zero of XRPL close times

# rippled/Clio error tokens: try another server, or the request itself is the problem.
_ELSEWHERE = {
    "tooBusy", "slowDown", "noNetwork", "noCurrent", "noClosed", "notSynced", "notReady", "amendmentBlocked",
    "unlBlocked", "internal", "failedToForward", "lgrNotFound", "lgrNotValidated", "lgrIdxMalformed",
    "reportingUnsupported", "dbDeserialization",
}
_UNSUPPORTED = {"unknownCmd", "notImpl", "notSupported", "notEnabled", "noPermission", "forbidden", "noEvents"}
_ANSWERS = {"actNotFound", "txnNotFound", "srcActNotFound", "dstActNotFound", "objectNotFound", "entryNotFound"}


def classify(token: str) -> RpcErrorKind:
    if token in _ELSEWHERE:
        return K.RETRYABLE
    if token in _UNSUPPORTED:
        return K.UNSUPPORTED
    if token in _ANSWERS:
        return K.EXECUTION
    return K.FATAL


class XrplRpcError(RpcError):
    """an XRPL server answered with an error"""

    def __init__(self, message: str, *, kind: RpcErrorKind, token: str | None = None, **kw: Any) -> None:
        super().__init__(message, kind=kind, **kw)
        self.token = token


@dataclass(frozen=True)
class LedgerSet:
    """A `complete_ledgers` value such as "32570-4000000,4000005-4100000"."""

    runs: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, text: Any) -> "LedgerSet":
        if not isinstance(text, str):
            raise BadRpcResponse(f"server_info: complete_ledgers is not a string: {str(text)[:60]!r}")
        if text.strip() in ("", "empty"):
            return cls(())
        runs = []
        try:
            for part in text.split(","):
                lo, _, hi = part.strip().partition("-")
                a, b = int(lo), int(hi or lo)
                if a > b or a < 0:
                    raise ValueError(part)
                runs.append((a, b))
        except ValueError:
            raise BadRpcResponse(f"server_info: complete_ledgers is malformed: {text[:120]!r}") from None
        return cls(tuple(sorted(runs)))

    def run_with(self, index: int) -> tuple[int, int] | None:
        return next(((a, b) for a, b in self.runs if a <= index <= b), None)

    def missing(self, lo: int, hi: int) -> "LedgerSet":
        """The ledgers of lo..hi this set lacks."""
        out, nxt = [], lo
        for a, b in self.runs:
            if b < nxt:
                continue
            if a > hi:
                break
            if a > nxt:
                out.append((nxt, a - 1))
            nxt = max(nxt, b + 1)
        if nxt <= hi:
            out.append((nxt, hi))
        return LedgerSet(tuple(out))

    def __str__(self) -> str:
        return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in self.runs) or "empty"


@dataclass(frozen=True)
class ServerInfo:
    complete: LedgerSet
    validated: int | None
    network_id: int | None

    def served(self) -> tuple[int, int] | None:
        """The history `account_tx` serves here: the run of complete ledgers ending at the validated one."""
        return self.complete.run_with(self.validated) if self.validated is not None else None


@dataclass(frozen=True)
class LedgerHeader:
    index: int
    hash: str
    parent_hash: str
    close_time: int  # Unix seconds


def _hex64(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise BadRpcResponse(f"{field}: not a 64-hex-digit hash: {str(value)[:80]!r}")
    return value.upper()


class ServerConn:
    """One endpoint: its health and, lazily, its xrpl-py client."""

    def __init__(self, url: str, index: int, owner: "XrplClient") -> None:
        self.url = url
        self.ep = Endpoint(url, index)
        self.is_ws = url.startswith(("ws://", "wss://"))
        self.owner = owner
        self.client: AsyncWebsocketClient | AsyncJsonRpcClient | None = None
        self.reader: asyncio.Task | None = None
        self.subscribed = False
        self.excluded: str | None = None

    async def get(self) -> AsyncWebsocketClient | AsyncJsonRpcClient:
        if not self.is_ws:
            if self.client is None:
                self.client = AsyncJsonRpcClient(self.url)
            return self.client
        if self.client is not None and self.client.is_open():
            return self.client
        await self.reset()
        client = AsyncWebsocketClient(self.url)
        await asyncio.wait_for(client.open(), self.owner.timeout)
        self.client = client
        self.reader = asyncio.create_task(self._read(client))
        return client

    async def _read(self, client: AsyncWebsocketClient) -> None:
        # xrpl-py queues every frame; draining here keeps that queue bounded
        # and delivers the stream. A fresh iterator per wait, so a timeout
        # (to notice a dropped connection) never kills the iteration.
        while client.is_open():
            try:
                msg = await asyncio.wait_for(client.__aiter__().__anext__(), 1.0)
            except asyncio.TimeoutError:
                continue
            except StopAsyncIteration:
                break
            if isinstance(msg, dict) and msg.get("type") == "ledgerClosed":
                self.owner._ledger_closed(self, msg)
        self.subscribed = False
        self.owner._stream_changed()

    async def reset(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        if isinstance(self.client, AsyncWebsocketClient):
            with contextlib.suppress(Exception):
                await self.client.close()
        if self.is_ws:
            self.client = None
        if self.subscribed:
            self.subscribed = False
            self.owner._stream_changed()


class XrplClient:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain: str,
        timeout: float = 15.0,
        max_attempts: int = 6,
        on_ledger_closed: Callable[[int], None] | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one XRPL endpoint URL is required")
        self.chain = chain
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.conns = [ServerConn(u, i, self) for i, u in enumerate(urls)]
        self.on_ledger_closed = on_ledger_closed

    # -- endpoints ----------------------------------------------------------------

    def usable(self) -> list[ServerConn]:
        """Endpoints not excluded, healthiest first."""
        return sorted((c for c in self.conns if c.excluded is None), key=lambda c: c.ep.score())

    def exclude(self, conn: ServerConn, reason: str) -> None:
        if conn.excluded is None:
            conn.excluded = reason
            xm.ENDPOINT_EXCLUDED.labels(self.chain, conn.ep.label).set(1)
            log.error("xrpl.endpoint_excluded", chain=self.chain, endpoint=conn.ep.label, reason=reason)

    def health(self) -> list[dict[str, Any]]:
        return [{**c.ep.snapshot(), "excluded": c.excluded, "stream": c.subscribed} for c in self.conns]

    @property
    def stream_connected(self) -> bool:
        return any(c.subscribed for c in self.conns)

    async def close(self) -> None:
        for c in self.conns:
            await c.reset()

    # -- requests -------------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any] | None = None, *, conn: ServerConn | None = None) -> dict:
        """The `result` of one request; `conn` pins the endpoint (no failover)."""
        if conn is not None:
            return await self._send(conn, method, params or {})
        attempts, last = 0, None
        while attempts < self.max_attempts:
            usable = self.usable()
            if not usable:
                break
            for c in usable:
                if attempts >= self.max_attempts:
                    break
                if not c.ep.healthy and attempts < len(usable) and any(x.ep.healthy for x in usable):
                    continue
                attempts += 1
                try:
                    return await self._send(c, method, params or {})
                except XrplRpcError as exc:
                    last = exc
                    if exc.kind in (K.RETRYABLE, K.TIMEOUT, K.UNSUPPORTED):
                        continue
                    raise
            if attempts < self.max_attempts:
                await asyncio.sleep(min(2.0, 0.1 * 2 ** attempts) * random.uniform(0.5, 1.0))
        raise AllEndpointsFailed(
            f"all {len(self.conns)} endpoints failed after {attempts} attempts: {last.args[0] if last else 'none usable'}",
            kind=K.RETRYABLE, method=method,
        )

    async def _send(self, conn: ServerConn, method: str, params: dict[str, Any]) -> dict:
        ep = conn.ep
        labels = (self.chain, ep.label, method)
        ep.requests += 1
        m.RPC_REQUESTS.labels(*labels).inc()
        started = time.monotonic()
        try:
            result = await self._exchange(conn, method, params)
        except XrplRpcError as exc:
            exc.endpoint, exc.method = ep.label, method
            m.RPC_ERRORS.labels(*labels, exc.kind.value).inc()
            if exc.token:
                xm.RPC_ERRORS.labels(self.chain, ep.label, exc.token).inc()
            if exc.kind in (K.RETRYABLE, K.TIMEOUT, K.UNSUPPORTED):
                ep.on_failure(str(exc.args[0])[:200])
                m.ENDPOINT_HEALTHY.labels(self.chain, ep.label).set(0)
            raise
        elapsed = time.monotonic() - started
        ep.on_success(elapsed)
        m.RPC_LATENCY.labels(*labels).observe(elapsed)
        m.ENDPOINT_HEALTHY.labels(self.chain, ep.label).set(1)
        return result

    async def _exchange(self, conn: ServerConn, method: str, params: dict[str, Any]) -> dict:
        try:
            client = await conn.get()
            response = await asyncio.wait_for(client.request(GenericRequest(method=method, **params)), self.timeout)
        except asyncio.TimeoutError:
            await conn.reset()
            raise XrplRpcError(f"no answer within {self.timeout:g}s", kind=K.TIMEOUT) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            await conn.reset()  # xrpl-py cancels pending requests when its socket closes
            raise XrplRpcError("connection closed while waiting", kind=K.RETRYABLE) from None
        except (OSError, WebSocketException, XRPLWebsocketException, httpx.HTTPError) as exc:
            await conn.reset()
            raise XrplRpcError(f"{exc.__class__.__name__}: {exc}"[:300], kind=K.RETRYABLE) from None
        except (XRPLRequestFailureException, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise XrplRpcError(f"unreadable answer: {exc.__class__.__name__}: {exc}"[:300], kind=K.RETRYABLE) from None
        result = response.result
        if not isinstance(result, dict):
            raise XrplRpcError("answer has no result object", kind=K.RETRYABLE)
        if response.status != ResponseStatus.SUCCESS or "error" in result:
            token = str(result.get("error", "unknown"))
            text = result.get("error_message") or result.get("error_exception") or token
            code = result.get("error_code") if isinstance(result.get("error_code"), int) else None
            raise XrplRpcError(f"{token}: {text}"[:300], kind=classify(token), token=token, code=code)
        return result

    # -- typed calls ---------------------------------------------------------------------

    async def server_info(self, conn: ServerConn) -> ServerInfo:
        info = (await self.request("server_info", {}, conn=conn)).get("info")
        if not isinstance(info, dict):
            raise BadRpcResponse("server_info: `info` missing")
        validated = info.get("validated_ledger")
        seq = validated.get("seq") if isinstance(validated, dict) else None
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
            raise BadRpcResponse(f"server_info: validated_ledger.seq is not an integer: {seq!r}")
        net = info.get("network_id")
        if net is not None and (isinstance(net, bool) or not isinstance(net, int)):
            raise BadRpcResponse(f"server_info: network_id is not an integer: {net!r}")
        return ServerInfo(LedgerSet.parse(info.get("complete_ledgers")), seq, net)

    async def ledger_header(self, index: int | str, *, conn: ServerConn | None = None) -> LedgerHeader:
        res = await self.request("ledger", {"ledger_index": index}, conn=conn)
        body = res.get("ledger")
        if not isinstance(body, dict) or res.get("validated") is not True:
            raise BadRpcResponse(f"ledger {index}: not a validated ledger")
        try:
            number = int(res.get("ledger_index", body.get("ledger_index")))
            close = int(body["close_time"])
        except (KeyError, TypeError, ValueError):
            raise BadRpcResponse(f"ledger {index}: ledger_index or close_time missing") from None
        if isinstance(index, int) and number != index:
            raise BadRpcResponse(f"ledger {index}: the server answered ledger {number}")
        return LedgerHeader(number, _hex64(res.get("ledger_hash", body.get("ledger_hash")), f"ledger {index}: ledger_hash"),
                            _hex64(body.get("parent_hash"), f"ledger {index}: parent_hash"), close + RIPPLE_EPOCH)

    async def account_tx(self, account: str, lo: int, hi: int, *, conn: ServerConn, limit: int = 200) -> list[dict]:
        """Every validated transaction of `account` in ledgers lo..hi, oldest first, from one server."""
        out: list[dict] = []
        marker: Any = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"account": account, "ledger_index_min": lo, "ledger_index_max": hi,
                                      "forward": True, "limit": limit}
            if marker is not None:
                params["marker"] = marker
            res = await self.request("account_tx", params, conn=conn)
            txs = res.get("transactions")
            if not isinstance(txs, list):
                raise BadRpcResponse(f"account_tx {account}: `transactions` missing")
            got_lo, got_hi = res.get("ledger_index_min", lo), res.get("ledger_index_max", hi)
            if not isinstance(got_lo, int) or not isinstance(got_hi, int) or got_lo > lo or got_hi < hi:
                raise BadRpcResponse(f"account_tx {account}: asked for {lo}-{hi}, the server searched {got_lo}-{got_hi}")
            out.extend(txs)
            marker = res.get("marker")
            if marker is None:
                return out
            key = json.dumps(marker, sort_keys=True)
            if key in seen:
                raise BadRpcResponse(f"account_tx {account}: marker {key} repeats")
            seen.add(key)

    # -- the ledger stream ----------------------------------------------------------

    async def start_stream(self) -> bool:
        """Subscribe to `ledger` on the healthiest WebSocket endpoint; False if none answers."""
        if self.stream_connected:
            return True
        for conn in self.usable():
            if not conn.is_ws:
                continue
            try:
                client = await conn.get()
                res = await asyncio.wait_for(client.request(Subscribe(streams=[StreamParameter.LEDGER])), self.timeout)
            except (asyncio.TimeoutError, OSError, WebSocketException, XRPLWebsocketException) as exc:
                log.info("xrpl.stream_unavailable", chain=self.chain, endpoint=conn.ep.label, error=str(exc)[:200])
                await conn.reset()
                continue
            if res.status != ResponseStatus.SUCCESS:
                log.info("xrpl.stream_refused", chain=self.chain, endpoint=conn.ep.label, error=str(res.result)[:200])
                continue
            conn.subscribed = True
            self._stream_changed()
            index = res.result.get("ledger_index")
            if isinstance(index, int) and self.on_ledger_closed:
                self.on_ledger_closed(index)
            log.info("xrpl.stream_subscribed", chain=self.chain, endpoint=conn.ep.label)
            return True
        return False

    def _ledger_closed(self, conn: ServerConn, msg: dict) -> None:
        index = msg.get("ledger_index")
        if conn.subscribed and isinstance(index, int) and self.on_ledger_closed:
            self.on_ledger_closed(index)

    def _stream_changed(self) -> None:
        xm.STREAM_CONNECTED.labels(self.chain).set(1 if self.stream_connected else 0)
