"""Native value moved by internal calls, read from call traces.

Logs and top-level transactions do not show a contract paying a wallet (a
prize in FLR, a batcher paying native coin, a router forwarding a deposit):
only the call tree does. For each block that may hold such a movement
(a transaction from or to a native wallet or naming one in its input, or a
log naming one; or every block with `trace_blocks = "all"`) the call tree is read and every internal
call (depth > 0) moving value to or from a wallet becomes an event:

- `InternalTransfer` {from, to, value, type, path}, address "native", the
  transaction's hash and index, and `log_index` = -2 - the frame's position
  in the transaction's call tree (depth first, the top frame 0). So it never
  collides with a log (>= 0) or with NativeTransfer (-1) and NativeFee (-2),
  and a replay, by either trace method, gives the same key.
- A frame that failed (`error`) is excluded with everything below it, and a
  failed transaction moves nothing. DELEGATECALL, STATICCALL and CALLCODE
  move no value between accounts; CALL, CREATE, CREATE2 and SELFDESTRUCT do.

Methods: `debug_traceBlockByHash` with `callTracer` (geth family, anvil,
Flare providers) asks for the very block we hold; `trace_block` (parity,
Erigon, anvil) is by number, and each trace's `blockHash` must be the hash
we hold, else the answer is refused. Each endpoint is probed on first use;
one that cannot trace is skipped for traces (its logs are still used).

`call_transfers` and `parity_transfers` are pure; `Tracer` is the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from config import ConfigError
from config.logs import get_logger
from indexer import metrics as m
from indexer.errors import BadRpcResponse, RpcError, RpcErrorKind
from indexer.evm.bloom import contains
from indexer.evm.rpc import EvmRpc
from indexer.models import EventRow

log = get_logger("indexer.evm.traces")
NATIVE_ADDRESS = "native"
INTERNAL_TRANSFER = "InternalTransfer"
VALUE_FRAMES = {"CALL", "CREATE", "CREATE2", "SELFDESTRUCT"}
CALL_TRACER = "callTracer"
PARITY = "parity"
_NOT_TRACING = (RpcErrorKind.UNSUPPORTED, RpcErrorKind.FATAL)


def _int(value: object) -> int:
    if value in (None, "", "0x"):
        return 0
    try:
        return int(value, 16) if isinstance(value, str) else int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRpcResponse(f"trace: value is not a quantity: {str(value)[:40]}") from None


def _row(chain: str, number: int, block_hash: str, tx_hash: str, tx_index: int, ordinal: int,
         kind: str, frm: str, to: str, value: int, path: Sequence[int]) -> EventRow:
    args = {"from": frm, "to": to, "value": str(value), "type": kind, "path": ".".join(map(str, path))}
    return EventRow(chain, number, block_hash, tx_hash, tx_index, -2 - ordinal, NATIVE_ADDRESS, INTERNAL_TRANSFER,
                    orjson.dumps(args).decode())


def call_transfers(chain: str, number: int, block_hash: str, tx_hash: str, tx_index: int, root: dict,
                   wallets: frozenset[str]) -> list[EventRow]:
    """Internal value transfers of one transaction's callTracer tree touching `wallets`."""
    if not isinstance(root, dict):
        raise BadRpcResponse(f"trace of {tx_hash}: call frame is not an object")
    rows: list[EventRow] = []
    stack: list[tuple[dict, tuple[int, ...], bool]] = [(root, (), False)]
    ordinal = -1
    while stack:  # depth first, in order: a call tree can be 1,024 frames deep
        frame, path, failed = stack.pop()
        ordinal += 1
        failed = failed or bool(frame.get("error"))
        kind = str(frame.get("type", "")).upper()
        if path and not failed and kind in VALUE_FRAMES:
            value = _int(frame.get("value"))
            frm, to = str(frame.get("from", "")).lower(), str(frame.get("to", "")).lower()
            if value > 0 and (frm in wallets or to in wallets):
                rows.append(_row(chain, number, block_hash, tx_hash, tx_index, ordinal, kind, frm, to, value, path))
        calls = frame.get("calls") or []
        if not isinstance(calls, list):
            raise BadRpcResponse(f"trace of {tx_hash}: calls is not a list")
        for i in range(len(calls) - 1, -1, -1):
            stack.append((calls[i], (*path, i), failed))
    return rows


