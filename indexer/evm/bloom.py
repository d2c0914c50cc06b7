"""Header `logsBloom` checks: pure functions, no I/O.

A block header commits to a 2048-bit bloom of every log's address and
topics (yellow paper, section 4.3.1: three bits per item, each from a pair
of bytes of its keccak). A returned log whose bits are missing from its
block's bloom cannot be in that block: the answer is a lie. A bloom that
has the bits of one of our addresses and one of our topic0s while the
node returned no log for that block is suspicious (blooms have false
positives, so it is a reason to ask again, not proof).
"""

from __future__ import annotations

from functools import lru_cache

# eth_hash directly (what eth_utils.keccak calls): importing eth_utils costs
# tens of milliseconds at start-up for this one function.
from eth_hash.auto import keccak

BLOOM_BYTES = 256


@lru_cache(maxsize=65536)  # factory children: thousands of addresses checked per block
def bloom_bits(item_hex: str) -> tuple[tuple[int, int], ...]:
    """(byte index, mask) of the three bloom bits of an address or topic."""
    h = keccak(bytes.fromhex(item_hex[2:] if item_hex.startswith("0x") else item_hex))
    out = []
    for i in (0, 2, 4):
        bit = ((h[i] << 8) | h[i + 1]) & 2047
        out.append((BLOOM_BYTES - 1 - bit // 8, 1 << (bit % 8)))
    return tuple(out)


def parse_bloom(raw: object) -> bytes | None:
    """The bloom bytes of a header's `logsBloom`, or None when absent or malformed."""
    if not isinstance(raw, str) or not raw.startswith("0x") or len(raw) != 2 + 2 * BLOOM_BYTES:
        return None
    try:
        return bytes.fromhex(raw[2:])
    except ValueError:
        return None


def contains(bloom: bytes, item_hex: str) -> bool:
    return all(bloom[i] & mask for i, mask in bloom_bits(item_hex.lower()))


def log_in_bloom(bloom: bytes, log: dict) -> bool:
    """Are the address and every topic of `log` in the bloom?"""
    items = [str(log.get("address", ""))] + [str(t) for t in (log.get("topics") or [])]
    return all(contains(bloom, x) for x in items if x)


def may_match(bloom: bytes, addresses: list[str], topic0s: list[str]) -> bool:
    """Could the block hold a log our filter selects (some address and some topic0)?"""
    return any(contains(bloom, a) for a in addresses) and any(contains(bloom, t) for t in topic0s)
