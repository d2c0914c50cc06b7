"""PayoutBatcher on a real anvil: exactly-once, signature checks, failing
recipients, both ERC-20 funding modes, admin, and gas per recipient.

Batches are hashed and signed by settlement.payouts.evm.eip712 / settlement.payouts.evm.signer (the
daemon's own code); transactions are sent from anvil's unlocked accounts, a
relayer that is deliberately not the signer.
"""

from __future__ import annotations

import os
import time

import pytest
from eth_abi import decode, encode
from eth_account import Account
from eth_utils import to_checksum_address

from settlement.payouts.evm import batcher_abi
from settlement.payouts.evm.eip712 import (
    BATCH_ABI_TUPLE,
    EXECUTE_BATCH_SELECTOR,
    NATIVE,
    Batch,
    Domain,
    FundingSource,
    batch_digest,
    domain_separator,
    execute_batch_calldata,
    sign_batch,
)
from settlement.payouts.evm.signer import LocalKeySigner
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import (
    RELAYER,
    assert_rejected,
    balance,
    fresh_address,
    is_executed,
    latest_timestamp,
    logs,
    raw_view,
    revert_of,
    view,
    view_uint,
)
from tests.support.evm import calldata, deploy, deploy_token, send, token_balance

OWNER = DEV_ACCOUNTS[0][0]
SIGNER = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1][2:]))
OTHER_SIGNER = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[2][1][2:]))
TREASURY = DEV_ACCOUNTS[2][0]
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ETHER = 10**18


# ----------------------------------------------------------------- helpers


def domain_of(anvil, batcher: str) -> Domain:
    return Domain(int(anvil.rpc("eth_chainId", []), 16), batcher)


def new_batch(anvil, recipients, amounts, *, asset=NATIVE, source=FundingSource.CONTRACT, treasury=NATIVE,
              batch_id: bytes | None = None, expiry: int | None = None) -> Batch:
    return Batch(
        batch_id=batch_id or os.urandom(32),
        asset=asset,
        source=source,
        treasury=treasury,
        recipients=tuple(recipients),
        amounts=tuple(amounts),
        expiry=expiry if expiry is not None else latest_timestamp(anvil) + 3600,
    )


def execute(anvil, batcher: str, data: bytes, *, gas: int | None = None, frm: str = RELAYER) -> dict:
    return send(anvil.url, frm, batcher, "0x" + data.hex(), gas=gas)


def signed_calldata(anvil, batcher: str, batch: Batch, signer=SIGNER) -> bytes:
    return execute_batch_calldata(batch, sign_batch(batch, domain_of(anvil, batcher), signer))


def admin(anvil, batcher: str, signature: str, types: list[str], args: list, frm: str = OWNER) -> dict:
    return send(anvil.url, frm, batcher, calldata(signature, types, args))


@pytest.fixture
def batcher(anvil) -> str:
    address = deploy(anvil.url, "PayoutBatcher", OWNER, SIGNER.address)
    send(anvil.url, OWNER, address, value=100 * ETHER)
    return to_checksum_address(address)


# ------------------------------------------------------------------ hashing


def test_python_digest_equals_the_contracts(anvil, batcher):
    batch = new_batch(anvil, [fresh_address(), fresh_address()], [1, 2**255])
    domain = domain_of(anvil, batcher)
    on_chain = view(anvil, batcher, f"batchDigest({BATCH_ABI_TUPLE})", [BATCH_ABI_TUPLE], [batch.as_abi_tuple()])
    assert on_chain == batch_digest(batch, domain)
    assert view(anvil, batcher, "domainSeparator()") == domain_separator(domain)
    fields = decode(
        ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"],
        view(anvil, batcher, "eip712Domain()"),
    )
    assert fields[1:5] == ("ChainsettlePayoutBatcher", "1", domain.chain_id, batcher.lower())


