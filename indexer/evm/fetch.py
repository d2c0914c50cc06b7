"""Fetching what one block range holds: headers and matching logs.

Everything here reads from the chain and validates the answer; nothing
writes. A range either comes back whole and self-consistent or raises, so
the follower never commits a half-answer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import orjson

from indexer.errors import BadRpcResponse, RpcError, RpcErrorKind
from indexer.evm.bloom import parse_bloom
from indexer.evm.rpc import EvmRpc
from indexer.models import BlockRow
from indexer.ranges import RangeSizer

K = RpcErrorKind


def parse_header(raw: object, what: str) -> BlockRow:
    if not isinstance(raw, dict):
        raise BadRpcResponse(f"{what}: block header missing (got {type(raw).__name__})")
    try:
        number = int(raw["number"], 16)
        block_hash = raw["hash"].lower()
        parent = raw["parentHash"].lower()
        ts = int(raw["timestamp"], 16) if raw.get("timestamp") else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRpcResponse(f"{what}: block header field {exc.args[0] if exc.args else exc!r} missing or malformed") from None
    if len(block_hash) != 66 or len(parent) != 66:
        raise BadRpcResponse(f"{what}: block hash is not 32 bytes")
    return BlockRow(number, block_hash, parent, ts, parse_bloom(raw.get("logsBloom")))


async def get_header(rpc: EvmRpc, tag: int | str) -> BlockRow:
    ref = hex(tag) if isinstance(tag, int) else tag
    header = parse_header(await rpc.call("eth_getBlockByNumber", [ref, False]), f"eth_getBlockByNumber({ref})")
    if isinstance(tag, int) and header.number != tag:
        raise BadRpcResponse(f"eth_getBlockByNumber({ref}) answered block {header.number}")
    return header


async def read_tip(rpc: EvmRpc, with_finalized: bool) -> tuple[BlockRow, BlockRow | None]:
    """The head (and the `finalized` block) that at least two endpoints reach.

    Every endpoint is asked; with several answers the second highest is
    used, so one endpoint claiming a head far above the others (a lie, or
    a load balancer ahead of its own backends) can neither make blocks it
    does not have look final nor stall the follower on them. A lagging
    endpoint costs at most its lag, and only while it is among the top two.
    """
    calls = [("eth_getBlockByNumber", ["latest", False])]
    if with_finalized:
        calls.append(("eth_getBlockByNumber", ["finalized", False]))
    heads: list[BlockRow] = []
    finals: list[BlockRow | None] = []

    def take(res: list, where: str) -> None:
        head = parse_header(res[0], f"eth_getBlockByNumber(latest){where}")
        final = parse_header(res[1], f"eth_getBlockByNumber(finalized){where}") if with_finalized and res[1] else None
        heads.append(head)
        finals.append(final)

    for label, res in await rpc.batch_each(calls):
        if not isinstance(res, RpcError):
            with contextlib.suppress(BadRpcResponse):
                take(res, f" [{label}]")
    if not heads:  # nobody answered at once: the usual retries and backoff
        take(await rpc.batch(calls), "")
    head = sorted(heads, key=lambda h: h.number, reverse=True)[min(1, len(heads) - 1)]
    known = sorted((f for f in finals if f is not None), key=lambda f: f.number, reverse=True)
    final = known[min(1, len(known) - 1)] if known else None
    return head, final


async def get_headers(rpc: EvmRpc, numbers: list[int]) -> list[BlockRow]:
    raws = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
    out = []
    for n, raw in zip(numbers, raws):
        h = parse_header(raw, f"eth_getBlockByNumber({hex(n)})")
        if h.number != n:
            raise BadRpcResponse(f"eth_getBlockByNumber({hex(n)}) answered block {h.number}")
        out.append(h)
    return out


# Addresses per eth_getLogs request. Factory children make the list grow
# without bound, and providers cap it (some at 1,000 or fewer, others by
# request size: 1,000 addresses are about 44 KB of JSON). Above this the
# range is asked once per chunk: ceil(addresses / ADDRESS_CHUNK) requests.
ADDRESS_CHUNK = 1000


@dataclass
class LogFilter:
    addresses: list[str]
    topic0s: list[str]

    def params(self, a: int, b: int) -> list[dict]:
        return [{"fromBlock": hex(a), "toBlock": hex(b), "address": self.addresses, "topics": [self.topic0s]}]

    def chunks(self) -> list["LogFilter"]:
        """This filter as filters of at most ADDRESS_CHUNK addresses each."""
        if len(self.addresses) <= ADDRESS_CHUNK:
            return [self]
        return [LogFilter(self.addresses[i: i + ADDRESS_CHUNK], self.topic0s)
                for i in range(0, len(self.addresses), ADDRESS_CHUNK)]

    def matches(self, log: dict) -> bool:
        topics = log.get("topics") or []
        return (
            str(log.get("address", "")).lower() in self._addr_set
            and bool(topics)
            and str(topics[0]).lower() in self._topic_set
        )

    def __post_init__(self) -> None:
        self._addr_set = {a.lower() for a in self.addresses}
        self._topic_set = {t.lower() for t in self.topic0s}


def check_logs_in_range(logs: object, a: int, b: int) -> list[dict]:
    if not isinstance(logs, list):
        raise BadRpcResponse(f"eth_getLogs({a}..{b}): result is not a list")
    seen: set = set()  # a block's logs share its number: check each number once
    for log in logs:
        try:
            raw = log["blockNumber"]
            if raw in seen:
                continue
            n = int(raw, 16)
        except (KeyError, TypeError, ValueError):
            raise BadRpcResponse(f"eth_getLogs({a}..{b}): log without a valid blockNumber") from None
        if not a <= n <= b:
            raise BadRpcResponse(f"eth_getLogs({a}..{b}): log from block {n} outside the range")
        seen.add(raw)
    return logs


def _block_order(log) -> tuple[int, int]:
    return int(log["blockNumber"], 16), int(log["logIndex"], 16)


def merge_logs(*parts: list) -> list:
    """Log lists of one range (address chunks, children) as one, in block and log order."""
    out = [lg for part in parts for lg in part]
    out.sort(key=_block_order)
    return out


async def get_logs(rpc: EvmRpc, flt: LogFilter, a: int, b: int, ep=None) -> list:
    """One eth_getLogs of [a, b], asked once per address chunk (of `ep` alone when given)."""
    parts = []
    for chunk in flt.chunks():
        if ep is None:
            parts.append(await rpc.call("eth_getLogs", chunk.params(a, b)))
        else:
            parts.append(await rpc.call_on(ep, "eth_getLogs", chunk.params(a, b)))
    if len(parts) == 1:
        return parts[0]
    return merge_logs(*(check_logs_in_range(p, a, b) for p in parts))


async def fetch_logs(rpc: EvmRpc, flt: LogFilter, a: int, b: int, sizer: RangeSizer) -> tuple[int, list[dict]]:
    """Logs of the longest prefix [a, end] the endpoints accept; returns (end, logs).

    Shrinks on "too large" and timeouts; a single block that is still too
    large is read from its receipts instead.
    """
    while True:
        a, end = sizer.next_range(a, b)
        span = end - a + 1
        try:
            logs = await get_logs(rpc, flt, a, end)
        except RpcError as exc:
            if exc.kind is K.RANGE_TOO_LARGE:
                if span == 1:
                    return end, await logs_from_receipts(rpc, flt, a)
                sizer.on_too_large(span, exc.hint)
                continue
            if exc.kind is K.TIMEOUT:
                if span == 1:
                    return end, await logs_from_receipts(rpc, flt, a)
                sizer.on_timeout(span)
                continue
            raise
        logs = check_logs_in_range(logs, a, end)
        sizer.on_success(span, len(logs))
        return end, logs


async def fetch_exact(rpc: EvmRpc, flt: LogFilter, a: int, b: int, sizer: RangeSizer) -> list:
    """Every log of [a, b] (several requests when the endpoints refuse the whole span)."""
    parts = []
    while a <= b:
        end, logs = await fetch_logs(rpc, flt, a, b, sizer)
        parts.append(logs)
        a = end + 1
    return parts[0] if len(parts) == 1 else [lg for part in parts for lg in part]


async def logs_from_receipts(rpc: EvmRpc, flt: LogFilter, number: int) -> list[dict]:
    """All matching logs of one block, from its receipts.

    The way through for a block whose logs alone exceed a provider's
    getLogs limits: eth_getBlockReceipts, or one receipt per transaction
    where that method is missing.
    """
    try:
        receipts = await rpc.call("eth_getBlockReceipts", [hex(number)])
    except RpcError as exc:
        if exc.kind not in (K.UNSUPPORTED, K.FATAL):
            raise
        block = await rpc.call("eth_getBlockByNumber", [hex(number), False])
        if not isinstance(block, dict) or not isinstance(block.get("transactions"), list):
            raise BadRpcResponse(f"eth_getBlockByNumber({hex(number)}): no transaction list") from None
        receipts = []
        txs = block["transactions"]
        for i in range(0, len(txs), 100):
            receipts += await rpc.batch([("eth_getTransactionReceipt", [h]) for h in txs[i: i + 100]])
    if not isinstance(receipts, list):
        raise BadRpcResponse(f"eth_getBlockReceipts({hex(number)}): result is not a list")
    logs = []
    for r in receipts:
        if not isinstance(r, dict) or not isinstance(r.get("logs"), list):
            raise BadRpcResponse(f"receipt in block {number} without a logs list")
        logs.extend(log for log in r["logs"] if flt.matches(log))
    return check_logs_in_range(logs, number, number)


async def wallet_headers(rpc: EvmRpc, events: list, headers: list[BlockRow], last: BlockRow,
                         wallets: set[str]) -> list[BlockRow]:
    """Headers of the blocks that carry a transfer to a watched wallet, besides the range's last.

    A final range keeps only its last header; a payment in it must still be
    dated by its own block's time (an invoice paid after its expiry is
    late), so those few blocks' headers are stored too, taken from the
    headers already fetched or asked for. Nothing is fetched when the chain
    watches no wallet or the range moves nothing to one.
    """
    if not wallets:
        return []
    # Rows are plain tuples in EventRow's order: [1] block number, [7] event, [8] args (JSON text).
    numbers = sorted({e[1] for e in events if e[1] != last.number and e[7] in ("Transfer", "NativeTransfer")
                      and _to_wallet(e[8], wallets)})
    if not numbers:
        return []
    have = {h.number: h for h in headers}
    missing = [n for n in numbers if n not in have]
    if missing:
        have.update((h.number, h) for h in await get_headers(rpc, missing))
    return [have[n] for n in numbers]


def _to_wallet(args: str, wallets: set[str]) -> bool:
    low = args.lower()
    if not any(w in low for w in wallets):  # cheap: most transfers name no watched wallet
        return False
    to = orjson.loads(args).get("to")
    return isinstance(to, str) and to.lower() in wallets
