"""Plain data passed between the follower, the decoder and the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


class EventRow(NamedTuple):
    """One decoded event, in the column order of the `events` table.

    `args` is already JSON text: the hot path encodes it once, in the
    decoder, and the store copies it as is.
    """

    chain: str
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    address: str
    event: str
    args: str


class RawLogRow(NamedTuple):
    chain: str
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    address: str
    topics: list[str]
    data: str
    reason: str


class ChildRow(NamedTuple):
    """A contract a factory announced (factory_children, without the chain)."""

    address: str
    factory: str  # the factory's contract name
    factory_address: str
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int


class BlockRow(NamedTuple):
    number: int
    hash: str
    parent_hash: str
    timestamp: int | None
    bloom: bytes | None = None  # the header's logsBloom (EVM), when it came with one


@dataclass(frozen=True)
class Cursor:
    number: int
    hash: str


@dataclass
class ChainState:
    chain: str
    cursor: Cursor | None
    final_number: int | None
    halted_reason: str | None
    status: dict[str, Any]