def test_after_a_chain_id_change_old_signatures_are_void(anvil, batcher):
    old = domain_of(anvil, batcher)
    batch = new_batch(anvil, [fresh_address()], [ETHER])
    old_data = signed_calldata(anvil, batcher, batch)
    anvil.rpc("anvil_setChainId", [old.chain_id + 1000])
    try:
        new = domain_of(anvil, batcher)
        assert view(anvil, batcher, "domainSeparator()") == domain_separator(new) != domain_separator(old)
        assert revert_of(anvil, batcher, old_data).name == "UnauthorizedSigner"
        # anvil's unlocked accounts keep signing for the old id: send a raw transaction.
        relayer_key = DEV_ACCOUNTS[3][1]
        tx = {
            "chainId": new.chain_id, "to": batcher, "data": signed_calldata(anvil, batcher, batch), "value": 0,
            "gas": 500_000, "gasPrice": 2 * int(anvil.rpc("eth_gasPrice", []), 16),
            "nonce": int(anvil.rpc("eth_getTransactionCount", [RELAYER, "latest"]), 16),
        }
        raw = Account.sign_transaction(tx, relayer_key).raw_transaction
        txh = anvil.rpc("eth_sendRawTransaction", ["0x" + raw.hex()])
        for _ in range(100):  # automine answers before the receipt is stored
            receipt = anvil.rpc("eth_getTransactionReceipt", [txh])
            if receipt:
                break
            time.sleep(0.05)
        assert receipt["status"] == "0x1"
        assert balance(anvil, batch.recipients[0]) == ETHER
    finally:
        anvil.rpc("anvil_setChainId", [old.chain_id])


# ------------------------------------------------------------------ native


def test_native_batch_pays_every_recipient_once(anvil, batcher):
    recipients = [fresh_address() for _ in range(5)]
    amounts = [ETHER + i for i in range(5)]
    batch = new_batch(anvil, recipients, amounts)
    before = balance(anvil, batcher)

    receipt = execute(anvil, batcher, signed_calldata(anvil, batcher, batch))

    assert [balance(anvil, r) for r in recipients] == amounts
    assert balance(anvil, batcher) == before - sum(amounts)
    assert is_executed(anvil, batcher, batch.batch_id)
    sent = logs(receipt, "PayoutSent")
    assert [(e["index"], e["recipient"], e["amount"]) for e in sent] == [
        (i, r.lower(), a) for i, (r, a) in enumerate(zip(recipients, amounts))
    ]
    assert all(e["batchId"] == batch.batch_id and e["asset"] == NATIVE for e in sent)
    (done,) = logs(receipt, "BatchExecuted")
    assert done == {
        "batchId": batch.batch_id, "asset": NATIVE, "signer": SIGNER.address.lower(),
        "count": 5, "total": sum(amounts), "failedCount": 0, "failedAmount": 0,
    }


def test_funding_fits_in_a_transfer_stipend_and_is_logged(anvil, batcher):
    # Exchanges and old contracts send with transfer(): 2300 gas for receive().
    tx = {"from": OWNER, "to": batcher, "value": hex(ETHER)}
    assert int(anvil.rpc("eth_estimateGas", [tx]), 16) <= 21_000 + 2_300
    receipt = send(anvil.url, OWNER, batcher, value=ETHER)
    assert logs(receipt, "Funded") == [{"from": OWNER, "amount": ETHER}]


def test_replayed_batch_id_is_rejected(anvil, batcher):
    first = new_batch(anvil, [fresh_address()], [ETHER])
    data = signed_calldata(anvil, batcher, first)
    execute(anvil, batcher, data)

    reason = assert_rejected(anvil, batcher, data, "BatchAlreadyExecuted")
    assert reason.args == (first.batch_id,)
    # A new, validly signed batch cannot reuse the id either.
    other = new_batch(anvil, [fresh_address()], [ETHER], batch_id=first.batch_id)
    assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, other), "BatchAlreadyExecuted")
    assert balance(anvil, first.recipients[0]) == ETHER
    assert balance(anvil, other.recipients[0]) == 0


