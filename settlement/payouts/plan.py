"""Pure payout decisions, the same on every chain: which queued requests go
into the next batch under the count, amount and daily caps.

No I/O here, so every cap is unit-tested directly
(tests/unit/settlement/payouts/test_plan.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Pending:
    id: int
    recipient: str
    amount: int
    age_seconds: float


def next_batch(
    pending: Sequence[Pending],
    *,
    max_recipients: int,
    max_total: int | None,
    daily_left: int | None,
    wait_seconds: float,
) -> list[Pending]:
    """Requests (in queue order) for the next batch, or [] when it should wait.

    A batch is cut when it is full (count, total or the day's cap binds) or
    its oldest request waited `wait_seconds`. The queue order is kept: a
    request that does not fit ends the batch rather than being skipped, so
    a large request is never starved by smaller ones behind it.
    """
    if max_recipients <= 0 or not pending:
        return []
    chosen: list[Pending] = []
    total = 0
    full = False
    for p in pending:
        if len(chosen) == max_recipients:
            full = True
            break
        if max_total is not None and total + p.amount > max_total:
            full = True
            break
        if daily_left is not None and total + p.amount > daily_left:
            full = True
            break
        chosen.append(p)
        total += p.amount
    if not chosen:
        return []
    if full or len(chosen) == max_recipients or max(p.age_seconds for p in chosen) >= wait_seconds:
        return chosen
    return []
