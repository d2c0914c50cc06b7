"""Adaptive eth_getLogs range sizing (pure, no I/O).

Providers cap getLogs by block span, by result count or by response size,
each with its own error text. The sizer grows on success, shrinks on
"too large" and timeouts, and jumps to the span a provider hints at.
"""

from __future__ import annotations

import re

# Error texts seen from common nodes and providers, and what they hint at.
_HINT_RANGE = re.compile(r"\[\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*\]")
_HINT_SPAN = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"maximum is set to\s*([\d,]+)",  # avalanche/coreth (Flare): requested too many blocks from X to Y, maximum is set to 30
        r"exceed(?:s|ed)? maximum block range:?\s*([\d,]+)",  # bsc/geth forks
        r"block range (?:is )?(?:too large|too wide|limit)[^\d]*(?:max(?:imum)?|limit)?[^\d]*([\d,]+)",
        r"limited to (?:a )?([\d,]+)(?:\s*-?\s*blocks?)?(?: block)? range",  # eth_getLogs is limited to a 10,000 range
        r"range (?:should|must) (?:not )?(?:exceed|be less than|be at most)\s*([\d,]+)",
        r"(?:up to|max(?:imum)?(?: of)?) (?:a )?([\d,]+)[ -]?(?:k )?blocks?",  # up to a 2K block range / max 1000 blocks
        r"max(?:imum)? (?:allowed )?(?:number of )?(?:requested )?blocks? (?:range )?(?:is|of)?\s*([\d,]+)",
        r"range (?:is )?too large,? max(?:imum)? is\s*([\d,]+)",
    )
]
_K_SPAN = re.compile(r"up to a ([\d]+)K block range", re.IGNORECASE)
_TOO_LARGE = re.compile(
    r"(too many|more than [\d,]+ results|returned more than|response size|size exceed|limit exceeded|"
    r"block range|range (?:is )?too|too wide|too large|maximum block range|exceeds? the limit|"
    r"requested too many blocks|max results|result window|query (?:returned|exceeds))",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"(timeout|timed out|deadline exceeded|took too long)", re.IGNORECASE)


def _num(text: str) -> int:
    text = text.replace(",", "")
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def looks_range_too_large(message: str) -> bool:
    return bool(_TOO_LARGE.search(message))


def looks_timeout(message: str) -> bool:
    return bool(_TIMEOUT.search(message))


def parse_range_hint(message: str) -> tuple[int, int] | int | None:
    """A suggested (from, to) block range, a maximum span, or None."""
    m = _HINT_RANGE.search(message)
    if m:
        lo, hi = _num(m.group(1)), _num(m.group(2))
        if hi >= lo:
            return (lo, hi)
    m = _K_SPAN.search(message)
    if m:
        return int(m.group(1)) * 1000
    for pat in _HINT_SPAN:
        m = pat.search(message)
        if m:
            span = _num(m.group(1))
            if span > 0:
                return span
    return None


class RangeSizer:
    """How many blocks the next eth_getLogs asks for."""

    def __init__(self, initial: int, *, minimum: int = 1, maximum: int = 10_000) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.size = max(self.minimum, min(initial, self.maximum))
        self._ceiling = self.maximum  # learnt from provider hints; grows back slowly

    def next_range(self, start: int, limit: int) -> tuple[int, int]:
        return start, min(limit, start + self.size - 1)

    def on_success(self, span: int, results: int, target_results: int = 10_000) -> None:
        # Grow fast while responses are small; stay put when they are big.
        if results < target_results // 4 and span >= self.size:
            self.size = min(self._ceiling, self.size * 2)
        elif results > target_results:
            self.size = max(self.minimum, self.size // 2)

    def on_too_large(self, span: int, hint: tuple[int, int] | int | None = None) -> None:
        if isinstance(hint, tuple):
            new = hint[1] - hint[0] + 1
        elif isinstance(hint, int):
            new = hint
            self._ceiling = max(self.minimum, min(self._ceiling, hint))
        else:
            new = span // 2
        self.size = max(self.minimum, min(new, span - 1 if span > 1 else 1, self._ceiling))

    def on_timeout(self, span: int) -> None:
        self.size = max(self.minimum, span // 2)
