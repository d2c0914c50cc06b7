"""What EVM providers say when eth_getLogs asks too much (pure, no I/O).

Each provider caps getLogs by block span, result count or response size,
with its own error text; these patterns classify the text and pull out the
range or span it hints at.
"""

from __future__ import annotations

import re

# What providers say when eth_getLogs asks too much, and what they hint at.
# Sources: the providers' error texts as collected by indexers that meet
# them (ponder's getLogsRetryHelper tests, Chainlink, The Graph) and the
# node code (coreth, bsc, ethermint, frontier). A hint is either a block
# range that will work or a maximum span; texts without one mean "halve".
_NUM = r"(\d[\d,.]*\s*[kK]?)"
_HEX = r"(0x[0-9a-fA-F]+)"
_HINT_RANGES = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"\[\s*{_HEX}\s*,\s*{_HEX}\s*\]",  # alchemy "this block range should work: [0x.., 0x..]", infura, zksync
        r"retry with the range (\d+)\s*-\s*(\d+)",  # llamarpc, ankr: "query exceeds max results 20000, retry with the range 1-2"
    )
]
_HINT_SPANS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"maximum is set to {_NUM}",  # coreth (Avalanche, Flare): requested too many blocks from X to Y, maximum is set to N
        rf"exceeds the range allowed for your plan \(\d+ > {_NUM}\)",  # blast
        rf"maximum \[from, to\] blocks distance:?\s*{_NUM}",  # ethermint (Cronos), cosmos-evm
        rf"exceed(?:s|ed)? (?:the )?max(?:imum)? block range:?\s*{_NUM}",  # bsc, hyperliquid "query exceeds max block range N"
        rf"maximum block range:?\s*{_NUM}",  # publicnode
        rf"limited to (?:a )?{_NUM}(?:\s*-?\s*blocks?)?\s*(?:block )?range",  # quicknode "limited to a 10,000 range", blockpi
        rf"limited to {_NUM} blocks?",
        rf"maximum allowed number of requested blocks is {_NUM}",  # thirdweb
        rf"block range is too wide \((?:maximum|max)\s*{_NUM}\)",  # moonbeam / frontier
        rf"range is too large, max is {_NUM}\s*blocks?",  # merkle "eth_getLogs range is too large, max is 10k blocks"
        rf"limit the query to at most {_NUM}\s*blocks",  # coinbase
        rf"block range greater than {_NUM} max",  # swell
        rf"block range exceeds {_NUM}",  # somnia
        rf"query must be smaller than size {_NUM}",  # harmony
        rf"max range:?\s*{_NUM}",  # cloudflare
        rf"up to a {_NUM}\s*block range",  # aurora, alchemy's text without a suggested range
        rf"(?:max(?:imum)?|at most|up to) (?:of )?{_NUM}\s*blocks",  # "max 1000 blocks", "up to 500 blocks"
    )
]
_TOO_LARGE = re.compile(
    r"(too many blocks|more than [\d,]+ results|returned more than|exceeds? max results|max results|"
    r"response size|size exceed|response too large|too large|too wide|limit exceeded|limited to|"
    r"block range|blocks distance|maximum block range|max block range|range allowed|"
    r"exceeds? (?:the )?limit|result window|query (?:returned|exceeds)|logs matched by query|"
    r"max range|at most [\d,]+ blocks|smaller than size|should not greater than|number of requested blocks)",
    re.IGNORECASE,
)
_RATE_LIMITED = re.compile(
    r"(rate.?limit|too many requests|request rate|requests per second|compute units|"
    r"exceeded (?:the |your )?(?:daily |monthly )?(?:quota|capacity|request count|credits)|daily request count)",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"(timeout|timed out|deadline exceeded|took too long)", re.IGNORECASE)


def _num(text: str) -> int:
    text = text.strip()
    if text.lower().startswith("0x"):
        return int(text, 16)
    mult = 1000 if text[-1:] in "kK" else 1
    digits = re.sub(r"[^\d]", "", text)
    return int(digits) * mult if digits else 0


def looks_range_too_large(message: str) -> bool:
    return bool(_TOO_LARGE.search(message))


def looks_rate_limited(message: str) -> bool:
    return bool(_RATE_LIMITED.search(message))


def looks_timeout(message: str) -> bool:
    return bool(_TIMEOUT.search(message))


def parse_range_hint(message: str) -> tuple[int, int] | int | None:
    """A suggested (from, to) block range, a maximum span, or None."""
    for pat in _HINT_RANGES:
        m = pat.search(message)
        if m:
            lo, hi = _num(m.group(1)), _num(m.group(2))
            if hi >= lo:
                return (lo, hi)
    for pat in _HINT_SPANS:
        m = pat.search(message)
        if m:
            span = _num(m.group(1))
            if span > 0:
                return span
    return None