def test_batch_id_with_failed_recipients_is_still_consumed(anvil, batcher):
    reverting = deploy(anvil.url, "RevertingReceiver")
    batch = new_batch(anvil, [reverting], [ETHER])
    data = signed_calldata(anvil, batcher, batch)
    receipt = execute(anvil, batcher, data)
    assert len(logs(receipt, "PayoutFailed")) == 1
    assert_rejected(anvil, batcher, data, "BatchAlreadyExecuted")


def test_expired_batch_is_rejected_and_expiry_itself_is_valid(anvil, batcher):
    expiry = latest_timestamp(anvil) + 1000
    late = new_batch(anvil, [fresh_address()], [ETHER], expiry=expiry)
    late_data = signed_calldata(anvil, batcher, late)
    anvil.rpc("evm_setNextBlockTimestamp", [expiry + 1])
    with pytest.raises(RuntimeError, match="reverted"):
        execute(anvil, batcher, late_data, gas=500_000)
    assert not is_executed(anvil, batcher, late.batch_id)
    assert balance(anvil, late.recipients[0]) == 0
    assert revert_of(anvil, batcher, late_data).name == "BatchExpired"

    expiry = latest_timestamp(anvil) + 1000
    on_time = new_batch(anvil, [fresh_address()], [ETHER], expiry=expiry)
    anvil.rpc("evm_setNextBlockTimestamp", [expiry])
    execute(anvil, batcher, signed_calldata(anvil, batcher, on_time), gas=500_000)
    assert balance(anvil, on_time.recipients[0]) == ETHER


def test_bad_signatures_are_rejected(anvil, batcher):
    batch = new_batch(anvil, [fresh_address(), fresh_address()], [ETHER, 2 * ETHER])
    domain = domain_of(anvil, batcher)
    good = sign_batch(batch, domain, SIGNER)

    def with_batch(b: Batch, sig: bytes) -> bytes:
        return EXECUTE_BATCH_SELECTOR + encode([BATCH_ABI_TUPLE, "bytes"], [b.as_abi_tuple(), sig])

    wrong_signer = sign_batch(batch, domain, OTHER_SIGNER)
    reason = assert_rejected(anvil, batcher, execute_batch_calldata(batch, wrong_signer), "UnauthorizedSigner")
    assert reason.args == (OTHER_SIGNER.address.lower(),)

    tampered_amounts = new_batch(anvil, batch.recipients, [ETHER, 3 * ETHER], batch_id=batch.batch_id,
                                 expiry=batch.expiry)
    assert_rejected(anvil, batcher, with_batch(tampered_amounts, good), "UnauthorizedSigner")
    tampered_recipients = new_batch(anvil, [batch.recipients[0], fresh_address()], batch.amounts,
                                    batch_id=batch.batch_id, expiry=batch.expiry)
    assert_rejected(anvil, batcher, with_batch(tampered_recipients, good), "UnauthorizedSigner")
    later_expiry = new_batch(anvil, batch.recipients, batch.amounts, batch_id=batch.batch_id,
                             expiry=batch.expiry + 1)
    assert_rejected(anvil, batcher, with_batch(later_expiry, good), "UnauthorizedSigner")

    other_chain = sign_batch(batch, Domain(domain.chain_id + 1, batcher), SIGNER)
    assert_rejected(anvil, batcher, execute_batch_calldata(batch, other_chain), "UnauthorizedSigner")
    other_contract = sign_batch(batch, Domain(domain.chain_id, fresh_address()), SIGNER)
    assert_rejected(anvil, batcher, execute_batch_calldata(batch, other_contract), "UnauthorizedSigner")

    # The high-s twin recovers to the same key in ecrecover: it must still be refused.
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    malleable = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    assert_rejected(anvil, batcher, execute_batch_calldata(batch, malleable), "InvalidSignature")
    assert_rejected(anvil, batcher, execute_batch_calldata(batch, good[:64] + bytes([v - 27])), "InvalidSignature")
    assert_rejected(anvil, batcher, with_batch(batch, good[:64]), "InvalidSignature")
    assert_rejected(anvil, batcher, execute_batch_calldata(batch, bytes(64) + b"\x1b"), "InvalidSignature")

    # None of that consumed the id: the genuine signature still works.
    assert not is_executed(anvil, batcher, batch.batch_id)
    execute(anvil, batcher, execute_batch_calldata(batch, good))
    assert [balance(anvil, r) for r in batch.recipients] == [ETHER, 2 * ETHER]


