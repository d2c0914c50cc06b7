"""ABI decoding of raw logs into EventRows (pure, no I/O).

The hot path decodes the common case -- events whose non-indexed values are
all static words (uint, int, address, bool, bytesN), like ERC-20 Transfer --
by slicing the hex string. eth_abi's general decoder costs tens of
microseconds per call, which alone would cap a backfill far below the
throughput target; it is still used for anything dynamic (strings, bytes,
arrays, tuples), so every type the ABI allows decodes correctly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from eth_hash.auto import keccak  # what eth_utils.keccak calls, without importing eth_utils

from indexer.errors import BadRpcResponse
from indexer.evm.logs import Log, as_dict, as_logs
from indexer.models import EventRow, RawLogRow

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


_ONE_WORD = re.compile(r"u?int\d*|address|bool|bytes\d+")  # arrays ("uint256[]", "int16[2]") are not one word


def static_word_decoder(abi_type: str) -> WordDecoder | None:
    if not _ONE_WORD.fullmatch(abi_type):
        return None
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


_Z24 = "0" * 24


def _int_json(bits: int) -> Callable[[str], str]:
    dec = _int_decoder(bits)
    return lambda word: '"' + dec(word) + '"'


def _compile_json_decoder(name: str, inputs: list[dict]) -> Callable[[Sequence[str], str], str] | None:
    """Generate a function (topics, data) -> args JSON for all-static events.

    Straight-line code with the layout baked in runs several times faster
    than a generic loop; this is the per-log hot path of a backfill. Each
    value is sliced straight out of its topic or data word and the JSON is
    one f-string. Only literals derived from the ABI enter the source: key
    names and other text are passed in as variables, never spliced in.
    """
    n_topics = 1 + sum(1 for i in inputs if i.get("indexed"))
    n_words = sum(1 for i in inputs if not i.get("indexed"))
    env: dict[str, Any] = {"_Z24": _Z24, "_bool": _bool, "_err": ValueError, "_T": "true", "_F": "false"}
    checks, parts, ti, di = [], [], 1, 0
    for n, inp in enumerate(inputs):
        t = inp["type"]
        if inp.get("indexed"):
            src, base = f"topics[{ti}]", 2
            ti += 1
        else:
            src, base = "data", 2 + 64 * di
            di += 1

        def word(lo: int = 0, hi: int = 64) -> str:
            return f"{src}[{base + lo}:{base + hi}]"  # noqa: B023 - used at once, in this iteration

        if inp.get("indexed") and static_word_decoder(t) is None:
            expr = f'"0x{{{word()}.lower()}}"'  # hashed dynamic value
        elif static_word_decoder(t) is None:
            return None
        elif t.startswith("uint"):
            bits = int(t[4:] or 256)
            if bits < 256:
                checks.append(f"if int({word()}, 16) >> {bits}: raise _err('uint{bits} out of range')")
            expr = f'"{{int({word()}, 16)}}"'
        elif t.startswith("int"):
            env[f"_int{n}"] = _int_json(int(t[3:] or 256))
            expr = f"{{_int{n}({word()})}}"
        elif t == "address":
            checks.append(f"if {word(0, 24)} != _Z24: raise _err('address word has non-zero high bytes')")
            expr = f'"0x{{{word(24, 64)}.lower()}}"'
        elif t == "bool":
            expr = f"{{_T if _bool({word()}) else _F}}"
        elif t.startswith("bytes") and t[5:].isdigit():
            expr = f'"0x{{{word(0, 2 * int(t[5:]))}.lower()}}"'
        else:
            return None
        env[f"_k{n}"] = ("{" if not parts else ",") + orjson.dumps(inp.get("name") or f"arg{n}").decode() + ":"
        parts.append(f"{{_k{n}}}" + expr)
    body = "f'" + "".join(parts) + "}}'" if parts else "'{}'"
    src = (
        "def decode_json(topics, data):\n"
        f"    if len(topics) != {n_topics}: raise _err(f'{{len(topics)}} topics, expected {n_topics}')\n"
        f"    if len(data) != {2 + 64 * n_words}: raise _err(f'data is {{(len(data) - 2) // 2}} bytes, expected {32 * n_words}')\n"
        + "".join(f"    {c}\n" for c in checks)
        + f"    return {body}\n"
    )
    exec(compile(src, f"<event {name}>", "exec"), env)  # noqa: S102 - see docstring
    return env["decode_json"]


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
    fast_json: Callable[[Sequence[str], str], str] | None = None

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
            topic0="0x" + keccak(sig.encode()).hex(),
            indexed=indexed,
            data=data,
            names=tuple(names),
            order=tuple(order),
            topic_decoders=topic_decoders,
            data_fast=None if any(f is None for f in fast) else tuple(fast),  # type: ignore[arg-type]
            data_types=tuple(canonical_type(i) for i in data),
            fast_json=_compile_json_decoder(item["name"], inputs),
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
            # Imported here: eth_abi costs ~0.1 s of start-up and only dynamic types need it.
            from eth_abi import decode as abi_decode

            raw = abi_decode(list(self.data_types), bytes.fromhex(body))
            dvals = [_normalize(v, inp) for v, inp in zip(raw, self.data)]
        return {name: (tvals[pos] if is_idx else dvals[pos]) for name, (is_idx, pos) in zip(self.names, self.order)}

    def decode_json(self, topics: Sequence[str], data: str) -> str:
        if self.fast_json is not None:
            return self.fast_json(topics, data)
        return orjson.dumps(self.decode([t.lower() for t in topics], data.lower())).decode()


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

    def alias(self, address: str, specs: dict[str, EventSpec]) -> None:
        """Decode `address` with `specs`, shared, not copied (every child of a factory)."""
        self.by_address[address.lower()] = specs

    def remove(self, address: str) -> None:
        self.by_address.pop(address.lower(), None)

    @property
    def addresses(self) -> list[str]:
        return sorted(self.by_address)

    @property
    def topic0s(self) -> list[str]:
        return sorted({t for specs in self.by_address.values() for t in specs})

    def decode_logs(self, logs: Sequence[Any]) -> tuple[list[EventRow], list[RawLogRow]]:
        """Decode a getLogs result; logs of other events are dropped, bad ones kept raw.

        Rows are built as plain tuples in EventRow's column order (the store
        copies them as they are): this loop runs once per log in a backfill.
        Entries are Log records (indexer/evm/logs.py); dicts (receipts, a
        re-query) are made records first, which checks every field's type.
        """
        if logs and not isinstance(logs[0], Log):
            typed = as_logs(list(logs))
            if typed is None:
                bad = next((lg for lg in logs if as_logs([lg]) is None), None)
                raise BadRpcResponse(f"eth_getLogs: log entry field {_bad_log_field(bad)} missing or malformed")
            logs = typed
        events: list = []
        raw: list[RawLogRow] = []
        chain = self.chain
        by_address = self.by_address
        hexint: dict[str, int] = {}  # block numbers and indexes repeat within a response
        lowered: dict[str, str] = {}  # so do block hashes, tx hashes and addresses
        append = events.append
        log = None
        try:
            for log in logs:
                if log.removed:
                    raise BadRpcResponse("eth_getLogs: returned a removed log for a block range")
                address = log.address
                address = lowered.get(address) or lowered.setdefault(address, address.lower())
                specs = by_address.get(address)
                topics = log.topics
                if specs is None or not topics:
                    continue
                spec = specs.get(topics[0]) or specs.get(topics[0].lower())
                if spec is None:
                    continue
                bn, bh, th, ti = log.blockNumber, log.blockHash, log.transactionHash, log.transactionIndex
                block_number = hexint.get(bn)
                if block_number is None:
                    block_number = hexint[bn] = int(bn, 16)
                tx_index = hexint.get(ti)
                if tx_index is None:
                    tx_index = hexint[ti] = int(ti, 16)
                log_index = int(log.logIndex, 16)
                block_hash = lowered.get(bh) or lowered.setdefault(bh, bh.lower())
                tx_hash = lowered.get(th) or lowered.setdefault(th, th.lower())
                data = log.data
                try:
                    args = spec.decode_json(topics, data)
                except Exception as exc:  # any decoding failure: keep the log, count it, go on
                    raw.append(RawLogRow(chain, block_number, block_hash, tx_hash, tx_index, log_index, address,
                                         [t.lower() for t in topics], data.lower(), f"{spec.name}: {exc}"[:500]))
                    continue
                append((chain, block_number, block_hash, tx_hash, tx_index, log_index, address, spec.name, args))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            where = _bad_log_field(as_dict(log)) if log is not None else "(the result itself)"
            raise BadRpcResponse(f"eth_getLogs: log entry field {where} missing or malformed") from None
        return events, raw


_LOG_FIELDS = (
    ("address", lambda v: isinstance(v, str) and len(v) == 42),
    ("topics", lambda v: isinstance(v, list) and all(isinstance(t, str) and len(t) == 66 for t in v)),
    ("data", lambda v: isinstance(v, str) and v[:2] in ("0x", "0X")),
    ("blockNumber", lambda v: _is_quantity(v)),
    ("blockHash", lambda v: isinstance(v, str) and len(v) == 66),
    ("transactionHash", lambda v: isinstance(v, str) and len(v) == 66),
    ("transactionIndex", lambda v: _is_quantity(v)),
    ("logIndex", lambda v: _is_quantity(v)),
)


def _is_quantity(v: object) -> bool:
    try:
        return isinstance(v, str) and int(v, 16) >= 0
    except ValueError:
        return False


def _bad_log_field(log: object) -> str:
    """Which field of a log entry is wrong: the slow path, only to name it in the error."""
    if not isinstance(log, dict):
        return f"(the entry is a {type(log).__name__}, not an object)"
    for name, ok in _LOG_FIELDS:
        if not ok(log.get(name)):
            return repr(name)
    return "(unknown)"
