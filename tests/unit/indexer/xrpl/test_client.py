"""Pure parts of the XRPL client: complete_ledgers ranges and error classes."""

from __future__ import annotations

import pytest

from indexer.errors import BadRpcResponse, RpcErrorKind
from indexer.xrpl.client import LedgerSet, ServerInfo, classify


def test_complete_ledgers_parse_and_print():
    s = LedgerSet.parse("32570-4000000,4000005-4100000,4100002")
    assert s.runs == ((32570, 4000000), (4000005, 4100000), (4100002, 4100002))
    assert str(s) == "32570-4000000,4000005-4100000,4100002"
    assert LedgerSet.parse("empty").runs == () and str(LedgerSet(())) == "empty"
    for bad in ("5-3", "a-b", "1-2,,3", None, 7):
        with pytest.raises(BadRpcResponse, match="complete_ledgers"):
            LedgerSet.parse(bad)


def test_missing_ledgers_between():
    s = LedgerSet.parse("1-3,7-8,10-20")
    assert str(s.missing(1, 12)) == "4-6,9"
    assert str(s.missing(4, 5)) == "4-5"
    assert str(s.missing(1, 3)) == "empty"
    assert str(s.missing(18, 25)) == "21-25"
    assert s.run_with(8) == (7, 8) and s.run_with(9) is None


def test_served_history_is_the_run_ending_at_the_validated_ledger():
    assert ServerInfo(LedgerSet.parse("1-3,7-8"), 8, 0).served() == (7, 8)
    assert ServerInfo(LedgerSet.parse("1-3,7-8"), 9, 0).served() is None  # validated ledger not held yet
    assert ServerInfo(LedgerSet.parse("empty"), None, None).served() is None


@pytest.mark.parametrize("token,kind", [
    ("tooBusy", RpcErrorKind.RETRYABLE), ("lgrNotFound", RpcErrorKind.RETRYABLE),
    ("lgrIdxMalformed", RpcErrorKind.RETRYABLE), ("slowDown", RpcErrorKind.RETRYABLE),
    ("unknownCmd", RpcErrorKind.UNSUPPORTED), ("actNotFound", RpcErrorKind.EXECUTION),
    ("txnNotFound", RpcErrorKind.EXECUTION), ("invalidParams", RpcErrorKind.FATAL),
    ("actMalformed", RpcErrorKind.FATAL),
])
def test_error_tokens_are_classified(token, kind):
    assert classify(token) is kind