def test_failing_native_recipients_do_not_block_the_others(anvil, batcher):
    reverting = to_checksum_address(deploy(anvil.url, "RevertingReceiver"))
    burner = to_checksum_address(deploy(anvil.url, "GasBurningReceiver"))
    counting = to_checksum_address(deploy(anvil.url, "CountingReceiver"))
    plain = [fresh_address() for _ in range(3)]
    recipients = [plain[0], reverting, plain[1], burner, counting, plain[2]]
    amounts = [ETHER, 2 * ETHER, 3 * ETHER, 4 * ETHER, 5 * ETHER, 6 * ETHER]
    batch = new_batch(anvil, recipients, amounts)
    before = balance(anvil, batcher)

    receipt = execute(anvil, batcher, signed_calldata(anvil, batcher, batch),
                      gas=batcher_abi.gas_limit(True, len(recipients)))

    assert [balance(anvil, r) for r in recipients] == [ETHER, 0, 3 * ETHER, 0, 5 * ETHER, 6 * ETHER]
    assert view_uint(anvil, counting, "received()") == 5 * ETHER
    failed = logs(receipt, "PayoutFailed")
    assert [(e["index"], e["recipient"], e["amount"]) for e in failed] == [
        (1, reverting.lower(), 2 * ETHER), (3, burner.lower(), 4 * ETHER),
    ]
    assert [e["index"] for e in logs(receipt, "PayoutSent")] == [0, 2, 4, 5]
    (done,) = logs(receipt, "BatchExecuted")
    assert (done["count"], done["total"], done["failedCount"], done["failedAmount"]) == (6, sum(amounts), 2, 6 * ETHER)
    # The failed amounts stay in the contract, counted, for the owner to sweep.
    assert balance(anvil, batcher) == before - (ETHER + 3 * ETHER + 5 * ETHER + 6 * ETHER)
    assert view_uint(anvil, batcher, "failedNativeTotal()") == 6 * ETHER

    refund = fresh_address()
    assert_rejected(anvil, batcher, calldata("sweep(address,address,uint256)", ["address", "address", "uint256"],
                                             [NATIVE, refund, 6 * ETHER]), "NotOwner")
    admin(anvil, batcher, "sweep(address,address,uint256)", ["address", "address", "uint256"],
          [NATIVE, refund, 6 * ETHER])
    assert balance(anvil, refund) == 6 * ETHER


def test_a_low_gas_submitter_cannot_turn_a_payout_into_a_failure(anvil, batcher):
    """At any gas limit, the honest contract recipient is either paid or the
    whole batch reverts (id unused): it is never recorded as failed."""
    counting = to_checksum_address(deploy(anvil.url, "CountingReceiver"))
    batch = new_batch(anvil, [fresh_address(), counting], [ETHER, ETHER])
    data = signed_calldata(anvil, batcher, batch)
    estimate = int(anvil.rpc("eth_estimateGas", [{"from": RELAYER, "to": batcher, "data": "0x" + data.hex()}]), 16)
    outcomes = set()
    for gas in range(estimate - 60_000, estimate + 1, 3_000):
        snapshot = anvil.rpc("evm_snapshot", [])
        try:
            try:
                receipt = execute(anvil, batcher, data, gas=gas)
            except RuntimeError:
                assert not is_executed(anvil, batcher, batch.batch_id)
                outcomes.add("reverted")
                continue
            assert logs(receipt, "PayoutFailed") == []
            assert view_uint(anvil, counting, "received()") == ETHER
            outcomes.add("paid")
        finally:
            anvil.rpc("evm_revert", [snapshot])
    assert outcomes == {"reverted", "paid"}
    assert revert_of(anvil, batcher, data, gas=estimate - 20_000).name == "InsufficientGas"


