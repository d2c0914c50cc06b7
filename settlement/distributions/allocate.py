"""Exact integer pro-rata allocation (pure, no I/O).

`allocate(total, weights, minimum=, seed=)` splits `total` base units over
`(recipient, weight)` pairs by the largest-remainder (Hamilton) method:

1. each recipient gets `floor(total * w / W)` (W = sum of weights);
2. the units left over (fewer than the number of recipients) go one each to
   the recipients with the largest remainders `total * w mod W`;
3. ties between equal remainders are broken by `sha256(seed + recipient)`,
   then by the recipient itself: deterministic, independent of input order,
   and not biased towards addresses that sort first (the seed is the
   distribution id, so the winner of a tie differs between distributions).

So the shares sum to `total` exactly and every share is within one unit of
its exact value `total * w / W` (strictly: |share - exact| < 1).

`minimum`: a share below it is not paid (it would cost more gas than it is
worth); the sum of such shares is the `remainder`, which the caller books to
the distribution's named remainder account. Shares are recomputed over
nobody: dropping a small share never changes anyone else's share, so the
result stays checkable by anyone from the snapshot alone. Shares of zero
(a tiny total) are dropped too and add nothing to the remainder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from config.errors import FieldError

MAX_AMOUNT = 10**78 - 1


class AllocationError(FieldError):
    """allocation refused"""


@dataclass(frozen=True)
class Allocation:
    shares: tuple[tuple[str, int], ...]  # (recipient, amount > 0), sorted by recipient
    remainder: int  # sum of shares below the minimum
    total: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.shares)


def _tie_key(seed: str, recipient: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{recipient}".encode()).digest()


def check_weights(weights: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Validated (recipient, weight) pairs: unique recipients, integer weights >= 0."""
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    for i, (recipient, weight) in enumerate(weights):
        if not isinstance(recipient, str) or not recipient:
            raise AllocationError(f"weights[{i}].recipient", "must be a non-empty string")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise AllocationError(f"weights[{i}].weight", "must be an integer >= 0")
        if recipient in seen:
            raise AllocationError(f"weights[{i}].recipient", f"{recipient} appears twice")
        seen.add(recipient)
        if weight:
            out.append((recipient, weight))
    return out


def allocate(total: int, weights: Iterable[tuple[str, int]], *, minimum: int = 0, seed: str = "") -> Allocation:
    if isinstance(total, bool) or not isinstance(total, int) or not 0 <= total <= MAX_AMOUNT:
        raise AllocationError("total", f"must be an integer from 0 to {MAX_AMOUNT}")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise AllocationError("minimum", "must be an integer >= 0")
    pairs = check_weights(weights)
    if not pairs:
        raise AllocationError("weights", "no recipient has a weight above zero")
    big_w = sum(w for _, w in pairs)
    base: dict[str, int] = {}
    rems: list[tuple[int, bytes, str]] = []
    for recipient, w in pairs:
        q, r = divmod(total * w, big_w)
        base[recipient] = q
        rems.append((-r, _tie_key(seed, recipient), recipient))
    left = total - sum(base.values())
    rems.sort()
    for _, _, recipient in rems[:left]:
        base[recipient] += 1
    remainder = 0
    shares = []
    for recipient in sorted(base):
        amount = base[recipient]
        if amount and amount < minimum:
            remainder += amount
        elif amount:
            shares.append((recipient, amount))
    return Allocation(tuple(shares), remainder, total)
