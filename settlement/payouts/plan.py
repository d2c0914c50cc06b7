"""Pure payout decisions, the same on every chain: which queued requests go
into the next batch under the count, amount and daily caps and the approval
threshold.

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
    approval_threshold: int | None = None,
) -> list[Pending]:
    """Requests for the next batch, or [] when every lane should wait.

    With an approval threshold the queue is two lanes that never share a
    batch: requests at or below the threshold form batches whose total stays
    at or below it (so they are `ready` at once and never wait for an
    approval someone else's large request needs), requests above it form
    batches that wait for approval. The lane whose oldest request is older
    goes first; if it should wait, the other lane is tried.
    """
    if approval_threshold is None:
        return _one_lane(pending, max_recipients=max_recipients, max_total=max_total, daily_left=daily_left,
                         wait_seconds=wait_seconds)
    small = [p for p in pending if p.amount <= approval_threshold]
    large = [p for p in pending if p.amount > approval_threshold]
    small_total = approval_threshold if max_total is None else min(max_total, approval_threshold)
    lanes = [(small, small_total), (large, max_total)]
    lanes.sort(key=lambda lane: lane[0][0].id if lane[0] else float("inf"))
    for lane, cap in lanes:
        chosen = _one_lane(lane, max_recipients=max_recipients, max_total=cap, daily_left=daily_left,
                           wait_seconds=wait_seconds)
        if chosen:
            return chosen
    return []


def _one_lane(
    pending: Sequence[Pending],
    *,
    max_recipients: int,
    max_total: int | None,
    daily_left: int | None,
    wait_seconds: float,
) -> list[Pending]:
    """Requests (in queue order) for the next batch of one lane, or [] when it should wait.

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
