"""Adaptive range sizing (pure, no I/O), shared by the EVM and XRPL followers.

The sizer grows on success, shrinks on "too large" and timeouts, and jumps
to the span a provider hints at (see indexer/evm/provider_errors.py).
"""

from __future__ import annotations

# Logs per eth_getLogs answer the sizer aims for: big enough that per-range
# costs (round trips, the commit) vanish in a backfill, small enough to keep
# memory flat (a few tens of MB per range in flight). Providers that cap
# results lower say so, and the sizer shrinks to their cap.
TARGET_RESULTS = 25_000


class RangeSizer:
    """How many blocks the next eth_getLogs asks for."""

    def __init__(self, initial: int, *, minimum: int = 1, maximum: int = 10_000) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.size = max(self.minimum, min(initial, self.maximum))
        # A provider's stated maximum span, once seen, caps growth for good:
        # asking past it again would only buy another refusal.
        self.ceiling = self.maximum

    def next_range(self, start: int, limit: int) -> tuple[int, int]:
        return start, min(limit, start + self.size - 1)

    def on_success(self, span: int, results: int, target_results: int = TARGET_RESULTS) -> None:
        # Grow fast while responses are small; stay put when they are big.
        if results < target_results // 2 and span >= self.size:
            self.size = min(self.ceiling, self.size * 2)
        elif results > target_results:
            self.size = max(self.minimum, self.size // 2)

    def on_too_large(self, span: int, hint: tuple[int, int] | int | None = None) -> None:
        if isinstance(hint, tuple):
            target = hint[1] - hint[0] + 1
        elif isinstance(hint, int):
            self.ceiling = max(1, min(self.ceiling, hint))
            target = hint
        else:
            # No hint: halve, but not below the configured floor.
            target = max(self.minimum, span // 2)
        self._shrink(span, min(target, self.ceiling))

    def on_timeout(self, span: int) -> None:
        self._shrink(span, max(self.minimum, span // 2))

    def _shrink(self, span: int, target: int) -> None:
        # Always strictly below the refused span, floor or not: otherwise a
        # refusal at the floor would be asked again forever.
        self.size = max(1, min(target, span - 1))
