"""EIP-712 hashing, signing and calldata for PayoutBatcher batches.

Pure functions, no I/O. The hashing here must equal the contract's
`_digest` bit for bit; `batchDigest` on chain and eth-account's generic
typed-data encoder are both checked against it in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from eth_abi import encode
from eth_utils import (
    function_signature_to_4byte_selector,
    is_address,
    is_checksum_address,
    keccak,
    to_checksum_address,
)

from config.errors import ChainsettleError
from settlement.payouts.evm.signer import Signer, SignerError, recover_address

DOMAIN_NAME = "ChainsettlePayoutBatcher"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
BATCH_TYPE = (
    "Batch(bytes32 batchId,address asset,uint8 source,address treasury,"
    "address[] recipients,uint256[] amounts,uint256 expiry)"
)
DOMAIN_TYPEHASH = keccak(text=DOMAIN_TYPE)
BATCH_TYPEHASH = keccak(text=BATCH_TYPE)

BATCH_ABI_TUPLE = "(bytes32,address,uint8,address,address[],uint256[],uint256)"
EXECUTE_BATCH = f"executeBatch({BATCH_ABI_TUPLE},bytes)"
EXECUTE_BATCH_SELECTOR = function_signature_to_4byte_selector(EXECUTE_BATCH)

NATIVE = "0x0000000000000000000000000000000000000000"
UINT256_MAX = 2**256 - 1


class BatchEncodingError(ChainsettleError):
    """invalid payout batch"""


class FundingSource(IntEnum):
    CONTRACT = 0  # the batcher's own balance (native coin always uses this)
    TREASURY = 1  # ERC-20 transferFrom(treasury, ...) on the treasury's allowance


@dataclass(frozen=True)
class Domain:
    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, int) or isinstance(self.chain_id, bool) or self.chain_id <= 0:
            raise BatchEncodingError(f"domain.chain_id: must be a positive integer, got {self.chain_id!r}")
        object.__setattr__(self, "verifying_contract", _address(self.verifying_contract, "domain.verifying_contract"))


@dataclass(frozen=True)
class Batch:
    """One signed payout batch, field for field the contract's `Batch` struct."""

    batch_id: bytes
    asset: str  # NATIVE or an ERC-20 address
    source: FundingSource
    treasury: str  # NATIVE (zero) unless source is TREASURY
    recipients: tuple[str, ...]
    amounts: tuple[int, ...]
    expiry: int  # unix seconds; void once a block's timestamp exceeds it

    def __post_init__(self) -> None:
        # Everything the contract would reject is rejected here first, so a
        # batch that is signed is one the contract can run.
        if not isinstance(self.batch_id, (bytes, bytearray)) or len(self.batch_id) != 32:
            raise BatchEncodingError("batch.batch_id: must be 32 bytes")
        asset = _address(self.asset, "batch.asset")
        treasury = _address(self.treasury, "batch.treasury")
        try:
            source = FundingSource(self.source)
        except ValueError:
            raise BatchEncodingError(f"batch.source: must be 0 (contract) or 1 (treasury), got {self.source!r}") from None
        if source is FundingSource.CONTRACT and treasury != NATIVE:
            raise BatchEncodingError("batch.treasury: must be the zero address when source is CONTRACT")
        if source is FundingSource.TREASURY and (asset == NATIVE or treasury == NATIVE):
            raise BatchEncodingError("batch.treasury: TREASURY funding needs an ERC-20 asset and a treasury address")
        recipients = tuple(_address(r, f"batch.recipients[{i}]") for i, r in enumerate(self.recipients))
        amounts = tuple(self.amounts)
        if not recipients:
            raise BatchEncodingError("batch.recipients: a batch needs at least one recipient")
        if len(amounts) != len(recipients):
            raise BatchEncodingError(
                f"batch.amounts: {len(amounts)} amounts for {len(recipients)} recipients"
            )
        for i, (to, amount) in enumerate(zip(recipients, amounts)):
            if to == NATIVE:
                raise BatchEncodingError(f"batch.recipients[{i}]: the zero address cannot be paid")
            if not _is_uint(amount) or amount == 0:
                raise BatchEncodingError(f"batch.amounts[{i}]: must be an integer in 1..2**256-1, got {amount!r}")
        if sum(amounts) > UINT256_MAX:
            raise BatchEncodingError("batch.amounts: total overflows uint256")
        if not _is_uint(self.expiry):
            raise BatchEncodingError(f"batch.expiry: must be a non-negative integer, got {self.expiry!r}")
        object.__setattr__(self, "batch_id", bytes(self.batch_id))
        object.__setattr__(self, "asset", asset)
        object.__setattr__(self, "treasury", treasury)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "recipients", recipients)
        object.__setattr__(self, "amounts", amounts)

    @property
    def total(self) -> int:
        return sum(self.amounts)

    def as_abi_tuple(self) -> tuple:
        return (
            self.batch_id,
            self.asset,
            int(self.source),
            self.treasury,
            list(self.recipients),
            list(self.amounts),
            self.expiry,
        )


