"""Drive PayoutBatcher on anvil from tests: views, decoded reverts and logs."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from eth_abi import decode
from eth_utils import keccak, to_checksum_address

from settlement.payouts.evm import batcher_abi

from .anvil import DEV_ACCOUNTS
from .evm import calldata, send

RELAYER = DEV_ACCOUNTS[3][0]


def rpc(anvil, method: str, params: list) -> dict:
    """The whole JSON-RPC answer, so a revert's data can be read."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(anvil.url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def fresh_address() -> str:
    return to_checksum_address(keccak(os.urandom(32))[12:])


def balance(anvil, addr: str) -> int:
    return int(anvil.rpc("eth_getBalance", [addr, "latest"]), 16)


def latest_timestamp(anvil) -> int:
    return int(anvil.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def view(anvil, contract: str, signature: str, types: list[str] | None = None, args: list | None = None) -> bytes:
    return raw_view(anvil, contract, calldata(signature, types or [], args or []))


def raw_view(anvil, contract: str, data: bytes | str) -> bytes:
    data = data if isinstance(data, str) else "0x" + data.hex()
    return bytes.fromhex(anvil.rpc("eth_call", [{"to": contract, "data": data}, "latest"])[2:])


def view_uint(anvil, contract: str, signature: str, types=None, args=None) -> int:
    return int.from_bytes(view(anvil, contract, signature, types, args), "big")


def is_executed(anvil, batcher: str, batch_id: bytes) -> bool:
    return int.from_bytes(raw_view(anvil, batcher, batcher_abi.executed_calldata(batch_id)), "big") == 1


def revert_of(anvil, to: str, data: bytes | str, *, frm: str = RELAYER, gas: int | None = None):
    """The decoded revert of an eth_call, or None when the call succeeds."""
    tx = {"from": frm, "to": to, "data": data if isinstance(data, str) else "0x" + data.hex()}
    if gas:
        tx["gas"] = hex(gas)
    out = rpc(anvil, "eth_call", [tx, "latest"])
    if "error" not in out:
        return None
    return batcher_abi.decode_revert(out["error"].get("data"))


def assert_rejected(anvil, to: str, data: bytes | str, error: str, *, frm: str = RELAYER):
    """Rejected in a call AND in a mined transaction (status 0), with `error`."""
    reason = revert_of(anvil, to, data, frm=frm)
    assert reason is not None, f"expected {error}, call succeeded"
    assert reason.name == error, f"expected {error}, got {reason}"
    with pytest.raises(RuntimeError, match="reverted"):
        send(anvil.url, frm, to, data if isinstance(data, str) else "0x" + data.hex(), gas=3_000_000)
    return reason


def logs(receipt: dict, name: str) -> list[dict]:
    """Decoded logs of one PayoutBatcher event, in log order."""
    item = next(i for i in batcher_abi.abi() if i["type"] == "event" and i["name"] == name)
    topic0 = batcher_abi.event_topics()[name]
    out = []
    for log in receipt["logs"]:
        if bytes.fromhex(log["topics"][0][2:]) != topic0:
            continue
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        row = {}
        for inp, topic in zip(indexed, log["topics"][1:]):
            row[inp["name"]] = decode([inp["type"]], bytes.fromhex(topic[2:]))[0]
        values = decode([i["type"] for i in plain], bytes.fromhex(log["data"][2:]))
        row.update({i["name"]: v for i, v in zip(plain, values)})
        out.append(row)
    return out


