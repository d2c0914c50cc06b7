"""A local dev chain for the demo and the tests: anvil from the npm package
the Makefile installs, plus deployment of the committed contract artifacts
with anvil's unlocked dev accounts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "contracts" / "artifacts"
# anvil's well-known dev accounts (mnemonic "test test ... junk"). The keys
# are public knowledge and only ever used against a local dev chain.
DEV_ACCOUNTS = [
    ("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
    ("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc", "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"),
    ("0x90f79bf6eb2c4f870365e785982e1f101e93b906", "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"),
]
DEPLOYER = DEV_ACCOUNTS[0][0]


def anvil_binary() -> str:
    env = os.environ.get("ANVIL_BIN")
    if env:
        return env
    for arch in ("amd64", "arm64"):
        candidate = ROOT / f"node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise RuntimeError("anvil not found: run `make setup` (installs @foundry-rs/anvil from npm)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc_sync(url: str, method: str, params: list | None = None, timeout: float = 30):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        out = json.loads(resp.read())
    if "error" in out:
        raise RuntimeError(f"{method}: {out['error']}")
    return out["result"]


class Anvil:
    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        args = [anvil_binary(), "--port", str(self.port), "--host", "127.0.0.1", "--silent", *extra_args]
        # Its own session: a Ctrl-C meant for the demo must not kill the chain
        # before the daemon has shut down; stop() ends it last.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc_sync(self.url, "eth_chainId", timeout=2)
                break
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"anvil exited: {self.proc.stderr.read().decode()[-2000:]}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("anvil did not start within 30 s") from None
                time.sleep(0.05)

    def rpc(self, method: str, params: list | None = None):
        return rpc_sync(self.url, method, params)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Anvil":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def artifact(name: str) -> dict:
    return json.loads((ARTIFACTS / f"{name}.json").read_text())


def _abi_type(inp: dict) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


def _ctor_types(abi: list[dict]) -> list[str]:
    for item in abi:
        if item["type"] == "constructor":
            return [_abi_type(i) for i in item["inputs"]]
    return []


def calldata(signature: str, types: list[str], args: list) -> str:
    return "0x" + function_signature_to_4byte_selector(signature).hex() + encode(types, args).hex()


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


def send(url: str, frm: str, to: str | None, data: str = "0x", value: int = 0, gas: int | None = None,
         wait: bool = True) -> dict:
    """eth_sendTransaction from an unlocked dev account."""
    tx = {"from": frm, "data": data, "value": hex(value)}
    if to:
        tx["to"] = to
    if gas:
        tx["gas"] = hex(gas)
    txh = rpc_sync(url, "eth_sendTransaction", [tx])
    return wait_receipt(url, txh, check=True) if wait else {"transactionHash": txh}


def deploy(url: str, name: str, *args, frm: str = DEPLOYER) -> str:
    art = artifact(name)
    data = art["bytecode"] + encode(_ctor_types(art["abi"]), list(args)).hex()
    return send(url, frm, None, data)["contractAddress"]


def deploy_token(url: str, supply: int = 10**30, symbol: str = "TST") -> str:
    return deploy(url, "TestToken", f"Test {symbol}", symbol, 18, supply)


def batch_transfer(url: str, token: str, recipients: list[str], amounts: list[int], frm: str = DEPLOYER) -> dict:
    data = calldata("batchTransfer(address[],uint256[])", ["address[]", "uint256[]"], [recipients, amounts])
    return send(url, frm, token, data, gas=30_000 + 40_000 * len(recipients))


def token_transfer(url: str, token: str, frm: str, to: str, amount: int) -> dict:
    return send(url, frm, token, calldata("transfer(address,uint256)", ["address", "uint256"], [to, amount]))