def parity_transfers(chain: str, number: int, block_hash: str, traces: list, tx_hashes: Sequence[str],
                     wallets: frozenset[str]) -> list[EventRow]:
    """Internal value transfers of a block's `trace_block` answer touching `wallets`."""
    if not isinstance(traces, list):
        raise BadRpcResponse(f"trace_block({number}): result is not a list")
    rows: list[EventRow] = []
    failed: set[tuple] = set()
    ordinals: dict[str, int] = {}
    for t in traces:
        if not isinstance(t, dict):
            raise BadRpcResponse(f"trace_block({number}): a trace is not an object")
        if t.get("type") == "reward" or t.get("transactionHash") is None:
            continue
        if str(t.get("blockHash", "")).lower() != block_hash:
            raise BadRpcResponse(f"trace_block({number}): a trace of block {str(t.get('blockHash'))[:10]}, "
                                 f"we hold {block_hash[:10]} (reorg in progress?)")
        tx_hash = str(t["transactionHash"]).lower()
        ordinal = ordinals[tx_hash] = ordinals.get(tx_hash, -1) + 1
        path = tuple(t.get("traceAddress") or ())
        if t.get("error") or any((tx_hash, path[:k]) in failed for k in range(len(path) + 1)):
            failed.add((tx_hash, path))
            continue
        if not path:
            continue
        action, result = t.get("action") or {}, t.get("result") or {}
        kind = t.get("type")
        if kind == "call" and action.get("callType") == "call":
            name, frm, to, value = "CALL", action.get("from"), action.get("to"), action.get("value")
        elif kind == "create":
            name, frm, to, value = "CREATE", action.get("from"), result.get("address"), action.get("value")
        elif kind == "suicide":
            name, frm, to, value = "SELFDESTRUCT", action.get("address"), action.get("refundAddress"), action.get("balance")
        else:
            continue
        frm, to, amount = str(frm or "").lower(), str(to or "").lower(), _int(value)
        if amount > 0 and (frm in wallets or to in wallets):
            try:
                tx_index = int(t["transactionPosition"])
            except (KeyError, TypeError, ValueError):
                raise BadRpcResponse(f"trace_block({number}): trace without transactionPosition") from None
            if tx_index >= len(tx_hashes) or tx_hashes[tx_index] != tx_hash:
                raise BadRpcResponse(f"trace_block({number}): transaction {tx_hash[:10]} is not at position {tx_index}")
            rows.append(_row(chain, number, block_hash, tx_hash, tx_index, ordinal, name, frm, to, amount, path))
    return rows


