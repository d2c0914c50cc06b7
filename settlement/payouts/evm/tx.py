"""EIP-1559 transactions signed through the `Signer` port.

The key never leaves the signer: eth-account builds the unsigned type-2
transaction and its signing hash, the signer signs the hash, eth-account
serialises the result. A KMS signer then only needs `sign_hash`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account._utils.signing import (
    encode_transaction,
    serializable_unsigned_transaction_from_dict,
)
from eth_utils import keccak, to_checksum_address

from settlement.payouts.evm.fees import Fees
from settlement.payouts.evm.signer import Signer, SignerError


@dataclass(frozen=True)
class SignedTx:
    raw: str  # 0x hex of the serialised transaction
    tx_hash: str  # 0x hex, lowercase


def sign_tx(signer: Signer, *, chain_id: int, nonce: int, to: str | None, data: bytes, gas: int, fees: Fees,
            value: int = 0) -> SignedTx:
    tx = {
        "type": 2,
        "chainId": chain_id,
        "nonce": nonce,
        "to": to_checksum_address(to) if to else b"",  # empty: contract creation
        "value": value,
        "data": data,
        "gas": gas,
        "maxFeePerGas": fees.max_fee_per_gas,
        "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        "accessList": [],
    }
    unsigned = serializable_unsigned_transaction_from_dict(tx)
    sig = signer.sign_hash(unsigned.hash())
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64] - 27
    raw = encode_transaction(unsigned, vrs=(v, r, s))
    # Cheap insurance against a signer that signed something else.
    if Account.recover_transaction(raw) != to_checksum_address(signer.address):
        raise SignerError("transaction signature does not recover to the sender")
    return SignedTx("0x" + raw.hex(), "0x" + keccak(raw).hex())
