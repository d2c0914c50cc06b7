"""PayoutBatcher's ABI from its committed artifact: revert decoding, event
topics, view-call encoders and the gas figures that size a batch.

The artifact is read from contracts/artifacts/ in the source tree (the
build script writes it there and a test keeps it equal to the source); an
installed package finds the copy pip puts under <prefix>/share/chainsettle.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eth_abi import decode, encode
from eth_utils import event_abi_to_log_topic, function_signature_to_4byte_selector

from config.errors import ChainsettleError


def _artifact_path() -> Path:
    rel = Path("contracts") / "artifacts" / "PayoutBatcher.json"
    candidates = [Path(__file__).resolve().parents[3] / rel, Path(sys.prefix) / "share" / "chainsettle" / rel]
    return next((c for c in candidates if c.exists()), candidates[0])


ARTIFACT = _artifact_path()

# Measured on anvil (cancun, solc 0.8.30 optimizer 200 runs) by
# tests/integration/test_payout_batcher.py, which fails if the contract gets
# more expensive than these. Figures for 1 and 100 recipients that never held
# the asset: native 103.6k / 3.909M (38.4k each), ERC-20 from the contract
# 100.1k / 3.026M (29.5k each), ERC-20 from a treasury 106.0k / 3.104M (30.3k).
# A native recipient contract that burns its allowance costs nativeGasLimit
# plus NATIVE_FAILED_EXTRA (the stipend it also burns, the call, the event).
GAS_BASE = 80_000
GAS_PER_NATIVE_RECIPIENT = 40_000
GAS_PER_TOKEN_RECIPIENT = 32_000
GAS_PER_TOKEN_RECIPIENT_TREASURY = 33_000
NATIVE_FAILED_EXTRA = 18_000
# executeBatch refuses to start a native send unless this much is left:
# nativeGasLimit * 64 / 63 + CALL_RESERVE (contract constant).
CALL_RESERVE = 40_000


class BatcherAbiError(ChainsettleError):
    """cannot read the PayoutBatcher artifact"""


@dataclass(frozen=True)
class Revert:
    name: str  # custom error name, "Error" for require strings, "Panic", or "unknown"
    args: tuple
    data: bytes

    def __str__(self) -> str:
        return f"{self.name}{self.args!r}" if self.args else self.name


@cache
def abi() -> list[dict]:
    try:
        return json.loads(ARTIFACT.read_text())["abi"]
    except (OSError, ValueError, KeyError) as exc:
        raise BatcherAbiError(f"PayoutBatcher artifact {ARTIFACT}: {exc}") from None


def canonical_type(inp: dict) -> str:
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(canonical_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


@cache
def _errors() -> dict[bytes, tuple[str, list[str]]]:
    out: dict[bytes, tuple[str, list[str]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"]),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"]),
    }
    for item in abi():
        if item["type"] == "error":
            types = [canonical_type(i) for i in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            out[function_signature_to_4byte_selector(sig)] = (item["name"], types)
    return out


def decode_revert(data: bytes | str | None) -> Revert:
    """Name and arguments of a revert from its return data (hex or bytes)."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    data = data or b""
    known = _errors().get(data[:4])
    if known is None:
        return Revert("unknown", (), data)
    name, types = known
    try:
        args = tuple(decode(types, data[4:]))
    except Exception:  # truncated or garbled data from a node; keep the name
        args = ()
    return Revert(name, args, data)


@cache
def event_topics() -> dict[str, bytes]:
    """topic0 of every PayoutBatcher event, by name."""
    return {item["name"]: event_abi_to_log_topic(item) for item in abi() if item["type"] == "event"}


def executed_calldata(batch_id: bytes) -> bytes:
    return function_signature_to_4byte_selector("executed(bytes32)") + encode(["bytes32"], [batch_id])


def is_signer_calldata(address: str) -> bytes:
    return function_signature_to_4byte_selector("isSigner(address)") + encode(["address"], [address])


def view_calldata(name: str) -> bytes:
    """Calldata for an argument-less view: paused, owner, nativeGasLimit, domainSeparator, ..."""
    return function_signature_to_4byte_selector(f"{name}()")


def gas_limit(asset_is_native: bool, count: int, *, native_gas_limit: int = 30_000, treasury: bool = False) -> int:
    """A gas limit that covers a batch of `count` recipients in the worst case.

    Native: every recipient is either a new account or a contract that burns
    its whole allowance, and the last send still needs its reserve, so the
    limit never trips InsufficientGas. Token: every recipient is new to the token.
    """
    if asset_is_native:
        per = max(GAS_PER_NATIVE_RECIPIENT, native_gas_limit + NATIVE_FAILED_EXTRA)
        return GAS_BASE + per * count + native_gas_limit * 64 // 63 + CALL_RESERVE
    per = GAS_PER_TOKEN_RECIPIENT_TREASURY if treasury else GAS_PER_TOKEN_RECIPIENT
    return GAS_BASE + per * count