def _as_topic(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


def worth_tracing(block: dict, wallets: frozenset[str]) -> bool:
    """A transaction from or to a wallet or naming one in its input, or a log naming one (the block's bloom).

    A contract that pays a wallet nobody named in that block (a draw picking
    a stored winner, a timer) is missed this way: `trace_blocks = "all"`.
    """
    bare = [w[2:] for w in wallets]
    for tx in block.get("transactions") or []:
        if not isinstance(tx, dict):
            return True  # hashes only: nothing to rule it out with
        if str(tx.get("from", "")).lower() in wallets or str(tx.get("to", "")).lower() in wallets:
            return True
        data = str(tx.get("input") or tx.get("data") or "").lower()
        if len(data) > 10 and any(w in data for w in bare):
            return True
    bloom = block.get("logsBloom")
    if not isinstance(bloom, str) or len(bloom) != 514:
        return True  # no bloom to rule it out
    raw = bytes.fromhex(bloom[2:])
    return any(contains(raw, w) or contains(raw, _as_topic(w)) for w in wallets)


class Tracer:
    """Reads blocks' call trees from the endpoints that can, by the configured method."""

    def __init__(self, chain: str, mode: str, scope: str = "wallets") -> None:
        self.chain = chain
        self.mode = mode  # auto | callTracer | parity
        self.scope = scope  # wallets | all
        self.methods = [CALL_TRACER, PARITY] if mode == "auto" else [mode]
        self._cannot: set[tuple[str, str]] = set()  # (endpoint label, method) that answered "unsupported"
        self.disabled = False

    def selects(self, block: dict, wallets: frozenset[str]) -> bool:
        return not self.disabled and (self.scope == "all" or worth_tracing(block, wallets))

    async def transfers(self, rpc: EvmRpc, blocks: Iterable[dict], wallets: frozenset[str]) -> list[EventRow]:
        rows: list[EventRow] = []
        for block in blocks:
            if self.selects(block, wallets):
                rows += await self._block(rpc, block, wallets)
        return rows

    async def _block(self, rpc: EvmRpc, block: dict, wallets: frozenset[str]) -> list[EventRow]:
        number, block_hash = int(block["number"], 16), str(block["hash"]).lower()
        txs = [str(tx.get("hash", "")).lower() if isinstance(tx, dict) else str(tx).lower()
               for tx in block.get("transactions") or []]
        if not txs:
            return []
        for ep in sorted(rpc.endpoints, key=lambda e: e.score()):
            for method in self.methods:
                if (ep.label, method) in self._cannot:
                    continue
                try:
                    if method == CALL_TRACER:
                        res = await rpc.call_on(ep, "debug_traceBlockByHash", [block_hash, {"tracer": CALL_TRACER}])
                    else:
                        res = await rpc.call_on(ep, "trace_block", [hex(number)])
                except RpcError as exc:
                    if exc.kind in _NOT_TRACING:
                        log.warning("traces.endpoint_cannot_trace", chain=self.chain, endpoint=ep.label, method=method,
                                    error=str(exc)[:200])
                        self._cannot.add((ep.label, method))
                        continue
                    raise
                m.TRACED_BLOCKS.labels(self.chain, method).inc()
                if method == PARITY:
                    return parity_transfers(self.chain, number, block_hash, res, txs, wallets)
                return self._from_call_tracer(number, block_hash, res, txs, wallets)
        # No endpoint answers any method: "auto" goes on without traces, a
        # configured method is a configuration that cannot work.
        if self.mode == "auto":
            self.disabled = True
            log.warning("traces.unavailable", chain=self.chain,
                        detail="no endpoint answers debug_traceBlockByHash or trace_block; internal value "
                               "transfers are not indexed and show up as reconciliation differences")
            return []
        raise ConfigError(f"chains.{self.chain}.traces: no endpoint answers "
                          f"{'debug_traceBlockByHash' if self.mode == CALL_TRACER else 'trace_block'}")

    def _from_call_tracer(self, number: int, block_hash: str, res: object, txs: list[str],
                          wallets: frozenset[str]) -> list[EventRow]:
        if not isinstance(res, list) or len(res) != len(txs):
            raise BadRpcResponse(f"debug_traceBlockByHash({number}): {len(res) if isinstance(res, list) else 'no'} "
                                 f"traces for {len(txs)} transactions")
        rows: list[EventRow] = []
        for i, (entry, tx_hash) in enumerate(zip(res, txs)):
            if not isinstance(entry, dict) or "result" not in entry:
                raise BadRpcResponse(f"debug_traceBlockByHash({number}): trace {i} has no result ({str(entry)[:80]})")
            if entry.get("txHash") and str(entry["txHash"]).lower() != tx_hash:
                raise BadRpcResponse(f"debug_traceBlockByHash({number}): trace {i} is of another transaction")
            rows += call_transfers(self.chain, number, block_hash, tx_hash, i, entry["result"], wallets)
        return rows
