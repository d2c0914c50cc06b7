"""Provider getLogs errors → kind and range hint; the adaptive range sizer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.errors import RpcErrorKind as K
from indexer.evm.provider_errors import parse_range_hint
from indexer.evm.rpc import classify_rpc_error
from indexer.ranges import TARGET_RESULTS, RangeSizer

# (provider, code, message as the provider sends it, expected hint)
PROVIDER_ERRORS = [
    ("alchemy", -32602,
     "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the "
     "response size, or you can request any block range with a cap of 10K logs in the response. Based on your "
     "parameters, this block range should work: [0x112a880, 0x112a8c2]", (0x112A880, 0x112A8C2)),
    ("alchemy, no suggestion", -32602,
     "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the "
     "response size, or you can request any block range with a cap of 10K logs in the response.", 2000),
    ("infura", -32005, "query returned more than 10000 results. Try with this block range [0x112A880, 0x112A908].",
     (0x112A880, 0x112A908)),
    ("llamarpc/ankr", -32000, "query exceeds max results 20000, retry with the range 24383075-24383096",
     (24383075, 24383096)),
    ("coreth (flare, avalanche)", -32000, "requested too many blocks from 1 to 100, maximum is set to 30", 30),
    ("bsc", -32000, "exceed maximum block range: 5000", 5000),
    ("publicnode", -32600, "eth_getLogs block range too large, maximum block range: 50000", 50000),
    ("quicknode", -32602, "eth_getLogs is limited to a 10,000 range", 10000),
    ("blockpi", -32000, "eth_getLogs is limited to 1024 block range", 1024),
    ("thirdweb", -32602, "Maximum allowed number of requested blocks is 1000", 1000),
    ("chainstack", -32602, "Block range limit exceeded.", None),
    ("ankr", -32600, "block range is too wide", None),
    ("moonbeam/frontier", -32603, "block range is too wide (maximum 1024)", 1024),
    ("merkle", -32000, "eth_getLogs range is too large, max is 10k blocks", 10000),
    ("range too large 1k", -32000, "range is too large, max is 1k blocks", 1000),
    ("coinbase", -32000, "please limit the query to at most 1000 blocks", 1000),
    ("hyperliquid", -32000, "query exceeds max block range 1000", 1000),
    ("swell", -32000, "block range greater than 10000 max", 10000),
    ("somnia", -32000, "block range exceeds 1000", 1000),
    ("harmony", -32000, "query must be smaller than size 1024", 1024),
    ("cloudflare", -32047, "Max range: 800", 800),
    ("ethermint (cronos)", -32000, "maximum [from, to] blocks distance: 2000", 2000),
    ("blast", -32000, "eth_getLogs range exceeds the range allowed for your plan (5000 > 1000)", 1000),
    ("zkevm / geth", -32000, "query returned more than 10000 results", None),
    ("arbitrum", -32000, "logs matched by query exceeds limit of 10000", None),
    ("1rpc", -32000, "response size should not greater than 10000000 bytes", None),
    ("optimism", -32000, "backend response too large", None),
    ("optimism (new)", -32000, "Block range is too large", None),
    ("base", -32000, "block range too large", None),
]


@pytest.mark.parametrize("provider,code,message,hint", PROVIDER_ERRORS, ids=[p[0] for p in PROVIDER_ERRORS])
def test_provider_limit_errors_are_range_too_large_with_their_hint(provider, code, message, hint):
    assert parse_range_hint(message) == hint
    kind, got = classify_rpc_error(code, message)
    assert kind is K.RANGE_TOO_LARGE
    assert got == hint


@pytest.mark.parametrize("code,message,kind", [
    (-32000, "header not found", K.RETRYABLE),
    (-32000, "internal error: upstream unavailable", K.RETRYABLE),
    (-32005, "daily request count exceeded, request rate limited", K.RETRYABLE),
    (-32029, "Too Many Requests", K.RETRYABLE),  # not "too many" results
    (429, "exceeded your capacity", K.RETRYABLE),
    (-32000, "your app has exceeded its compute units per second capacity", K.RETRYABLE),
    (-32000, "query timeout exceeded", K.TIMEOUT),
    (-32000, "context deadline exceeded", K.TIMEOUT),
    (-32601, "the method eth_getBlockReceipts does not exist/is not available", K.UNSUPPORTED),
    (-32601, "Method not found", K.UNSUPPORTED),
    (3, "execution reverted: ERC20: transfer amount exceeds balance", K.EXECUTION),
    (-32000, "already known", K.ALREADY_KNOWN),
    (-32000, "nonce too low: next nonce 5, tx nonce 4", K.NONCE_TOO_LOW),
    (-32000, "replacement transaction underpriced", K.UNDERPRICED),
    (-32000, "max fee per gas less than block base fee", K.UNDERPRICED),
    (-32602, "invalid argument 0: hex string without 0x prefix", K.FATAL),
    (-32700, "parse error", K.FATAL),
    (None, "", K.RETRYABLE),
])
def test_classify_rpc_error(code, message, kind):
    assert classify_rpc_error(code, message)[0] is kind


def test_hint_range_needs_from_not_after_to():
    assert parse_range_hint("Try with this block range [0x20, 0x10].") is None
    assert parse_range_hint("maximum is set to 0") is None
    assert parse_range_hint("nothing to see here") is None


# -- the sizer ----------------------------------------------------------------


def test_sizer_grows_while_answers_are_small_up_to_its_maximum():
    s = RangeSizer(10, maximum=100)
    assert s.next_range(5, 1_000) == (5, 14)
    for _ in range(10):
        s.on_success(s.size, results=3)
    assert s.size == 100
    assert s.next_range(0, 40) == (0, 40)  # never past the limit asked for


def test_sizer_does_not_grow_on_a_short_tail_or_a_full_answer():
    s = RangeSizer(50, maximum=1000)
    s.on_success(10, results=0)  # a tail shorter than the size says nothing
    assert s.size == 50
    s.on_success(50, results=TARGET_RESULTS // 2)  # big enough: stay
    assert s.size == 50
    s.on_success(50, results=TARGET_RESULTS + 1)  # too big: halve
    assert s.size == 25


def test_a_suggested_range_is_used_as_is():
    s = RangeSizer(1000, maximum=10_000)
    s.on_too_large(1000, (500, 539))
    assert s.size == 40
    assert s.next_range(500, 10_000) == (500, 539)


def test_a_maximum_span_becomes_a_ceiling():
    s = RangeSizer(1000, maximum=10_000)
    s.on_too_large(1000, 30)
    assert s.size == 30 and s.ceiling == 30
    for _ in range(5):
        s.on_success(s.size, results=0)
    assert s.size == 30


def test_no_hint_halves_and_a_refusal_always_shrinks_even_at_the_floor():
    s = RangeSizer(64, minimum=16, maximum=1000)
    s.on_too_large(64)
    assert s.size == 32
    s.on_too_large(32)
    assert s.size == 16
    s.on_too_large(16)  # refused at the floor: asking 16 again would loop forever
    assert s.size == 15
    s.on_timeout(15)
    assert s.size == 14
    s.on_too_large(1)
    assert s.size == 1


def test_a_hint_wins_over_the_floor():
    s = RangeSizer(100, minimum=50, maximum=1000)
    s.on_too_large(100, 10)
    assert s.size == 10


@given(
    st.integers(1, 5000), st.integers(1, 100), st.integers(1, 10_000),
    st.lists(st.tuples(st.sampled_from(["ok", "big", "hint", "span", "timeout"]), st.integers(0, 20_000)), max_size=40),
)
def test_sizer_invariants(initial, minimum, maximum, events):
    s = RangeSizer(initial, minimum=minimum, maximum=maximum)
    for what, n in events:
        a, b = s.next_range(100, 100 + 50_000)
        span = b - a + 1
        before = s.size
        if what == "ok":
            s.on_success(span, results=n)
        elif what == "big":
            s.on_too_large(span)
        elif what == "hint":
            s.on_too_large(span, (a, a + n % max(1, span)))
        elif what == "span":
            s.on_too_large(span, n + 1)
        else:
            s.on_timeout(span)
        assert 1 <= s.size <= s.maximum
        if what != "ok" and span > 1:
            assert s.size < span, "a refused range must never be asked again"
        if what == "ok":
            assert s.size <= max(before * 2, s.minimum)
