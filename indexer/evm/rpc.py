"""EVM JSON-RPC over HTTP with several endpoints per chain.

Each request goes to the healthiest endpoint; failures fail over to the
next, with jittered backoff once every endpoint was tried, and a bounded
number of attempts. No endpoint is trusted: a malformed or truncated answer
counts as that endpoint's failure, not as data. Responses are parsed with
orjson and handed back raw: the hot path never pays web3.py's formatters.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from config.logs import get_logger
from indexer import metrics as m
from indexer.endpoints import Endpoint
from indexer.errors import AllEndpointsFailed, RpcError, RpcErrorKind
from indexer.evm.logs import parse_logs_answer
from indexer.evm.provider_errors import (
    looks_range_too_large,
    looks_rate_limited,
    looks_timeout,
    parse_range_hint,
)

log = get_logger("indexer.rpc")
K = RpcErrorKind
MAX_RESPONSE_BYTES = 128 * 1024 * 1024


def classify_rpc_error(code: int | None, message: str) -> tuple[RpcErrorKind, Any]:
    """Map a JSON-RPC error object to a kind (and a range hint, if any)."""
    low = message.lower()
    if "already known" in low or "already imported" in low or "known transaction" in low:
        return K.ALREADY_KNOWN, None
    if "nonce too low" in low or "nonce has already been used" in low or "invalid nonce" in low:
        return K.NONCE_TOO_LOW, None
    if "underpriced" in low or "fee too low" in low or "less than block base fee" in low or "max fee per gas less than" in low:
        return K.UNDERPRICED, None
    if code == 3 or "execution reverted" in low or "revert" in low:
        return K.EXECUTION, None
    if code == -32601 or "method not found" in low or "not supported" in low or "does not exist/is not available" in low:
        return K.UNSUPPORTED, None
    if looks_rate_limited(message) or code == 429:  # before "too many": "too many requests" is no range
        return K.RETRYABLE, None
    if looks_range_too_large(message) or code == -32005:
        return K.RANGE_TOO_LARGE, parse_range_hint(message)
    if looks_timeout(message):
        return K.TIMEOUT, None
    if code in (-32602, -32600, -32700):
        return K.FATAL, None
    # -32000..-32099 are server errors: header not found, node syncing, busy.
    return K.RETRYABLE, None


class EvmRpc:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain: str,
        timeout: float = 15.0,
        max_attempts: int = 6,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is required")
        self.chain = chain
        self.endpoints = [Endpoint(u, i) for i, u in enumerate(urls)]
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._session = session
        self._own_session = session is None
        self._ids = itertools.count(1)

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=300),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    def health(self) -> list[dict[str, Any]]:
        return [e.snapshot() for e in self.endpoints]

    def _ordered(self) -> list[Endpoint]:
        return sorted(self.endpoints, key=Endpoint.score)

    async def call(self, method: str, params: list | None = None, *, timeout: float | None = None) -> Any:
        """One request with failover; returns the `result` member.

        RANGE_TOO_LARGE, EXECUTION, UNSUPPORTED, FATAL and the transaction
        kinds are answers about the request, so they return to the caller at
        once; network faults, 5xx, 429, timeouts and bad JSON fail over.
        """
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        return await self._with_failover(method, payload, timeout, single=True)

    async def call_on(self, ep: Endpoint, method: str, params: list | None = None, *,
                      timeout: float | None = None) -> Any:
        """One request to this endpoint only, no failover: for answers that
        must come from one node (a broadcast to each, a receipt and the nonce
        count it is compared with)."""
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        return await self._send(ep, method, payload, timeout, True)

    async def batch(self, calls: Sequence[tuple[str, list]], *, timeout: float | None = None) -> list[Any]:
        """A JSON-RPC batch on one endpoint; results in the order of `calls`.

        Any error in any member fails the whole batch over, so the caller
        never mixes answers from two endpoints (which may disagree).
        """
        if not calls:
            return []
        payload = self._batch_payload(calls)
        return await self._with_failover(calls[0][0] + "[batch]", payload, timeout, single=False)

    async def batch_each(self, calls: Sequence[tuple[str, list]], *, timeout: float | None = None) -> list[tuple[str, Any]]:
        """The same batch on every usable endpoint at once, one attempt each.

        For cross-checks between endpoints (the head): returns (endpoint
        label, results list or the RpcError) per endpoint asked. Endpoints
        cooling down after failures are skipped unless none is usable.
        """
        payload = self._batch_payload(calls)
        method = calls[0][0] + "[each]"
        asked = [e for e in self.endpoints if e.healthy] or list(self.endpoints)

        async def one(ep: Endpoint) -> tuple[str, Any]:
            try:
                return ep.label, await self._send(ep, method, payload, timeout, single=False)
            except RpcError as exc:
                if exc.kind in (K.RETRYABLE, K.TIMEOUT):
                    ep.on_failure(str(exc.args[0])[:200], exc.retry_after)
                return ep.label, exc

        return list(await asyncio.gather(*(one(ep) for ep in asked)))

    def _batch_payload(self, calls: Sequence[tuple[str, list]]) -> list[dict]:
        return [{"jsonrpc": "2.0", "id": next(self._ids), "method": meth, "params": params} for meth, params in calls]

    async def _with_failover(self, method: str, payload: Any, timeout: float | None, single: bool) -> Any:
        attempts = 0
        last: RpcError | None = None
        timeouts = 0
        while attempts < self.max_attempts:
            for ep in self._ordered():
                if attempts >= self.max_attempts:
                    break
                if not ep.healthy and attempts < len(self.endpoints) and any(e.healthy for e in self.endpoints):
                    continue
                attempts += 1
                try:
                    return await self._send(ep, method, payload, timeout, single)
                except RpcError as exc:
                    last = exc
                    if exc.kind in (K.RETRYABLE, K.TIMEOUT):
                        ep.on_failure(str(exc.args[0])[:200], exc.retry_after)
                        timeouts += exc.kind is K.TIMEOUT
                        continue
                    raise
            if attempts < self.max_attempts:
                await asyncio.sleep(min(2.0, 0.1 * 2 ** attempts) * random.uniform(0.5, 1.0))
        for ep in self.endpoints:
            m.ENDPOINT_HEALTHY.labels(self.chain, ep.label).set(1 if ep.healthy else 0)
        # Timeouts everywhere usually mean the request itself is too heavy.
        kind = K.TIMEOUT if timeouts and last is not None and last.kind is K.TIMEOUT else K.RETRYABLE
        raise AllEndpointsFailed(
            f"all {len(self.endpoints)} endpoints failed after {attempts} attempts: {last.args[0] if last else 'no endpoint'}",
            kind=kind, method=method,
        )

    async def _send(self, ep: Endpoint, method: str, payload: Any, timeout: float | None, single: bool) -> Any:
        session = await self._get_session()
        ep.requests += 1
        labels = (self.chain, ep.label, method)
        m.RPC_REQUESTS.labels(*labels).inc()
        started = time.monotonic()
        try:
            body = await self._post(session, ep, payload, timeout or self.timeout, method)
            result = _unwrap_single(body, payload["id"]) if single else _unwrap_batch(body, payload)
        except RpcError as exc:
            exc.endpoint = ep.label
            exc.method = method
            m.RPC_ERRORS.labels(*labels, exc.kind.value).inc()
            raise
        elapsed = time.monotonic() - started
        ep.on_success(elapsed)
        m.RPC_LATENCY.labels(*labels).observe(elapsed)
        m.ENDPOINT_HEALTHY.labels(self.chain, ep.label).set(1)
        return result

    async def _post(self, session: aiohttp.ClientSession, ep: Endpoint, payload: Any, timeout: float, method: str) -> Any:
        data = orjson.dumps(payload)
        try:
            async with session.post(
                ep.url, data=data, headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                if resp.status == 429:
                    ra = resp.headers.get("Retry-After")
                    retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
                    raise RpcError("HTTP 429 rate limited", kind=K.RETRYABLE, code=429, retry_after=retry_after)
                if resp.status == 413:
                    raise RpcError("HTTP 413 response too large", kind=K.RANGE_TOO_LARGE, code=413)
                if resp.status >= 500 or resp.status in (408, 502, 503, 504):
                    raise RpcError(f"HTTP {resp.status}", kind=K.RETRYABLE, code=resp.status)
                length = resp.content_length
                if length is not None and length > MAX_RESPONSE_BYTES:
                    raise RpcError(f"response of {length} bytes is over the limit", kind=K.RANGE_TOO_LARGE)
                if length is not None:
                    raw = await resp.read()
                else:
                    chunks, size = [], 0
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        size += len(chunk)
                        if size > MAX_RESPONSE_BYTES:
                            raise RpcError("response over the size limit", kind=K.RANGE_TOO_LARGE)
                        chunks.append(chunk)
                    raw = b"".join(chunks)
                if resp.status >= 400 and not raw.startswith((b"{", b"[")):
                    raise RpcError(f"HTTP {resp.status}", kind=K.FATAL if resp.status in (400, 401, 403, 404) else K.RETRYABLE, code=resp.status)
        except asyncio.TimeoutError:
            raise RpcError(f"no answer within {timeout:g}s", kind=K.TIMEOUT) from None
        except aiohttp.ClientPayloadError as exc:
            raise RpcError(f"truncated response: {exc.__class__.__name__}", kind=K.RETRYABLE) from None
        except aiohttp.ClientError as exc:
            raise RpcError(f"{exc.__class__.__name__}: {exc}", kind=K.RETRYABLE) from None
        except OSError as exc:
            raise RpcError(f"{exc.__class__.__name__}: {exc.strerror or exc}", kind=K.RETRYABLE) from None
        if method == "eth_getLogs" and isinstance(payload, dict):
            typed = parse_logs_answer(raw)
            if typed is not None:
                return typed
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RpcError(f"invalid JSON in response ({len(raw)} bytes)", kind=K.RETRYABLE) from None


def _error_from(obj: dict) -> RpcError:
    err = obj.get("error")
    if not isinstance(err, dict):
        return RpcError(f"malformed error member: {str(err)[:200]}", kind=K.RETRYABLE)
    code = err.get("code") if isinstance(err.get("code"), int) else None
    message = str(err.get("message", ""))[:1000]
    data = err.get("data")
    if isinstance(data, str) and data:
        message = f"{message} ({data[:300]})"
    kind, hint = classify_rpc_error(code, message)
    return RpcError(message or "error without message", kind=kind, code=code, hint=hint)


def _unwrap_single(body: Any, req_id: int) -> Any:
    if not isinstance(body, dict):
        raise RpcError("response is not a JSON object", kind=K.RETRYABLE)
    if "error" in body and body["error"] is not None:
        raise _error_from(body)
    if "result" not in body:
        raise RpcError("response has neither result nor error", kind=K.RETRYABLE)
    if body.get("id") != req_id:
        raise RpcError(f"response id {body.get('id')!r} does not match request id {req_id}", kind=K.RETRYABLE)
    return body["result"]


def _unwrap_batch(body: Any, payload: list[dict]) -> list[Any]:
    if not isinstance(body, list):
        if isinstance(body, dict) and "error" in body:
            raise _error_from(body)
        raise RpcError("batch response is not a JSON array", kind=K.RETRYABLE)
    by_id = {}
    for item in body:
        if isinstance(item, dict) and "id" in item:
            by_id[item["id"]] = item
    out = []
    for req in payload:
        item = by_id.get(req["id"])
        if item is None:
            raise RpcError(f"batch response lacks id {req['id']}", kind=K.RETRYABLE)
        out.append(_unwrap_single(item, req["id"]))
    return out
