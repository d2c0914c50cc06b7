"""ClaimDistributor calldata and voucher EIP-712 hashing (pure, no I/O).

The voucher digest here must equal the contract's `voucherDigest` bit for
bit (tests/integration/contracts/test_claim_distributor.py checks it on
anvil); leaf and proof encoding are settlement/distributions/merkle.py's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, keccak

from settlement.payouts.evm.signer import Signer

DOMAIN_NAME = "ChainsettleClaimDistributor"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
VOUCHER_TYPE = ("Voucher(bytes32 nonce,address recipient,address asset,uint256 amount,uint256 validAfter,"
                "uint256 validBefore)")
VOUCHER_TUPLE = "(bytes32,address,address,uint256,uint256,uint256)"
NATIVE = "0x" + "00" * 20
ABI_PATH = Path(__file__).resolve().parents[2] / "config" / "abis" / "claim_distributor.json"


def _call(signature: str, types: list[str], args: list) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, args)


def create_epoch(epoch: int, root: str, asset: str, total: int, deadline: int, sweep_to: str) -> bytes:
    return _call("createEpoch(uint256,bytes32,address,uint256,uint64,address)",
                 ["uint256", "bytes32", "address", "uint256", "uint64", "address"],
                 [epoch, bytes.fromhex(root.removeprefix("0x")), asset, total, deadline, sweep_to])


def fund_epoch(epoch: int, amount: int) -> bytes:
    return _call("fundEpoch(uint256,uint256)", ["uint256", "uint256"], [epoch, amount])


def claim(epoch: int, index: int, account: str, amount: int, proof: list[str]) -> bytes:
    return _call("claim(uint256,uint256,address,uint256,bytes32[])",
                 ["uint256", "uint256", "address", "uint256", "bytes32[]"],
                 [epoch, index, account, amount, [bytes.fromhex(p.removeprefix("0x")) for p in proof]])


def sweep(epoch: int) -> bytes:
    return _call("sweep(uint256)", ["uint256"], [epoch])


def fund_vouchers(asset: str, amount: int) -> bytes:
    return _call("fundVouchers(address,uint256)", ["address", "uint256"], [asset, amount])


def revoke_voucher(nonce: bytes) -> bytes:
    return _call("revokeVoucher(bytes32)", ["bytes32"], [nonce])


@dataclass(frozen=True)
class Voucher:
    nonce: bytes  # 32 random bytes
    recipient: str
    asset: str  # NATIVE or an ERC-20 address
    amount: int
    valid_after: int  # unix seconds, inclusive
    valid_before: int  # unix seconds, exclusive

    def values(self) -> list:
        return [self.nonce, self.recipient, self.asset, self.amount, self.valid_after, self.valid_before]


def voucher_digest(v: Voucher, chain_id: int, contract: str) -> bytes:
    domain = keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                           [keccak(text=DOMAIN_TYPE), keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION),
                            chain_id, contract]))
    struct = keccak(encode(["bytes32", "bytes32", "address", "address", "uint256", "uint256", "uint256"],
                           [keccak(text=VOUCHER_TYPE), *v.values()]))
    return keccak(b"\x19\x01" + domain + struct)


def sign_voucher(v: Voucher, chain_id: int, contract: str, signer: Signer) -> bytes:
    return signer.sign_hash(voucher_digest(v, chain_id, contract))


def redeem(v: Voucher, signature: bytes) -> bytes:
    return _call(f"redeem({VOUCHER_TUPLE},bytes)", [VOUCHER_TUPLE, "bytes"], [tuple(v.values()), signature])


def errors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, argument types), from the committed ABI."""
    out = {}
    for item in json.loads(ABI_PATH.read_text()):
        if item["type"] == "error":
            types = [i["type"] for i in item["inputs"]]
            out[function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")] = (item["name"], types)
    return out
