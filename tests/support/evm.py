"""Small helpers to deploy and drive contracts on anvil from tests.

Uses anvil's unlocked dev accounts (eth_sendTransaction), so no signing is
needed here; the daemon's own signing is tested through its own code.
"""

from __future__ import annotations

from daemon.devchain import (  # noqa: F401
    ARTIFACTS,
    DEPLOYER,
    artifact,
    batch_transfer,
    calldata,
    deploy,
    deploy_token,
    send,
    token_transfer,
    wait_receipt,
)

from .anvil import rpc_sync


def call(url: str, to: str, signature: str, types: list[str], args: list, block: str = "latest") -> str:
    return rpc_sync(url, "eth_call", [{"to": to, "data": calldata(signature, types, args)}, block])


def token_balance(url: str, token: str, holder: str, block: str = "latest") -> int:
    return int(call(url, token, "balanceOf(address)", ["address"], [holder], block), 16)
