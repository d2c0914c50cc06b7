"""A fault-injecting JSON-RPC reverse proxy in front of anvil, for tests.

Real providers fail in a handful of recognisable ways; this proxy
reproduces them on 127.0.0.1 so the follower meets them against a real
node: JSON-RPC server errors, HTTP 500/503, 429 with Retry-After, answers
that arrive after the client gave up, bodies cut short, ids that do not
match, eth_getLogs limits by block span and result count with each
provider's own error text (and range hint), a node that claims a head far
above the real one, an endpoint that is simply down (connection
refused), a load balancer whose backends lag on eth_getLogs (the newest
block's logs left out of a share of answers, no error: `lag_newest_logs`),
and a node still on an orphaned fork (`fork`: its headers and logs for some
block numbers served instead of the canonical ones).

Faults are drawn per HTTP request from `rates` with a seeded RNG, after a
scripted queue (`script`; "ok" in it lets one request through) is used up; both can be changed while the test
runs. Provider limits (`limits`) and the head lie are not random: they
apply to every matching request, as on a real provider.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from eth_utils import keccak

from .anvil import free_port

# Faults that replace the whole HTTP exchange (a batch fails as one).
HTTP_FAULTS = ("rpc_error", "http_500", "http_503", "http_429", "timeout", "truncated", "cut_json", "reset", "wrong_id")

# Provider texts for getLogs limits. Count styles get the logs that would be
# returned and may hint a range that fits; span styles know only the span.
COUNT_STYLES = ("infura", "alchemy", "geth", "arbitrum")
SPAN_STYLES = ("coreth", "bsc", "quicknode", "thirdweb", "ankr", "chainstack", "merkle", "ethermint")


@dataclass
class GetLogsLimits:
    max_logs: int | None = None  # more results than this: a "too many results" error
    max_span: int | None = None  # a wider block span than this: a "range too large" error
    count_style: str = "infura"
    span_style: str = "coreth"

    def __setattr__(self, name: str, value: Any) -> None:
        allowed = {"count_style": COUNT_STYLES, "span_style": SPAN_STYLES}.get(name)
        if allowed is not None and value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; one of {', '.join(allowed)}")
        super().__setattr__(name, value)


@dataclass
class ProxyStats:
    requests: int = 0  # HTTP requests received
    calls: Counter = field(default_factory=Counter)  # JSON-RPC method -> calls seen
    faults: Counter = field(default_factory=Counter)  # fault kind -> times injected
    getlogs: list[tuple[int, int]] = field(default_factory=list)  # (from, to) of every eth_getLogs seen
    hints: list[tuple[int, int]] = field(default_factory=list)  # ranges hinted in too-many-results errors
    blocks_asked: list[int] = field(default_factory=list)  # numbers asked of eth_getBlockByNumber
    refused: int = 0  # requests that met a down endpoint on a kept-alive connection


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer (the client sees a disconnect)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


def _quantity(v: Any, head: int) -> int:
    if isinstance(v, str) and v.startswith("0x"):
        return int(v, 16)
    if v in ("latest", "pending", "safe", "finalized", None):
        return head
    if v == "earliest":
        return 0
    return int(v)


class FaultProxy:
    def __init__(self, upstream: str, *, seed: int = 0, name: str = "proxy", journal: list | None = None) -> None:
        self.upstream = upstream
        self.name = name
        # Shared between proxies: the order of getLogs requests and hints
        # across endpoints, to check a hint from one is honoured at another.
        self.journal: list[tuple[str, str, int, int]] = journal if journal is not None else []
        self.unsupported: set[str] = set()  # methods answered with -32601
        self.rng = random.Random(seed)
        self.rates: dict[str, float] = {}
        self.script: deque[str] = deque()
        self.fault_methods: set[str] | None = None  # None: any request may get a fault
        self.limits = GetLogsLimits()
        self.head_lie = 0  # added to the real head in eth_blockNumber and `latest`
        # Share of eth_getLogs answers covering the head that leave out the
        # head block's logs (drawn from its own seeded RNG, not `rates`).
        self.lag_newest_logs = 0.0
        self.no_history = False  # a pruned node: state reads below the head fail ("missing trie node")
        self.head_lag = 0  # an honest node behind: `latest` is the real block this many below the head
        self.lag_rng = random.Random(seed + 1_000)
        # An orphaned fork: block number -> {"header": ..., "logs": [...]},
        # served for eth_getBlockByNumber / eth_getLogs instead of anvil's.
        self.fork: dict[int, dict] = {}
        self.timeout_sleep = 1.0  # seconds a "timeout" answer is held back
        self.retry_after = "0.1"
        self.stats = ProxyStats()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._down = False
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- life cycle ---------------------------------------------------------

    async def start(self) -> "FaultProxy":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await self._runner.setup()
        self._session = aiohttp.ClientSession()
        await self._listen()
        return self

    async def _listen(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, shutdown_timeout=0.1)
        await self._site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> "FaultProxy":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def go_down(self) -> None:
        """Stop listening (new connections are refused) and drop kept-alive ones."""
        self._down = True
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def come_up(self) -> None:
        self._down = False
        if self._site is None:
            await self._listen()

    # -- configuration ------------------------------------------------------

    def set_faults(self, rates: dict[str, float] | None = None, script: Iterable[str] = (),
                   methods: Iterable[str] | None = None) -> None:
        script = list(script)
        for kind in list(rates or {}) + script:
            if kind not in HTTP_FAULTS and not (kind == "ok" and kind in script):
                raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(HTTP_FAULTS)}")
        self.rates = dict(rates or {})
        self.script = deque(script)
        self.fault_methods = set(methods) if methods is not None else None

    def clear_faults(self) -> None:
        self.set_faults()
        self.limits = GetLogsLimits()
        self.head_lie = 0

    # -- the handler ----------------------------------------------------------

    def _draw_fault(self, methods: list[str]) -> str | None:
        if self.fault_methods is not None and not self.fault_methods.intersection(methods):
            return None
        if self.script:
            kind = self.script.popleft()
            return None if kind == "ok" else kind
        for kind, p in self.rates.items():
            if self.rng.random() < p:
                return kind
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._down:
            # A connection kept alive from before the outage: cut it, as a
            # dead host would, without an HTTP answer.
            self.stats.refused += 1
            return _drop(request)
        self.stats.requests += 1
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}})
        batch = isinstance(body, list)
        calls = body if batch else [body]
        methods = [c.get("method", "") for c in calls if isinstance(c, dict)]
        for meth in methods:
            self.stats.calls[meth] += 1
        fault = self._draw_fault(methods)
        if fault is not None:
            self.stats.faults[fault] += 1
            early = await self._early_fault(fault, request, calls, batch)
            if early is not None:
                return early
        answers = await self._answer(calls)
        if fault == "wrong_id":
            for a in answers:
                a["id"] = (a.get("id") or 0) + 1_000_000
        payload = orjson.dumps(answers if batch else answers[0])
        if fault == "cut_json":
            return web.Response(body=payload[: max(1, len(payload) // 2)], content_type="application/json")
        if fault == "truncated":
            return await self._truncated(request, payload)
        return web.Response(body=payload, content_type="application/json")

    async def _early_fault(self, fault: str, request: web.Request, calls: list, batch: bool) -> web.StreamResponse | None:
        if fault == "rpc_error":
            errs = [{"jsonrpc": "2.0", "id": c.get("id"), "error": {"code": -32000, "message": "internal error: upstream unavailable"}}
                    for c in calls]
            return web.json_response(errs if batch else errs[0], dumps=lambda o: orjson.dumps(o).decode())
        if fault in ("http_500", "http_503"):
            return web.Response(status=int(fault[5:]), text="upstream connect error")
        if fault == "http_429":
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": self.retry_after})
        if fault == "timeout":
            await asyncio.sleep(self.timeout_sleep)
            return None  # the answer comes, but after the client gave up
        if fault == "reset":
            return _drop(request)
        return None

    async def _truncated(self, request: web.Request, payload: bytes) -> web.StreamResponse:
        # Declare the full length, send part of it, then drop the connection.
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        await resp.prepare(request)
        await resp.write(payload[: max(1, len(payload) // 3)])
        request.transport.close()
        return resp

    async def _upstream(self, calls: list) -> list[dict]:
        assert self._session is not None
        async with self._session.post(self.upstream, data=orjson.dumps(calls),
                                      headers={"Content-Type": "application/json"}) as resp:
            out = orjson.loads(await resp.read())
        by_id = {a.get("id"): a for a in out} if isinstance(out, list) else {}
        return [by_id.get(c.get("id"), {"jsonrpc": "2.0", "id": c.get("id"), "result": None}) for c in calls]

    async def _answer(self, calls: list) -> list[dict]:
        """Each member's answer: a provider-limit error, a lie, or what anvil says."""
        answers: list[dict | None] = [None] * len(calls)
        forward = []
        head: int | None = None
        needs_head = self.head_lie or self.limits.max_span is not None or self.lag_newest_logs or self.head_lag or self.no_history
        if needs_head:
            head = int((await self._upstream([{"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}]))[0]["result"], 16)
        for i, c in enumerate(calls):
            if c.get("method") == "eth_getLogs":
                f = (c.get("params") or [{}])[0]
                a = _quantity(f.get("fromBlock"), head or 0)
                b = _quantity(f.get("toBlock"), head or 0)
                self.stats.getlogs.append((a, b))
                self.journal.append(("getlogs", self.name, a, b))
                err = self._span_error(a, b)
                if err is not None:
                    self.stats.faults["span_limit"] += 1
                    answers[i] = {"jsonrpc": "2.0", "id": c.get("id"), "error": err}
                    continue
            if c.get("method") == "eth_getBlockByNumber":
                ref = (c.get("params") or [None])[0]
                if isinstance(ref, str) and ref.startswith("0x"):
                    self.stats.blocks_asked.append(int(ref, 16))
                    if int(ref, 16) in self.fork:
                        self.stats.faults["fork_header"] += 1
                        answers[i] = {"jsonrpc": "2.0", "id": c.get("id"), "result": self.fork[int(ref, 16)]["header"]}
                        continue
            if c.get("method") in self.unsupported:
                answers[i] = {"jsonrpc": "2.0", "id": c.get("id"),
                              "error": {"code": -32601, "message": f"the method {c.get('method')} does not exist/is not available"}}
                continue
            if self.no_history and c.get("method") in ("eth_getBalance", "eth_call", "eth_getStorageAt"):
                tag = (c.get("params") or [None, None])[-1]
                if isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) < (head or 0):
                    self.stats.faults["no_history"] += 1
                    answers[i] = {"jsonrpc": "2.0", "id": c.get("id"), "error": {
                        "code": -32000, "message": "missing trie node 0c1d (path ) state is not available"}}
                    continue
            if self.head_lag and self._lies_about(c):
                lagged = max(0, (head or 0) - self.head_lag)
                self.stats.faults["head_lag"] += 1
                if c.get("method") == "eth_blockNumber":
                    answers[i] = {"jsonrpc": "2.0", "id": c.get("id"), "result": hex(lagged)}
                    continue
                calls[i] = {**c, "params": [hex(lagged), *(c.get("params") or [None, False])[1:]]}
            if self.head_lie and self._lies_about(c):
                answers[i] = self._lie(c, head)  # type: ignore[arg-type]
                continue
            forward.append(i)
        if forward:
            got = await self._upstream([calls[i] for i in forward])
            for i, ans in zip(forward, got):
                answers[i] = self._limit_count(calls[i], self._lag_or_fork(calls[i], ans, head))
        return answers  # type: ignore[return-value]

    def _lag_or_fork(self, call: dict, ans: dict, head: int | None) -> dict:
        logs = ans.get("result")
        if call.get("method") != "eth_getLogs" or not isinstance(logs, list):
            return ans
        f = (call.get("params") or [{}])[0]
        a, b = _quantity(f.get("fromBlock"), head or 0), _quantity(f.get("toBlock"), head or 0)
        if self.fork:
            forked = [n for n in self.fork if a <= n <= b]
            if forked:
                self.stats.faults["fork_logs"] += 1
                logs = [lg for lg in logs if int(lg["blockNumber"], 16) not in self.fork]
                logs += [lg for n in forked for lg in self.fork[n]["logs"]]
                logs.sort(key=lambda lg: (int(lg["blockNumber"], 16), int(lg["logIndex"], 16)))
        if self.lag_newest_logs and head is not None and a <= head <= b and self.lag_rng.random() < self.lag_newest_logs:
            kept = [lg for lg in logs if int(lg["blockNumber"], 16) != head]
            if len(kept) != len(logs):
                self.stats.faults["lagging_logs"] += 1
            logs = kept
        return {**ans, "result": logs}

    # -- provider limits --------------------------------------------------------

    def _span_error(self, a: int, b: int) -> dict | None:
        lim = self.limits
        span = b - a + 1
        if lim.max_span is None or span <= lim.max_span:
            return None
        m = lim.max_span
        texts = {
            "coreth": (-32000, f"requested too many blocks from {a} to {b}, maximum is set to {m}"),
            "bsc": (-32000, f"exceed maximum block range: {m}"),
            "quicknode": (-32602, f"eth_getLogs is limited to a {m:,} range"),
            "thirdweb": (-32602, f"Maximum allowed number of requested blocks is {m}"),
            "ankr": (-32600, "block range is too wide"),
            "chainstack": (-32602, "Block range limit exceeded."),
            "merkle": (-32000, f"eth_getLogs range is too large, max is {m // 1000}k blocks"),
            "ethermint": (-32000, f"maximum [from, to] blocks distance: {m}"),
        }
        code, message = texts[lim.span_style]
        return {"code": code, "message": message}

    def _limit_count(self, call: dict, ans: dict) -> dict:
        lim = self.limits
        logs = ans.get("result")
        if call.get("method") != "eth_getLogs" or lim.max_logs is None or not isinstance(logs, list) or len(logs) <= lim.max_logs:
            return ans
        self.stats.faults["count_limit"] += 1
        f = call["params"][0]
        a = int(f["fromBlock"], 16)
        # The widest prefix [a, x] whose logs fit: the block of the first log
        # over the cap, minus one (a itself when that block alone is too big).
        over = int(logs[lim.max_logs]["blockNumber"], 16)
        hint = (a, max(a, over - 1))
        if lim.count_style in ("infura", "alchemy"):
            self.stats.hints.append(hint)
            self.journal.append(("hint", self.name, *hint))
        n = lim.max_logs
        if lim.count_style == "infura":
            err = {"code": -32005, "message": f"query returned more than {n} results. Try with this block range [0x{hint[0]:X}, 0x{hint[1]:X}]."}
        elif lim.count_style == "alchemy":
            err = {"code": -32602, "message": (
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit "
                f"on the response size, or you can request any block range with a cap of {n} logs in the response. "
                f"Based on your parameters, this block range should work: [0x{hint[0]:x}, 0x{hint[1]:x}]")}
        elif lim.count_style == "arbitrum":
            err = {"code": -32000, "message": f"logs matched by query exceeds limit of {n}"}
        else:
            err = {"code": -32000, "message": f"query returned more than {n} results"}
        return {"jsonrpc": "2.0", "id": ans.get("id"), "error": err}

    # -- the lying head -----------------------------------------------------------

    @staticmethod
    def _lies_about(call: dict) -> bool:
        meth = call.get("method")
        if meth == "eth_blockNumber":
            return True
        params = call.get("params") or []
        return meth == "eth_getBlockByNumber" and bool(params) and params[0] in ("latest", "pending", "safe", "finalized")

    def _lie(self, call: dict, head: int) -> dict:
        claimed = head + self.head_lie
        self.stats.faults["head_lie"] += 1
        if call.get("method") == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": call.get("id"), "result": hex(claimed)}
        fake = "0x" + keccak(text=f"{self.name}:{claimed}").hex()
        parent = "0x" + keccak(text=f"{self.name}:{claimed - 1}").hex()
        header = {
            "number": hex(claimed), "hash": fake, "parentHash": parent, "timestamp": hex(2_000_000_000 + claimed),
            "transactions": [], "logsBloom": "0x" + "00" * 256, "miner": "0x" + "00" * 20, "gasUsed": "0x0",
        }
        return {"jsonrpc": "2.0", "id": call.get("id"), "result": header}