def domain_separator(domain: Domain) -> bytes:
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                domain.chain_id,
                domain.verifying_contract,
            ],
        )
    )


def struct_hash(batch: Batch) -> bytes:
    # EIP-712 arrays: keccak of the concatenated 32-byte encodings of the elements.
    recipients_hash = keccak(b"".join(encode(["address"], [r]) for r in batch.recipients))
    amounts_hash = keccak(b"".join(a.to_bytes(32, "big") for a in batch.amounts))
    return keccak(
        encode(
            ["bytes32", "bytes32", "address", "uint8", "address", "bytes32", "bytes32", "uint256"],
            [
                BATCH_TYPEHASH,
                batch.batch_id,
                batch.asset,
                int(batch.source),
                batch.treasury,
                recipients_hash,
                amounts_hash,
                batch.expiry,
            ],
        )
    )


def batch_digest(batch: Batch, domain: Domain) -> bytes:
    """The 32 bytes an authorised signer signs for `batch` on `domain`."""
    return keccak(b"\x19\x01" + domain_separator(domain) + struct_hash(batch))


def typed_data(batch: Batch, domain: Domain) -> dict:
    """The same batch as eth_signTypedData_v4 JSON, for wallets and external signers."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Batch": [
                {"name": "batchId", "type": "bytes32"},
                {"name": "asset", "type": "address"},
                {"name": "source", "type": "uint8"},
                {"name": "treasury", "type": "address"},
                {"name": "recipients", "type": "address[]"},
                {"name": "amounts", "type": "uint256[]"},
                {"name": "expiry", "type": "uint256"},
            ],
        },
        "primaryType": "Batch",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": {
            "batchId": "0x" + batch.batch_id.hex(),
            "asset": batch.asset,
            "source": int(batch.source),
            "treasury": batch.treasury,
            "recipients": list(batch.recipients),
            "amounts": list(batch.amounts),
            "expiry": batch.expiry,
        },
    }


def sign_batch(batch: Batch, domain: Domain, signer: Signer) -> bytes:
    """65-byte signature over `batch`, checked to recover to `signer.address`.

    The check costs a millisecond and catches a signer (remote or local)
    that signed something else before the signature is stored and sent.
    """
    digest = batch_digest(batch, domain)
    signature = signer.sign_hash(digest)
    if recover_address(digest, signature) != to_checksum_address(signer.address):
        raise SignerError("signature: does not recover to the signer's address")
    return signature


def execute_batch_calldata(batch: Batch, signature: bytes) -> bytes:
    """Calldata for `executeBatch(Batch, bytes)`."""
    if len(signature) != 65:
        raise BatchEncodingError("signature: must be 65 bytes")
    return EXECUTE_BATCH_SELECTOR + encode([BATCH_ABI_TUPLE, "bytes"], [batch.as_abi_tuple(), bytes(signature)])


def _address(value: object, field: str) -> str:
    if isinstance(value, str) and is_address(value):
        digits = value[2:]
        # Mixed case is a checksum claim: a wrong one is a typo, not an address.
        if digits in (digits.lower(), digits.upper()) or is_checksum_address(value):
            return to_checksum_address(value)
        raise BatchEncodingError(f"{field}: bad EIP-55 checksum: {value!r}")
    raise BatchEncodingError(f"{field}: not an address: {value!r}")


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT256_MAX
