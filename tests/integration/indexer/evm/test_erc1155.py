"""ERC-1155 as a builtin ABI: one events row per log (the storage contract), one view row per token id."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

from config import load_abi
from indexer.evm.decode import LogDecoder
from indexer.store import Store

TOKEN = "0x" + "ab" * 20
OP, FROM, TO = ("0x" + c * 40 for c in "123")
BH = "0x" + "11" * 32


def topic(addr: str) -> str:
    return "0x" + "0" * 24 + addr[2:]


def log(sig: str, data: bytes, index: int) -> dict:
    return {"address": TOKEN, "topics": ["0x" + keccak(text=sig).hex(), topic(OP), topic(FROM), topic(TO)],
            "data": "0x" + data.hex(), "blockNumber": "0x10", "blockHash": BH, "transactionHash": "0x" + "22" * 32,
            "transactionIndex": "0x0", "logIndex": hex(index), "removed": False}


async def test_transfer_single_and_batch_decode_and_expand_to_one_row_per_id(pool):
    decoder = LogDecoder("c")
    decoder.add_contract(TOKEN, load_abi("erc1155"))
    logs = [
        log("TransferSingle(address,address,address,uint256,uint256)", encode(["uint256", "uint256"], [7, 3]), 0),
        log("TransferBatch(address,address,address,uint256[],uint256[])",
            encode(["uint256[]", "uint256[]"], [[1, 2, 2**200], [10, 20, 30]]), 1),
    ]
    events, raw = decoder.decode_logs(logs)
    assert raw == []
    assert [(e[5], e[7]) for e in events] == [(0, "TransferSingle"), (1, "TransferBatch")]
    assert '"ids":["1","2","' + str(2**200) + '"]' in events[1][8]
    store = Store(pool, "c")
    await store.ensure_chain("evm", 1)
    assert await store.commit_range(from_block=16, to_block=16, events=events, expected=None, cursor=None) == 2
    rows = await pool.fetch("""SELECT log_index, item_index, operator, "from", "to", token_id, value
                               FROM erc1155_transfers WHERE chain = 'c' ORDER BY log_index, item_index""")
    assert [tuple(r) for r in rows] == [
        (0, 0, OP, FROM, TO, "7", 3),
        (1, 0, OP, FROM, TO, "1", 10), (1, 1, OP, FROM, TO, "2", 20), (1, 2, OP, FROM, TO, str(2**200), 30)]