def test_reentrant_recipient_cannot_run_a_second_batch(anvil, batcher):
    admin(anvil, batcher, "setNativeGasLimit(uint256)", ["uint256"], [300_000])
    attacker = to_checksum_address(deploy(anvil.url, "ReentrantReceiver"))
    inner = new_batch(anvil, [fresh_address()], [ETHER])
    inner_data = signed_calldata(anvil, batcher, inner)
    send(anvil.url, OWNER, attacker, calldata("arm(address,bytes)", ["address", "bytes"], [batcher, inner_data]))
    outer = new_batch(anvil, [attacker], [ETHER])

    execute(anvil, batcher, signed_calldata(anvil, batcher, outer), gas=2_000_000)

    assert view_uint(anvil, attacker, "attempted()") == 1
    assert view_uint(anvil, attacker, "innerSucceeded()") == 0
    (inner_return,) = decode(["bytes"], view(anvil, attacker, "innerReturn()"))
    assert batcher_abi.decode_revert(inner_return).name == "Reentrancy"
    assert not is_executed(anvil, batcher, inner.batch_id)
    execute(anvil, batcher, inner_data)
    assert balance(anvil, inner.recipients[0]) == ETHER


def test_native_batch_beyond_the_balance_pays_nobody(anvil, batcher):
    recipients = [fresh_address(), fresh_address()]
    batch = new_batch(anvil, recipients, [balance(anvil, batcher), 1])
    reason = assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, batch), "InsufficientBalance")
    assert reason.args[1] == batch.total
    assert [balance(anvil, r) for r in recipients] == [0, 0]


def test_contract_rejects_malformed_batches_even_when_signed(anvil, batcher):
    """Checks the daemon's own validation would catch first, signed via the
    contract's batchDigest so Python's validation is bypassed."""
    expiry = latest_timestamp(anvil) + 3600

    def signed(batch_tuple) -> bytes:
        digest = view(anvil, batcher, f"batchDigest({BATCH_ABI_TUPLE})", [BATCH_ABI_TUPLE], [batch_tuple])
        return EXECUTE_BATCH_SELECTOR + encode([BATCH_ABI_TUPLE, "bytes"], [batch_tuple, SIGNER.sign_hash(digest)])

    to = fresh_address()
    cases = {
        "EmptyBatch": (os.urandom(32), NATIVE, 0, NATIVE, [], [], expiry),
        "LengthMismatch": (os.urandom(32), NATIVE, 0, NATIVE, [to], [1, 2], expiry),
        "ZeroAmount": (os.urandom(32), NATIVE, 0, NATIVE, [to, to], [1, 0], expiry),
        "BadRecipient": (os.urandom(32), NATIVE, 0, NATIVE, [to, NATIVE], [1, 1], expiry),
        "BadFundingSource": (os.urandom(32), NATIVE, 1, to, [to], [1], expiry),
    }
    for error, batch_tuple in cases.items():
        assert_rejected(anvil, batcher, signed(batch_tuple), error)
    self_pay = (os.urandom(32), NATIVE, 0, NATIVE, [to, batcher], [1, 1], expiry)
    assert revert_of(anvil, batcher, signed(self_pay)).args == (1, batcher.lower())
    assert balance(anvil, to) == 0


# ------------------------------------------------------------------ ERC-20


