"""Log decoding: the generated fast path agrees with eth_abi; bad logs are kept raw; bad RPC entries are refused."""

from __future__ import annotations

import json

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.errors import BadRpcResponse
from indexer.evm.decode import EventSpec, LogDecoder

ADDRESS = "0x" + "ab" * 20
BLOCK_HASH = "0x" + "11" * 32
TX_HASH = "0x" + "22" * 32


def event(name: str, *inputs: tuple[str, str, bool], components: dict | None = None) -> dict:
    items = []
    for n, t, idx in inputs:
        item = {"name": n, "type": t, "indexed": idx}
        if components and n in components:
            item["components"] = components[n]
        items.append(item)
    return {"type": "event", "name": name, "anonymous": False, "inputs": items}


def make_log(topics: list[str], data: str, **over) -> dict:
    log = {
        "address": ADDRESS, "topics": topics, "data": data, "blockNumber": "0x10", "blockHash": BLOCK_HASH,
        "transactionHash": TX_HASH, "transactionIndex": "0x2", "logIndex": "0x7", "removed": False,
    }
    log.update(over)
    return log


def decode_one(abi_item: dict, log: dict):
    dec = LogDecoder("test")
    dec.add_contract(ADDRESS, [abi_item])
    return dec.decode_logs([log])


def word(t: str, v) -> str:
    return "0x" + abi_encode([t], [v]).hex()


