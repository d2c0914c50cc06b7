"""Start anvil (from the npm package the Makefile installs) on a free port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# anvil's well-known dev accounts (mnemonic "test test ... junk"); the keys
# are public and only ever used against a local dev chain.
DEV_ACCOUNTS = [
    ("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    ("0x70997970c51812dc3a010c7d01b50e0d17dc79c8", "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
    ("0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc", "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"),
    ("0x90f79bf6eb2c4f870365e785982e1f101e93b906", "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"),
]


def anvil_binary() -> str:
    env = os.environ.get("ANVIL_BIN")
    if env:
        return env
    for candidate in (
        ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil",
        ROOT / "node_modules/@foundry-rs/anvil-linux-arm64/bin/anvil",
    ):
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
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                rpc_sync(self.url, "eth_chainId", timeout=2)
                break
            except Exception:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"anvil exited: {self.proc.stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("anvil did not start within 30 s")
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