def test_erc20_batch_from_the_contract_balance(anvil, batcher):
    token = to_checksum_address(deploy_token(anvil.url))
    send(anvil.url, OWNER, token, calldata("transfer(address,uint256)", ["address", "uint256"], [batcher, 1000]))
    recipients = [fresh_address() for _ in range(3)]
    batch = new_batch(anvil, recipients, [100, 200, 300], asset=token)

    receipt = execute(anvil, batcher, signed_calldata(anvil, batcher, batch))

    assert [token_balance(anvil.url, token, r) for r in recipients] == [100, 200, 300]
    assert token_balance(anvil.url, token, batcher) == 400
    assert [(e["index"], e["asset"], e["amount"]) for e in logs(receipt, "PayoutSent")] == [
        (0, token.lower(), 100), (1, token.lower(), 200), (2, token.lower(), 300),
    ]
    (done,) = logs(receipt, "BatchExecuted")
    assert (done["asset"], done["count"], done["total"], done["failedCount"]) == (token.lower(), 3, 600, 0)
    assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, batch), "BatchAlreadyExecuted")


def test_erc20_batch_pulled_from_the_treasury(anvil, batcher):
    token = to_checksum_address(deploy_token(anvil.url))
    send(anvil.url, OWNER, token, calldata("transfer(address,uint256)", ["address", "uint256"], [TREASURY, 10_000]))
    send(anvil.url, TREASURY, token, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 700]))
    recipients = [fresh_address() for _ in range(2)]
    batch = new_batch(anvil, recipients, [300, 400], asset=token, source=FundingSource.TREASURY, treasury=TREASURY)

    execute(anvil, batcher, signed_calldata(anvil, batcher, batch))

    assert [token_balance(anvil.url, token, r) for r in recipients] == [300, 400]
    assert token_balance(anvil.url, token, TREASURY) == 10_000 - 700
    assert token_balance(anvil.url, token, batcher) == 0
    assert view_uint(anvil, token, "allowance(address,address)", ["address", "address"], [TREASURY, batcher]) == 0

    # Beyond the allowance: the whole batch reverts and nobody is paid.
    send(anvil.url, TREASURY, token, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 500]))
    more = [fresh_address() for _ in range(2)]
    over = new_batch(anvil, more, [300, 300], asset=token, source=FundingSource.TREASURY, treasury=TREASURY)
    reason = assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, over), "TokenTransferFailed")
    assert reason.args == (1, more[1].lower(), 300)
    assert [token_balance(anvil.url, token, r) for r in more] == [0, 0]
    assert not is_executed(anvil, batcher, over.batch_id)


def test_treasury_is_part_of_the_signature(anvil, batcher):
    token = to_checksum_address(deploy_token(anvil.url))
    victim = DEV_ACCOUNTS[0][0]
    send(anvil.url, victim, token, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 10**30]))
    batch = new_batch(anvil, [fresh_address()], [5], asset=token, source=FundingSource.TREASURY, treasury=TREASURY)
    sig = sign_batch(batch, domain_of(anvil, batcher), SIGNER)
    swapped = new_batch(anvil, batch.recipients, batch.amounts, asset=token, source=FundingSource.TREASURY,
                        treasury=victim, batch_id=batch.batch_id, expiry=batch.expiry)
    assert_rejected(anvil, batcher, execute_batch_calldata(swapped, sig), "UnauthorizedSigner")


def test_tokens_that_return_nothing_or_false(anvil, batcher):
    quiet = to_checksum_address(deploy(anvil.url, "NoReturnToken"))
    send(anvil.url, OWNER, quiet, calldata("mint(address,uint256)", ["address", "uint256"], [batcher, 50]))
    send(anvil.url, OWNER, quiet, calldata("mint(address,uint256)", ["address", "uint256"], [TREASURY, 50]))
    send(anvil.url, TREASURY, quiet, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 50]))
    a, b = fresh_address(), fresh_address()
    execute(anvil, batcher, signed_calldata(anvil, batcher, new_batch(anvil, [a], [50], asset=quiet)))
    execute(anvil, batcher, signed_calldata(anvil, batcher, new_batch(
        anvil, [b], [50], asset=quiet, source=FundingSource.TREASURY, treasury=TREASURY)))
    assert (token_balance(anvil.url, quiet, a), token_balance(anvil.url, quiet, b)) == (50, 50)
    # A failing USDT-style transfer reverts inside the token: the batch reverts too.
    broke = new_batch(anvil, [a], [1], asset=quiet)
    assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, broke), "TokenTransferFailed")

    liar = to_checksum_address(deploy(anvil.url, "FalseReturningToken"))
    send(anvil.url, OWNER, liar, calldata("mint(address,uint256)", ["address", "uint256"], [batcher, 100]))
    blocked = fresh_address()
    send(anvil.url, OWNER, liar, calldata("block_(address)", ["address"], [blocked]))
    ok = fresh_address()
    batch = new_batch(anvil, [ok, blocked], [10, 10], asset=liar)
    reason = assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, batch), "TokenTransferFailed")
    assert reason.args == (1, blocked.lower(), 10)
    assert token_balance(anvil.url, liar, ok) == 0
    assert not is_executed(anvil, batcher, batch.batch_id)