def normalized(t: str, v):
    """eth_abi's value as the decoder's JSON: ints as decimal strings, bytes and addresses as lowercase hex."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if t == "address":
        return v.lower()
    return v


# -- static events: the generated fast path equals eth_abi ---------------------

SIZES = [8, 16, 24, 32, 64, 128, 160, 256]


@st.composite
def static_param(draw):
    kind = draw(st.sampled_from(["uint", "int", "address", "bool", "bytes"]))
    if kind == "uint":
        bits = draw(st.sampled_from(SIZES))
        return f"uint{bits}", draw(st.integers(0, 2**bits - 1))
    if kind == "int":
        bits = draw(st.sampled_from(SIZES))
        return f"int{bits}", draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    if kind == "address":
        return "address", "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    if kind == "bool":
        return "bool", draw(st.booleans())
    n = draw(st.integers(1, 32))
    return f"bytes{n}", draw(st.binary(min_size=n, max_size=n))


@st.composite
def static_event(draw):
    params = draw(st.lists(static_param(), min_size=1, max_size=7))
    indexed = draw(st.lists(st.booleans(), min_size=len(params), max_size=len(params)))
    seen = 0
    for i, flag in enumerate(indexed):  # at most three indexed inputs
        if flag:
            seen += 1
            indexed[i] = seen <= 3
    return [(f"a{i}", t, v, idx) for i, ((t, v), idx) in enumerate(zip(params, indexed))]


@settings(max_examples=300, deadline=None)
@given(static_event())
def test_static_fast_path_equals_eth_abi(params):
    item = event("E", *[(n, t, idx) for n, t, _, idx in params])
    spec = EventSpec.from_abi(item)
    assert spec.fast_json is not None, "all-static events take the generated path"
    topics = [spec.topic0] + [word(t, v) for _, t, v, idx in params if idx]
    data_types = [t for _, t, _, idx in params if not idx]
    data = "0x" + abi_encode(data_types, [v for _, _, v, idx in params if not idx]).hex()

    events, raw = decode_one(item, make_log(topics, data))
    assert raw == []
    (row,) = events
    got = json.loads(row[8])

    # What eth_abi itself makes of the same bytes.
    from_data = iter(abi_decode(data_types, bytes.fromhex(data[2:])))
    from_topics = iter(abi_decode([t], bytes.fromhex(tp[2:]))[0] for (_, t, _, idx), tp
                       in zip([p for p in params if p[3]], topics[1:]))
    expected = {n: normalized(t, next(from_topics) if idx else next(from_data)) for n, t, _, idx in params}
    assert got == expected
    assert list(got) == [n for n, *_ in params]  # ABI order
    # ... and what the slow, generic path makes of them.
    assert spec.decode(topics, data) == expected


def test_row_carries_the_log_position():
    item = event("Transfer", ("from", "address", True), ("to", "address", True), ("value", "uint256", False))
    spec = EventSpec.from_abi(item)
    assert spec.topic0 == "0x" + keccak(text="Transfer(address,address,uint256)").hex()
    log = make_log([spec.topic0.upper().replace("0X", "0x"), word("address", "0x" + "01" * 20), word("address", "0x" + "02" * 20)],
                   word("uint256", 10**30), address=ADDRESS.upper().replace("0X", "0x"), blockHash=BLOCK_HASH.upper().replace("0X", "0x"))
    (row,), raw = decode_one(item, log)
    assert row[:8] == ("test", 16, BLOCK_HASH, TX_HASH, 2, 7, ADDRESS, "Transfer")
    assert json.loads(row[8]) == {"from": "0x" + "01" * 20, "to": "0x" + "02" * 20, "value": str(10**30)}


def test_negative_ints_and_bytes_n_at_the_edges():
    item = event("E", ("a", "int8", True), ("b", "int256", False), ("c", "bytes1", False), ("d", "bytes32", True), ("e", "int24", False))
    spec = EventSpec.from_abi(item)
    topics = [spec.topic0, word("int8", -128), word("bytes32", b"\xff" * 32)]
    data = "0x" + abi_encode(["int256", "bytes1", "int24"], [-(2**255), b"\x80", -1]).hex()
    (row,), _ = decode_one(item, make_log(topics, data))
    assert json.loads(row[8]) == {"a": "-128", "b": str(-(2**255)), "c": "0x80", "d": "0x" + "ff" * 32, "e": "-1"}


# -- dynamic types go through eth_abi -------------------------------------------


def test_dynamic_types_decode_right():
    item = event(
        "Dyn",
        ("who", "address", True), ("label", "string", True), ("note", "string", False), ("blob", "bytes", False),
        ("ids", "uint256[]", False), ("pair", "tuple", False), ("fixed", "int16[2]", False), ("pairs", "tuple[]", False),
        components={
            "pair": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint96"}],
            "pairs": [{"name": "flag", "type": "bool"}, {"name": "", "type": "bytes"}],
        },
    )
    spec = EventSpec.from_abi(item)
    assert spec.signature == "Dyn(address,string,string,bytes,uint256[],(address,uint96),int16[2],(bool,bytes)[])"
    assert spec.fast_json is None
    label_hash = "0x" + keccak(text="indexed label").hex()
    topics = [spec.topic0, word("address", "0x" + "0c" * 20), label_hash]
    data = "0x" + abi_encode(
        ["string", "bytes", "uint256[]", "(address,uint96)", "int16[2]", "(bool,bytes)[]"],
        ["héllo ✓", b"\x00\x01\xfe", [1, 2**256 - 1], ("0x" + "0d" * 20, 7), [-3, 4], [(True, b""), (False, b"\xaa")]],
    ).hex()
    (row,), raw = decode_one(item, make_log(topics, data))
    assert raw == []
    assert json.loads(row[8]) == {
        "who": "0x" + "0c" * 20,
        "label": label_hash,  # an indexed dynamic value is only its hash: kept as such
        "note": "héllo ✓",
        "blob": "0x0001fe",
        "ids": ["1", str(2**256 - 1)],
        "pair": {"to": "0x" + "0d" * 20, "amount": "7"},
        "fixed": ["-3", "4"],
        "pairs": [{"flag": True, "field1": "0x"}, {"flag": False, "field1": "0xaa"}],
    }


def test_arrays_of_one_word_types_are_not_one_word():
    item = event("A", ("tags", "uint8[]", True), ("xs", "uint256[]", False), ("ys", "int8[2]", False))
    spec = EventSpec.from_abi(item)
    tags_hash = "0x" + keccak(abi_encode(["uint8", "uint8"], [1, 2])).hex()
    data = "0x" + abi_encode(["uint256[]", "int8[2]"], [[5, 6, 7], [-1, 1]]).hex()
    (row,), raw = decode_one(item, make_log([spec.topic0, tags_hash], data))
    assert json.loads(row[8]) == {"tags": tags_hash, "xs": ["5", "6", "7"], "ys": ["-1", "1"]}


# -- logs that do not fit their ABI are kept raw, never raise -------------------

TRANSFER = event("Transfer", ("from", "address", True), ("to", "address", True), ("value", "uint256", False))
T0 = EventSpec.from_abi(TRANSFER).topic0
A1, A2 = word("address", "0x" + "01" * 20), word("address", "0x" + "02" * 20)


@pytest.mark.parametrize("topics,data,reason", [
    ([T0, A1], word("uint256", 5), "topics"),  # an ERC-721-like Transfer: wrong topic count
    ([T0, A1, A2, A1], word("uint256", 5), "topics"),
    ([T0, A1, A2], "0x" + "00" * 31, "data"),  # short data
    ([T0, A1, A2], "0x", "data"),
    ([T0, A1, A2], word("uint256", 5) + "00" * 32, "data"),  # extra data
    ([T0, "0x" + "ff" * 32, A2], word("uint256", 5), "address"),  # address word with high bytes set
])
def test_logs_that_do_not_fit_are_kept_raw(topics, data, reason):
    events, raw = decode_one(TRANSFER, make_log(topics, data))
    assert events == []
    (r,) = raw
    assert r.reason.startswith("Transfer: ") and reason in r.reason
    assert (r.block_number, r.log_index, r.topics, r.data) == (16, 7, [t.lower() for t in topics], data.lower())


def test_out_of_range_small_types_are_kept_raw():
    item = event("Small", ("x", "uint8", False), ("ok", "bool", False), ("y", "int8", False))
    spec = EventSpec.from_abi(item)
    for data in (
        "0x" + abi_encode(["uint256", "bool", "int8"], [256, True, 1]).hex(),
        "0x" + abi_encode(["uint8", "uint256", "int8"], [1, 2, 1]).hex(),
        "0x" + abi_encode(["uint8", "bool", "int256"], [1, True, 128]).hex(),
    ):
        events, raw = decode_one(item, make_log([spec.topic0], data))
        assert events == [] and len(raw) == 1


def test_undecodable_dynamic_data_is_kept_raw():
    item = event("S", ("s", "string", False))
    spec = EventSpec.from_abi(item)
    events, raw = decode_one(item, make_log([spec.topic0], "0x" + "00" * 31 + "20"))
    assert events == [] and len(raw) == 1


def test_other_contracts_and_events_are_skipped():
    dec = LogDecoder("test")
    dec.add_contract(ADDRESS, [TRANSFER, event("Approval", ("o", "address", True), ("s", "address", True), ("v", "uint256", False))],
                     events=["Transfer"])
    approval = EventSpec.from_abi(event("Approval", ("o", "address", True), ("s", "address", True), ("v", "uint256", False)))
    logs = [
        make_log([approval.topic0, A1, A2], word("uint256", 1)),  # not a wanted event
        make_log([T0, A1, A2], word("uint256", 1), address="0x" + "cd" * 20),  # not a watched contract
        make_log([], "0x"),  # anonymous, no topics
        make_log([T0, A1, A2], word("uint256", 9)),
    ]
    events, raw = dec.decode_logs(logs)
    assert raw == [] and len(events) == 1 and json.loads(events[0][8])["value"] == "9"
    assert dec.topic0s == [T0]


# -- malformed RPC entries are the endpoint's fault: refuse them, naming the field ----


@pytest.mark.parametrize("field,value", [
    ("address", None), ("address", 5),
    ("topics", None), ("topics", "0x" + "00" * 32),
    ("data", None), ("data", 12),
    ("blockNumber", None), ("blockNumber", "0xzz"), ("blockNumber", 16),
    ("blockHash", None), ("transactionHash", None),
    ("transactionIndex", "two"), ("logIndex", None),
])
def test_malformed_rpc_entries_raise_naming_the_field(field, value):
    log = make_log([T0, A1, A2], word("uint256", 5))
    log[field] = value
    with pytest.raises(BadRpcResponse, match=f"'{field}'"):
        decode_one(TRANSFER, log)


@pytest.mark.parametrize("field", ["address", "topics", "data", "blockNumber", "blockHash", "transactionHash", "transactionIndex", "logIndex"])
def test_missing_fields_raise_naming_the_field(field):
    log = make_log([T0, A1, A2], word("uint256", 5))
    del log[field]
    with pytest.raises(BadRpcResponse, match=f"'{field}'"):
        decode_one(TRANSFER, log)


def test_a_removed_log_or_a_non_object_is_refused():
    with pytest.raises(BadRpcResponse, match="removed"):
        decode_one(TRANSFER, make_log([T0, A1, A2], word("uint256", 5), removed=True))
    dec = LogDecoder("test")
    dec.add_contract(ADDRESS, [TRANSFER])
    with pytest.raises(BadRpcResponse, match="not an object"):
        dec.decode_logs(["0xdeadbeef"])
