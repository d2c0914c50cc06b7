"""The native-transfer scanner over full blocks (pure, no I/O)."""

from __future__ import annotations

import orjson
import pytest

from indexer.errors import BadRpcResponse
from indexer.evm.native_scan import native_events, touching

W = "0x" + "a1" * 20
S = "0x" + "51" * 20
X = "0x" + "ee" * 20
BH = "0x" + "bb" * 32


def tx(i, frm, to, value, **extra):
    return {"hash": "0x" + f"{i:064x}", "from": frm.upper().replace("0X", "0x"), "to": to, "value": hex(value),
            "transactionIndex": hex(i), **extra}


def receipt(i, status="0x1", gas=21000, price=10**9, **extra):
    return {"transactionHash": "0x" + f"{i:064x}", "blockHash": BH, "status": status, "gasUsed": hex(gas),
            "effectiveGasPrice": hex(price), **extra}


def block(*txs):
    return {"number": "0x10", "hash": BH, "transactions": list(txs)}


def rows(blocks, receipts):
    return [(r.tx_index, r.log_index, r.address, r.event, orjson.loads(r.args)) for r in native_events("c", blocks, [W], receipts)]


def test_incoming_outgoing_fees_failures_and_unrelated():
    b = block(
        tx(0, S, W, 5),          # deposit
        tx(1, W, X, 7),          # our outflow: value and fee
        tx(2, W, X, 9),          # our failed tx: fee only
        tx(3, S, X, 11),         # unrelated
        tx(4, S, W, 0),          # zero value to us: nothing
        tx(5, S, W, 13),         # failed deposit: nothing moved
        tx(6, W, None, 0),       # contract creation by us: fee only
    )
    rc = {r["transactionHash"]: r for r in (
        receipt(0), receipt(1, gas=21000, price=3), receipt(2, status="0x0", gas=50000, price=2),
        receipt(5, status="0x0"), receipt(6, gas=100000, price=1, contractAddress="0x" + "cc" * 20,
                                              blobGasUsed="0x2", blobGasPrice="0x5"),
    )}
    assert [t["hash"][-1] for t in touching(b, frozenset([W]))] == ["0", "1", "2", "5", "6"]
    assert rows([b], rc) == [
        (0, -1, "native", "NativeTransfer", {"from": S, "to": W, "value": "5"}),
        (1, -1, "native", "NativeTransfer", {"from": W, "to": X, "value": "7"}),
        (1, -2, "native", "NativeFee", {"from": W, "fee": str(21000 * 3), "gas_used": "21000", "gas_price": "3"}),
        (2, -2, "native", "NativeFee", {"from": W, "fee": str(50000 * 2), "gas_used": "50000", "gas_price": "2"}),
        (6, -2, "native", "NativeFee", {"from": W, "fee": str(100000 + 10), "gas_used": "100000", "gas_price": "1"}),
    ]


def test_bad_answers_raise_instead_of_guessing():
    with pytest.raises(BadRpcResponse, match="receipt missing"):
        native_events("c", [block(tx(0, S, W, 5))], [W], {})
    with pytest.raises(BadRpcResponse, match="another block"):
        native_events("c", [block(tx(0, S, W, 5))], [W], {"0x" + f"{0:064x}": dict(receipt(0), blockHash="0x" + "cc" * 32)})
    with pytest.raises(BadRpcResponse, match="hashes, not objects"):
        touching({"number": "0x1", "transactions": ["0xabc"]}, frozenset([W]))
    with pytest.raises(BadRpcResponse, match="gasUsed"):
        native_events("c", [block(tx(0, W, X, 5))], [W], {"0x" + f"{0:064x}": dict(receipt(0), gasUsed="zz")})