def test_token_asset_without_code_is_rejected(anvil, batcher):
    batch = new_batch(anvil, [fresh_address()], [1], asset=fresh_address())
    assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, batch), "NotAContract")


# ------------------------------------------------------------------- admin


def test_paused_contract_rejects_batches(anvil, batcher):
    batch = new_batch(anvil, [fresh_address()], [ETHER])
    data = signed_calldata(anvil, batcher, batch)
    admin(anvil, batcher, "pause()", [], [])
    assert raw_view(anvil, batcher, batcher_abi.view_calldata("paused"))[-1] == 1
    assert_rejected(anvil, batcher, data, "ContractPaused")
    admin(anvil, batcher, "unpause()", [], [])
    execute(anvil, batcher, data)
    assert balance(anvil, batch.recipients[0]) == ETHER


def test_signer_rotation(anvil, batcher):
    def is_signer(who: str) -> int:
        return int.from_bytes(raw_view(anvil, batcher, batcher_abi.is_signer_calldata(who)), "big")

    assert (is_signer(SIGNER.address), is_signer(OTHER_SIGNER.address)) == (1, 0)
    admin(anvil, batcher, "setSigner(address,bool)", ["address", "bool"], [OTHER_SIGNER.address, True])
    admin(anvil, batcher, "setSigner(address,bool)", ["address", "bool"], [SIGNER.address, False])
    assert (is_signer(SIGNER.address), is_signer(OTHER_SIGNER.address)) == (0, 1)

    old = new_batch(anvil, [fresh_address()], [ETHER])
    assert_rejected(anvil, batcher, signed_calldata(anvil, batcher, old, SIGNER), "UnauthorizedSigner")
    new = new_batch(anvil, [fresh_address()], [ETHER])
    receipt = execute(anvil, batcher, signed_calldata(anvil, batcher, new, OTHER_SIGNER))
    assert logs(receipt, "BatchExecuted")[0]["signer"] == OTHER_SIGNER.address.lower()
    assert balance(anvil, new.recipients[0]) == ETHER


def test_only_the_owner_administers(anvil, batcher):
    stranger = RELAYER
    calls = [
        ("setSigner(address,bool)", ["address", "bool"], [stranger, True]),
        ("setNativeGasLimit(uint256)", ["uint256"], [1]),
        ("pause()", [], []),
        ("unpause()", [], []),
        ("transferOwnership(address)", ["address"], [stranger]),
        ("sweep(address,address,uint256)", ["address", "address", "uint256"], [NATIVE, stranger, 1]),
    ]
    for signature, types, args in calls:
        reason = assert_rejected(anvil, batcher, calldata(signature, types, args), "NotOwner", frm=stranger)
        assert reason.args == (stranger.lower(),)
    assert_rejected(anvil, batcher, calldata("setNativeGasLimit(uint256)", ["uint256"], [1_000_001]),
                    "GasLimitTooHigh", frm=OWNER)

    # Two-step transfer: the old owner keeps control until the new one accepts.
    new_owner = TREASURY
    admin(anvil, batcher, "transferOwnership(address)", ["address"], [new_owner])
    assert_rejected(anvil, batcher, calldata("acceptOwnership()", [], []), "NotPendingOwner", frm=stranger)
    admin(anvil, batcher, "acceptOwnership()", [], [], frm=new_owner)
    assert view(anvil, batcher, "owner()")[12:].hex() == new_owner[2:].lower()
    assert_rejected(anvil, batcher, calldata("pause()", [], []), "NotOwner", frm=OWNER)
    admin(anvil, batcher, "pause()", [], [], frm=new_owner)


