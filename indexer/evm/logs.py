"""A log entry of eth_getLogs, parsed straight into a typed record.

A backfill parses hundreds of thousands of log objects; into a dict each
costs about as much again as decoding it. msgspec parses the answer into
these records (only the fields we read, types checked on the way) at about
0.6x the time of a dict parse, and attribute access is cheaper than dict
lookups in the decoder's loop. Everything else that reads a log by key
(`log["blockNumber"]`, `log.get("blockHash")`) works on both kinds.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Log(msgspec.Struct, frozen=True, gc=False):
    address: str
    topics: list[str]
    data: str
    blockNumber: str  # noqa: N815 - the JSON-RPC names, so the decoder maps fields one to one
    blockHash: str  # noqa: N815
    transactionHash: str  # noqa: N815
    transactionIndex: str  # noqa: N815
    logIndex: str  # noqa: N815
    removed: bool = False

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


class _Answer(msgspec.Struct, gc=False):
    jsonrpc: str = "2.0"
    id: Any = None
    result: list[Log] | None = None
    error: Any = None


_ANSWER = msgspec.json.Decoder(_Answer)


def parse_logs_answer(raw: bytes) -> dict | None:
    """A single eth_getLogs answer with a list of well-formed logs, or None (parse it the general way).

    Anything else (an error, a result that is not a list, a log missing a
    field or holding a wrong type) goes the general way, so its error
    message names what is wrong exactly as before.
    """
    try:
        ans = _ANSWER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if ans.result is None or ans.error is not None:
        return None
    return {"jsonrpc": ans.jsonrpc, "id": ans.id, "result": ans.result}


def as_logs(entries: list) -> list[Log] | None:
    """Dict log entries (receipts, a re-query) as Log records, or None when one is malformed."""
    try:
        return msgspec.convert(entries, list[Log], from_attributes=False)
    except msgspec.ValidationError:
        return None


def as_dict(entry: Any) -> Any:
    return msgspec.structs.asdict(entry) if isinstance(entry, Log) else entry
