"""Internal value transfers from call trees (pure)."""

from __future__ import annotations

import orjson
import pytest

from indexer.errors import BadRpcResponse
from indexer.evm.traces import call_transfers, parity_transfers, worth_tracing

W = "0x" + "aa" * 20
A, B, C = ("0x" + c * 40 for c in "123")
BH = "0x" + "bb" * 32
TX = "0x" + "cc" * 32
WALLETS = frozenset({W})


def frame(kind, frm, to, value=0, calls=(), error=None):
    f = {"type": kind, "from": frm, "to": to, "value": hex(value), "calls": list(calls)}
    if error:
        f["error"] = error
    return f


def rows(root):
    return [(r.log_index, orjson.loads(r.args)) for r in call_transfers("c", 5, BH, TX, 0, root, WALLETS)]


def test_nested_calls_to_and_from_the_wallet_count_top_level_and_delegatecalls_do_not():
    root = frame("CALL", A, B, 9, [
        frame("CALL", B, C, 0, [frame("CALL", C, W, 7)]),  # ordinal 1, 2
        frame("DELEGATECALL", B, W, 9),                     # 3: no value moves
        frame("CALL", W, A, 3),                             # 4: the wallet pays
        frame("CREATE2", W, C, 1),                          # 5
    ])
    assert rows(root) == [
        (-4, {"from": C, "to": W, "value": "7", "type": "CALL", "path": "0.0"}),
        (-6, {"from": W, "to": A, "value": "3", "type": "CALL", "path": "2"}),
        (-7, {"from": W, "to": C, "value": "1", "type": "CREATE2", "path": "3"}),
    ]
    assert rows(frame("CALL", A, W, 5)) == []  # top level: NativeTransfer's


def test_a_failed_frame_takes_its_subtree_and_a_failed_transaction_everything():
    inner = frame("CALL", B, C, 0, [frame("CALL", C, W, 7)], error="execution reverted")
    assert rows(frame("CALL", A, B, 0, [inner, frame("CALL", B, W, 2)])) == [
        (-5, {"from": B, "to": W, "value": "2", "type": "CALL", "path": "1"})]
    assert rows(frame("CALL", A, B, 0, [frame("CALL", B, W, 2)], error="out of gas")) == []


def test_parity_traces_give_the_same_rows_and_refuse_another_block():
    base = {"blockHash": BH, "transactionHash": TX, "transactionPosition": 0, "subtraces": 0}
    traces = [
        {**base, "type": "call", "traceAddress": [], "action": {"callType": "call", "from": A, "to": B, "value": "0x0"}},
        {**base, "type": "call", "traceAddress": [0], "action": {"callType": "call", "from": B, "to": C, "value": "0x0"}},
        {**base, "type": "call", "traceAddress": [0, 0], "action": {"callType": "call", "from": C, "to": W, "value": "0x7"}},
        {**base, "type": "call", "traceAddress": [1], "error": "Reverted",
         "action": {"callType": "call", "from": B, "to": C, "value": "0x0"}},
        {**base, "type": "call", "traceAddress": [1, 0], "action": {"callType": "call", "from": C, "to": W, "value": "0x9"}},
        {**base, "type": "suicide", "traceAddress": [2], "action": {"address": B, "refundAddress": W, "balance": "0x4"}},
        {"type": "reward", "blockHash": BH, "action": {"author": W, "value": "0x1"}},
    ]
    got = [(r.log_index, orjson.loads(r.args)) for r in parity_transfers("c", 5, BH, traces, [TX], WALLETS)]
    assert got == [(-4, {"from": C, "to": W, "value": "7", "type": "CALL", "path": "0.0"}),
                   (-7, {"from": B, "to": W, "value": "4", "type": "SELFDESTRUCT", "path": "2"})]
    with pytest.raises(BadRpcResponse, match="we hold"):
        parity_transfers("c", 5, "0x" + "dd" * 32, traces, [TX], WALLETS)


def test_blocks_worth_tracing():
    tx = {"from": A, "to": B, "input": "0x12345678" + "00" * 12 + W[2:]}
    empty_bloom = "0x" + "00" * 256
    assert worth_tracing({"transactions": [tx], "logsBloom": empty_bloom}, WALLETS)  # named in the input
    assert worth_tracing({"transactions": [{"from": W, "to": B, "input": "0x"}], "logsBloom": empty_bloom}, WALLETS)
    assert not worth_tracing({"transactions": [{"from": A, "to": B, "input": "0x"}], "logsBloom": empty_bloom}, WALLETS)
    assert worth_tracing({"transactions": [{"from": A, "to": B, "input": "0x"}], "logsBloom": "0x" + "ff" * 256}, WALLETS)
