"""ABI decoding of raw logs into EventRows (pure, no I/O).

The hot path decodes the common case -- events whose non-indexed values are
all static words (uint, int, address, bool, bytesN), like ERC-20 Transfer --
by slicing the hex string. eth_abi's general decoder costs tens of
microseconds per call, which alone would cap a backfill far below the
throughput target; it is still used for anything dynamic (strings, bytes,
arrays, tuples), so every type the ABI allows decodes correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from eth_abi import decode as abi_decode
from eth_utils import keccak

from .errors import BadRpcResponse
from .models import EventRow, RawLogRow

WordDecoder = Callable[[str], Any]


def _uint(word: str) -> str:
    return str(int(word, 16))


def _int_decoder(bits: int) -> WordDecoder:
    def dec(word: str) -> str:
        v = int(word, 16)
        if v >= 1 << 255:
            v -= 1 << 256
        if not -(1 << (bits - 1)) <= v < (1 << (bits - 1)):
            raise ValueError(f"int{bits} out of range")
        return str(v)

    return dec


def _address(word: str) -> str:
    if word[:24].strip("0"):
        raise ValueError("address word has non-zero high bytes")
    return "0x" + word[24:]


def _bool(word: str) -> bool:
    v = int(word, 16)
    if v > 1:
        raise ValueError("bool word is not 0 or 1")
    return v == 1


def _bytes_n(n: int) -> WordDecoder:
    def dec(word: str) -> str:
        return "0x" + word[: 2 * n]

    return dec


def _hashed(word: str) -> str:
    # Indexed dynamic values are stored as their keccak hash: keep the hash.
    return "0x" + word


def static_word_decoder(abi_type: str) -> WordDecoder | None:
    if abi_type.startswith("uint"):
        return _uint
    if abi_type.startswith("int"):
        return _int_decoder(int(abi_type[3:] or 256))
    if abi_type == "address":
        return _address
    if abi_type == "bool":
        return _bool
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        return _bytes_n(int(abi_type[5:]))
    return None


def canonical_type(inp: dict) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(canonical_type(c) for c in inp.get("components", [])) + ")" + t[5:]
    return t


def _normalize(value: Any, inp: dict) -> Any:
    """eth_abi output → JSON: ints as decimal strings, bytes and addresses as lowercase 0x hex."""
    t = inp["type"]
    if t.endswith("]"):
        inner = dict(inp, type=t[: t.rindex("[")])
        return [_normalize(v, inner) for v in value]
    if t == "tuple":
        comps = inp.get("components", [])
        return {(c.get("name") or f"field{i}"): _normalize(v, c) for i, (c, v) in enumerate(zip(comps, value))}
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + value.hex()
    if isinstance(value, str) and t == "address":
        return value.lower()
    return value


@dataclass(frozen=True)
class EventSpec:
    name: str
    signature: str
    topic0: str
    indexed: tuple[dict, ...]
    data: tuple[dict, ...]
    names: tuple[str, ...]  # in ABI order
    order: tuple[tuple[bool, int], ...]  # per ABI input: (is_indexed, position)
    topic_decoders: tuple[WordDecoder, ...]
    data_fast: tuple[WordDecoder, ...] | None  # None: data needs eth_abi
    data_types: tuple[str, ...]

    @classmethod
    def from_abi(cls, item: dict) -> "EventSpec":
        inputs = item.get("inputs", [])
        sig = f"{item['name']}({','.join(canonical_type(i) for i in inputs)})"
        indexed = tuple(i for i in inputs if i.get("indexed"))
        data = tuple(i for i in inputs if not i.get("indexed"))
        names, order, ii, di = [], [], 0, 0
        for n, inp in enumerate(inputs):
            names.append(inp.get("name") or f"arg{n}")
            if inp.get("indexed"):
                order.append((True, ii))
                ii += 1
            else:
                order.append((False, di))
                di += 1
        topic_decoders = tuple(static_word_decoder(i["type"]) or _hashed for i in indexed)
        fast = [static_word_decoder(i["type"]) for i in data]
        return cls(
            name=item["name"],
            signature=sig,
            topic0="0x" + keccak(text=sig).hex(),
            indexed=indexed,
            data=data,
            names=tuple(names),
            order=tuple(order),
            topic_decoders=topic_decoders,
            data_fast=None if any(f is None for f in fast) else tuple(fast),  # type: ignore[arg-type]
            data_types=tuple(canonical_type(i) for i in data),
        )

    def decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(f"{len(topics)} topics, {self.signature} has {len(self.indexed)} indexed inputs")
        tvals = [dec(t[2:]) for dec, t in zip(self.topic_decoders, topics[1:])]
        body = data[2:]
        if self.data_fast is not None:
            if len(body) != 64 * len(self.data_fast):
                raise ValueError(f"data is {len(body) // 2} bytes, {self.signature} needs {32 * len(self.data_fast)}")
            dvals = [dec(body[64 * i: 64 * i + 64]) for i, dec in enumerate(self.data_fast)]
        else:
            raw = abi_decode(list(self.data_types), bytes.fromhex(body))
            dvals = [_normalize(v, inp) for v, inp in zip(raw, self.data)]
        return {name: (tvals[pos] if is_idx else dvals[pos]) for name, (is_idx, pos) in zip(self.names, self.order)}


class LogDecoder:
    """Decoders for the contracts of one chain, keyed by address and topic0."""

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.by_address: dict[str, dict[str, EventSpec]] = {}

    def add_contract(self, address: str, abi: Iterable[dict], events: Iterable[str] | None = None) -> None:
        wanted = set(events) if events is not None else None
        specs = self.by_address.setdefault(address.lower(), {})
        for item in abi:
            if item.get("type") != "event" or item.get("anonymous"):
                continue
            if wanted is not None and item["name"] not in wanted:
                continue
            spec = EventSpec.from_abi(item)
            specs[spec.topic0] = spec

    @property
    def addresses(self) -> list[str]:
        return sorted(self.by_address)

    @property
    def topic0s(self) -> list[str]:
        return sorted({t for specs in self.by_address.values() for t in specs})

    def decode_logs(self, logs: Sequence[dict]) -> tuple[list[EventRow], list[RawLogRow]]:
        """Decode a getLogs result; logs of other events are dropped, bad ones kept raw."""
        events: list[EventRow] = []
        raw: list[RawLogRow] = []
        chain = self.chain
        by_address = self.by_address
        dumps = orjson.dumps
        for log in logs:
            try:
                address = log["address"].lower()
                topics = log["topics"]
                data = log["data"]
                block_number = int(log["blockNumber"], 16)
                block_hash = log["blockHash"].lower()
                tx_hash = log["transactionHash"].lower()
                tx_index = int(log["transactionIndex"], 16)
                log_index = int(log["logIndex"], 16)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise BadRpcResponse(f"eth_getLogs: log entry field {exc.args[0] if exc.args else exc!r} missing or malformed") from None
            if log.get("removed"):
                raise BadRpcResponse("eth_getLogs: returned a removed log for a block range")
            specs = by_address.get(address)
            if specs is None or not topics:
                continue
            spec = specs.get(topics[0].lower())
            if spec is None:
                continue
            try:
                args = spec.decode([t.lower() for t in topics], data.lower())
            except Exception as exc:  # any decoding failure: keep the log, count it, go on
                raw.append(RawLogRow(chain, block_number, block_hash, tx_hash, tx_index, log_index, address,
                                     [t.lower() for t in topics], data.lower(), f"{spec.name}: {exc}"[:500]))
                continue
            events.append(EventRow(chain, block_number, block_hash, tx_hash, tx_index, log_index, address,
                                   spec.name, dumps(args).decode()))
        return events, raw
