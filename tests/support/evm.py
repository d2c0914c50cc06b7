"""Small helpers to deploy and drive contracts on anvil from tests.

Uses anvil's unlocked dev accounts (eth_sendTransaction), so no signing is
needed here; the daemon's own signing is tested through its own code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from .anvil import DEV_ACCOUNTS, rpc_sync

ARTIFACTS = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"
DEPLOYER = DEV_ACCOUNTS[0][0]


def artifact(name: str) -> dict:
    return json.loads((ARTIFACTS / f"{name}.json").read_text())


def _ctor_types(abi: list[dict]) -> list[str]:
    for item in abi:
        if item["type"] == "constructor":
            return [_abi_type(i) for i in item["inputs"]]
    return []


def _abi_type(inp: dict) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


def send(url: str, frm: str, to: str | None, data: str = "0x", value: int = 0, gas: int | None = None,
         wait: bool = True) -> dict:
    tx = {"from": frm, "data": data, "value": hex(value)}
    if to:
        tx["to"] = to
    if gas:
        tx["gas"] = hex(gas)
    txh = rpc_sync(url, "eth_sendTransaction", [tx])
    return wait_receipt(url, txh, check=True) if wait else {"transactionHash": txh}


def wait_receipt(url: str, txh: str, timeout: float = 10.0, check: bool = False) -> dict:
    # anvil mines on its own task: the receipt can lag the send by a moment.
    deadline = time.monotonic() + timeout
    while (receipt := rpc_sync(url, "eth_getTransactionReceipt", [txh])) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no receipt for {txh} within {timeout}s (is mining off?)")
        time.sleep(0.01)
    if check and receipt["status"] != "0x1":
        raise RuntimeError(f"transaction reverted: {txh}")
    return receipt


def deploy(url: str, name: str, *args, frm: str = DEPLOYER) -> str:
    art = artifact(name)
    data = art["bytecode"] + encode(_ctor_types(art["abi"]), list(args)).hex()
    receipt = send(url, frm, None, data)
    return receipt["contractAddress"]


def calldata(signature: str, types: list[str], args: list) -> str:
    return "0x" + function_signature_to_4byte_selector(signature).hex() + encode(types, args).hex()


def call(url: str, to: str, signature: str, types: list[str], args: list, block: str = "latest") -> str:
    return rpc_sync(url, "eth_call", [{"to": to, "data": calldata(signature, types, args)}, block])


def token_balance(url: str, token: str, holder: str, block: str = "latest") -> int:
    return int(call(url, token, "balanceOf(address)", ["address"], [holder], block), 16)


def deploy_token(url: str, supply: int = 10**30) -> str:
    return deploy(url, "TestToken", "Test", "TST", 18, supply)


def batch_transfer(url: str, token: str, recipients: list[str], amounts: list[int], frm: str = DEPLOYER) -> dict:
    data = calldata("batchTransfer(address[],uint256[])", ["address[]", "uint256[]"], [recipients, amounts])
    return send(url, frm, token, data, gas=30_000 + 40_000 * len(recipients))
