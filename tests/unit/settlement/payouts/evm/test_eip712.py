"""settlement.payouts.evm.eip712 against eth-account's generic EIP-712 encoder (an
independent implementation); the on-chain check is in
tests/integration/test_payout_batcher.py."""

from __future__ import annotations

import os

import pytest
from eth_abi import decode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.payouts.evm.eip712 import (
    BATCH_ABI_TUPLE,
    EXECUTE_BATCH_SELECTOR,
    NATIVE,
    Batch,
    BatchEncodingError,
    Domain,
    FundingSource,
    batch_digest,
    domain_separator,
    execute_batch_calldata,
    sign_batch,
    struct_hash,
    typed_data,
)
from settlement.payouts.evm.signer import LocalKeySigner, SignerError

SIGNER = LocalKeySigner(bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"))
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TOKEN = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
TREASURY = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"

addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
amounts = st.integers(min_value=1, max_value=2**200)


def make(recipients=None, amounts_=None, **kw) -> Batch:
    recipients = recipients or [to_checksum_address(os.urandom(20)) for _ in range(3)]
    fields = dict(
        batch_id=os.urandom(32), asset=NATIVE, source=FundingSource.CONTRACT, treasury=NATIVE,
        recipients=tuple(recipients), amounts=tuple(amounts_ or [1] * len(recipients)), expiry=1_900_000_000,
    )
    fields.update(kw)
    return Batch(**fields)


def eth_account_digest(batch: Batch, domain: Domain) -> tuple[bytes, bytes, bytes]:
    msg = encode_typed_data(full_message=typed_data(batch, domain))
    return msg.header, msg.body, keccak(b"\x19" + msg.version + msg.header + msg.body)


@settings(max_examples=60, deadline=None)
@given(
    recipients=st.lists(addresses, min_size=1, max_size=8),
    amount=amounts,
    chain_id=st.integers(min_value=1, max_value=2**63),
    expiry=st.integers(min_value=0, max_value=2**64),
    treasury_mode=st.booleans(),
)
def test_digest_equals_eth_accounts_typed_data_hash(recipients, amount, chain_id, expiry, treasury_mode):
    recipients = [r if r != NATIVE else TREASURY for r in recipients]
    batch = make(
        recipients,
        [amount + i for i in range(len(recipients))],
        asset=TOKEN if treasury_mode else NATIVE,
        source=FundingSource.TREASURY if treasury_mode else FundingSource.CONTRACT,
        treasury=TREASURY if treasury_mode else NATIVE,
        expiry=expiry,
    )
    domain = Domain(chain_id, CONTRACT)
    header, body, digest = eth_account_digest(batch, domain)
    assert header == domain_separator(domain)
    assert body == struct_hash(batch)
    assert digest == batch_digest(batch, domain)


def test_every_signed_field_changes_the_digest():
    base = make()
    domain = Domain(14, CONTRACT)
    variants = [
        make(base.recipients, base.amounts, batch_id=os.urandom(32), expiry=base.expiry),
        make(base.recipients, base.amounts, batch_id=base.batch_id, expiry=base.expiry, asset=TOKEN),
        make(base.recipients, base.amounts, batch_id=base.batch_id, expiry=base.expiry, asset=TOKEN,
             source=FundingSource.TREASURY, treasury=TREASURY),
        make(base.recipients[::-1], base.amounts, batch_id=base.batch_id, expiry=base.expiry),
        make(base.recipients, (1, 1, 2), batch_id=base.batch_id, expiry=base.expiry),
        make(base.recipients, base.amounts, batch_id=base.batch_id, expiry=base.expiry + 1),
    ]
    digests = {batch_digest(b, domain) for b in [base, *variants]}
    digests |= {batch_digest(base, Domain(15, CONTRACT)), batch_digest(base, Domain(14, TOKEN))}
    assert len(digests) == len(variants) + 3


def test_sign_batch_recovers_to_the_signer_through_eth_account():
    batch = make(asset=TOKEN)
    domain = Domain(31337, CONTRACT)
    sig = sign_batch(batch, domain, SIGNER)
    signable = encode_typed_data(full_message=typed_data(batch, domain))
    assert Account.recover_message(signable, signature=sig) == SIGNER.address


class _OffByOneSigner:
    """A signer that signs something other than the digest it is given."""

    address = SIGNER.address

    def sign_hash(self, digest: bytes) -> bytes:
        return SIGNER.sign_hash(keccak(digest))


def test_sign_batch_refuses_a_signature_that_does_not_recover_to_the_signer():
    with pytest.raises(SignerError, match="does not recover to the signer"):
        sign_batch(make(), Domain(1, CONTRACT), _OffByOneSigner())


def test_calldata_round_trips():
    batch = make(asset=TOKEN, source=FundingSource.TREASURY, treasury=TREASURY.lower(), amounts_=[5, 6, 2**255])
    sig = sign_batch(batch, Domain(1, CONTRACT), SIGNER)
    data = execute_batch_calldata(batch, sig)
    assert data[:4] == EXECUTE_BATCH_SELECTOR
    (decoded, decoded_sig) = decode([BATCH_ABI_TUPLE, "bytes"], data[4:])
    assert decoded[0] == batch.batch_id
    assert decoded[1:4] == (TOKEN.lower(), 1, TREASURY.lower())
    assert [to_checksum_address(r) for r in decoded[4]] == list(batch.recipients)
    assert list(decoded[5]) == [5, 6, 2**255]
    assert decoded[6] == batch.expiry and decoded_sig == sig
    assert batch.treasury == TREASURY  # normalised to the checksum form
    with pytest.raises(BatchEncodingError, match="signature: must be 65 bytes"):
        execute_batch_calldata(batch, sig[:64])


A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"batch_id": b"\x01" * 31}, "batch.batch_id: must be 32 bytes"),
        ({"batch_id": "00" * 32}, "batch.batch_id: must be 32 bytes"),
        ({"asset": "0x1234"}, "batch.asset: not an address"),
        ({"asset": A.replace("C8", "c8")}, "batch.asset: bad EIP-55 checksum"),
        ({"source": 2}, "batch.source: must be 0 .contract. or 1 .treasury."),
        ({"treasury": TREASURY}, "batch.treasury: must be the zero address when source is CONTRACT"),
        ({"source": FundingSource.TREASURY, "treasury": TREASURY}, "batch.treasury: TREASURY funding needs an ERC-20"),
        ({"source": FundingSource.TREASURY, "asset": TOKEN}, "batch.treasury: TREASURY funding needs an ERC-20"),
        ({"recipients": ()}, "batch.recipients: a batch needs at least one recipient"),
        ({"recipients": (A, "nope")}, r"batch.recipients\[1\]: not an address"),
        ({"recipients": (A, NATIVE)}, r"batch.recipients\[1\]: the zero address cannot be paid"),
        ({"amounts": (1,)}, "batch.amounts: 1 amounts for 2 recipients"),
        ({"amounts": (1, 0)}, r"batch.amounts\[1\]: must be an integer in 1..2\*\*256-1"),
        ({"amounts": (1, -5)}, r"batch.amounts\[1\]"),
        ({"amounts": (True, 1)}, r"batch.amounts\[0\]"),
        ({"amounts": (1.0, 1)}, r"batch.amounts\[0\]"),
        ({"amounts": (1, 2**256)}, r"batch.amounts\[1\]"),
        ({"amounts": (2**255, 2**255)}, "batch.amounts: total overflows uint256"),
        ({"expiry": -1}, "batch.expiry: must be a non-negative integer"),
        ({"expiry": "tomorrow"}, "batch.expiry: must be a non-negative integer"),
    ],
)
def test_invalid_batches_are_refused_naming_the_field(changes, message):
    fields = dict(
        batch_id=os.urandom(32), asset=NATIVE, source=FundingSource.CONTRACT, treasury=NATIVE,
        recipients=(A, TREASURY), amounts=(1, 2), expiry=1,
    )
    fields.update(changes)
    with pytest.raises(BatchEncodingError, match=message):
        Batch(**fields)


def test_domain_is_validated():
    with pytest.raises(BatchEncodingError, match="domain.chain_id"):
        Domain(0, CONTRACT)
    with pytest.raises(BatchEncodingError, match="domain.verifying_contract"):
        Domain(1, "0xnope")
    assert Domain(1, CONTRACT.lower()).verifying_contract == CONTRACT