# --------------------------------------------------------------------- gas


def _gas_of_batch(anvil, batcher, n: int, *, token: str | None = None, treasury: bool = False) -> int:
    recipients = [fresh_address() for _ in range(n)]
    if token is None:
        batch = new_batch(anvil, recipients, [1] * n)
    elif treasury:
        batch = new_batch(anvil, recipients, [1] * n, asset=token, source=FundingSource.TREASURY, treasury=TREASURY)
    else:
        batch = new_batch(anvil, recipients, [1] * n, asset=token)
    receipt = execute(anvil, batcher, signed_calldata(anvil, batcher, batch), gas=10_000_000)
    return int(receipt["gasUsed"], 16)


def test_gas_per_recipient_stays_within_the_daemons_figures(anvil, batcher):
    assert view_uint(anvil, batcher, "CALL_RESERVE()") == batcher_abi.CALL_RESERVE
    assert view_uint(anvil, batcher, "nativeGasLimit()") == 30_000
    token = to_checksum_address(deploy_token(anvil.url))
    send(anvil.url, OWNER, token, calldata("transfer(address,uint256)", ["address", "uint256"], [batcher, 10**6]))
    send(anvil.url, OWNER, token, calldata("transfer(address,uint256)", ["address", "uint256"], [TREASURY, 10**6]))
    send(anvil.url, TREASURY, token, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 10**6]))
    # Warm the treasury's balance and allowance slots to their steady state.
    _gas_of_batch(anvil, batcher, 1, token=token, treasury=True)
    figures = {}
    for label, kwargs, per_limit in [
        ("native", {}, batcher_abi.GAS_PER_NATIVE_RECIPIENT),
        ("erc20-contract", {"token": token}, batcher_abi.GAS_PER_TOKEN_RECIPIENT),
        ("erc20-treasury", {"token": token, "treasury": True}, batcher_abi.GAS_PER_TOKEN_RECIPIENT_TREASURY),
    ]:
        one = _gas_of_batch(anvil, batcher, 1, **kwargs)
        hundred = _gas_of_batch(anvil, batcher, 100, **kwargs)
        per = (hundred - one) / 99
        figures[label] = (one, hundred, per)
        assert one - per <= batcher_abi.GAS_BASE, (label, one, per)
        assert per <= per_limit, (label, per)
        assert hundred <= batcher_abi.gas_limit("token" not in kwargs, 100, treasury="treasury" in kwargs)
    print("\ngas used (1 recipient, 100 recipients, per extra recipient):", figures)


def test_gas_limit_covers_recipients_that_burn_their_allowance(anvil, batcher):
    burners = [to_checksum_address(deploy(anvil.url, "GasBurningReceiver")) for _ in range(11)]

    def run(recipients: list[str]) -> dict:
        batch = new_batch(anvil, recipients, [1] * len(recipients))
        limit = batcher_abi.gas_limit(True, len(recipients))
        receipt = execute(anvil, batcher, signed_calldata(anvil, batcher, batch), gas=limit)
        assert len(logs(receipt, "PayoutFailed")) == sum(r in burners for r in recipients)
        return receipt

    one = int(run(burners[:1])["gasUsed"], 16)
    ten = int(run(burners[1:])["gasUsed"], 16)
    per_burner = (ten - one) / 9
    assert per_burner <= 30_000 + batcher_abi.NATIVE_FAILED_EXTRA, per_burner
    # Mixed with new accounts, under the same computed limit.
    mixed = [fresh_address() if i % 2 else burners[i // 2] for i in range(10)]
    run(mixed)
    print(f"\nnative recipient burning a 30k allowance: {per_burner:.0f} gas each")
