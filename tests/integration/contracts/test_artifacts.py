"""The committed contract artifacts are what the sources compile to, and
the Python side agrees with the PayoutBatcher ABI it encodes for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from settlement.payouts.evm import batcher_abi, eip712

ROOT = Path(__file__).resolve().parents[3]


def test_artifacts_match_the_sources():
    node = shutil.which("node")
    assert node, "node is needed to compile contracts (make setup installs solc-js)"
    out = subprocess.run(
        [node, "contracts/build.mjs", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr + out.stdout


def _signature(item: dict) -> str:
    return f"{item['name']}({','.join(batcher_abi.canonical_type(i) for i in item['inputs'])})"


def test_python_encoders_match_the_payout_batcher_abi():
    functions = {_signature(i) for i in batcher_abi.abi() if i["type"] == "function"}
    assert eip712.EXECUTE_BATCH in functions
    assert f"batchDigest({eip712.BATCH_ABI_TUPLE})" in functions
    for sig in ("executed(bytes32)", "isSigner(address)", "paused()", "nativeGasLimit()", "domainSeparator()"):
        assert sig in functions, sig
    assert eip712.EXECUTE_BATCH_SELECTOR == function_signature_to_4byte_selector(eip712.EXECUTE_BATCH)
    # The Batch struct's field names, in order, are the EIP-712 type's.
    execute = next(i for i in batcher_abi.abi() if i.get("name") == "executeBatch")
    fields = ",".join(f"{c['type']} {c['name']}" for c in execute["inputs"][0]["components"])
    assert eip712.BATCH_TYPE == f"Batch({fields})"


def test_decode_revert_names_custom_errors_and_survives_garbage():
    selector = function_signature_to_4byte_selector("BatchAlreadyExecuted(bytes32)")
    reason = batcher_abi.decode_revert("0x" + (selector + encode(["bytes32"], [b"\x07" * 32])).hex())
    assert (reason.name, reason.args) == ("BatchAlreadyExecuted", (b"\x07" * 32,))
    message = function_signature_to_4byte_selector("Error(string)") + encode(["string"], ["balance"])
    assert batcher_abi.decode_revert(message).args == ("balance",)
    assert batcher_abi.decode_revert(selector + b"\x01").name == "BatchAlreadyExecuted"  # truncated
    assert batcher_abi.decode_revert(selector + b"\x01").args == ()
    assert batcher_abi.decode_revert(b"\xde\xad\xbe\xef").name == "unknown"
    assert batcher_abi.decode_revert(None).name == "unknown"
    assert set(batcher_abi.event_topics()) >= {"PayoutSent", "PayoutFailed", "BatchExecuted", "Funded"}
