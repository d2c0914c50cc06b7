"""ClaimDistributor on a real anvil: Merkle claims once per leaf (some twice, wrong and
borrowed proofs, after the window), funding checked against the tree's total, an exact
sweep, and EIP-712 vouchers (digest equal to the contract's, single use, window, revoke)."""

from __future__ import annotations

import os

import pytest
from eth_abi import decode

from settlement.distributions import claim_abi as ca
from settlement.distributions.merkle import claim_tree
from settlement.payouts.evm.signer import LocalKeySigner
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import balance, fresh_address, latest_timestamp, rpc
from tests.support.evm import call, deploy, deploy_token, send, token_balance

OWNER = DEV_ACCOUNTS[0][0]
SIGNER, SIGNER_KEY = DEV_ACCOUNTS[1]
RELAYER = DEV_ACCOUNTS[3][0]
ERRORS = ca.errors()


def revert(anvil, to: str, data: bytes, frm: str = RELAYER, value: int = 0) -> str | None:
    out = rpc(anvil, "eth_call", [{"from": frm, "to": to, "data": "0x" + data.hex(), "value": hex(value)}, "latest"])
    if "error" not in out:
        return None
    raw = bytes.fromhex((out["error"].get("data") or "0x")[2:])
    return ERRORS.get(raw[:4], (raw.hex(), []))[0]


def rejected(anvil, to: str, data: bytes, error: str, frm: str = RELAYER, value: int = 0) -> None:
    assert revert(anvil, to, data, frm, value) == error
    with pytest.raises(RuntimeError, match="reverted"):
        send(anvil.url, frm, to, "0x" + data.hex(), value=value, gas=1_000_000)


def tx(anvil, to: str, data: bytes, frm: str = RELAYER, value: int = 0) -> dict:
    return send(anvil.url, frm, to, "0x" + data.hex(), value=value)


def warp(anvil, seconds: int) -> None:
    rpc(anvil, "evm_increaseTime", [seconds])
    rpc(anvil, "evm_mine", [])


@pytest.fixture
def distributor(anvil) -> str:
    return deploy(anvil.url, "ClaimDistributor", SIGNER, frm=OWNER).lower()


def test_claims_once_proofs_window_funding_and_sweep(anvil, distributor):
    d = distributor
    shares = [(i, fresh_address().lower(), (i + 1) * 10**15 + i) for i in range(9)]
    tree = claim_tree(shares)
    total = sum(a for _, _, a in shares)
    sweep_to = fresh_address().lower()
    deadline = latest_timestamp(anvil) + 3600
    leaf = {i: (i, a, amt) for i, a, amt in shares}
    proof = {int(v[0]): tree.proof(k) for k, (v, _) in enumerate(tree.values)}

    def claim(i, account=None, amount=None, prf=None):
        _, a, amt = leaf[i]
        return ca.claim(1, i, account or a, amount if amount is not None else amt, prf if prf is not None else proof[i])

    rejected(anvil, d, ca.create_epoch(1, tree.root, ca.NATIVE, total, deadline, sweep_to), "NotOwner")
    tx(anvil, d, ca.create_epoch(1, tree.root, ca.NATIVE, total, deadline, sweep_to), frm=OWNER)
    rejected(anvil, d, ca.create_epoch(1, tree.root, ca.NATIVE, total, deadline, sweep_to), "EpochExists", frm=OWNER)
    # Funded short: no claim at all, not even the first.
    tx(anvil, d, ca.fund_epoch(1, total - 1), value=total - 1, frm=OWNER)
    rejected(anvil, d, claim(0), "FundedShort")
    rejected(anvil, d, ca.fund_epoch(1, 2), "OverFunded", frm=OWNER, value=2)
    tx(anvil, d, ca.fund_epoch(1, 1), value=1, frm=OWNER)
    gas = []
    for i in range(6):
        r = tx(anvil, d, claim(i))
        gas.append(int(r["gasUsed"], 16))
        assert balance(anvil, leaf[i][1]) == leaf[i][2]
    for i in (0, 3):  # twice
        rejected(anvil, d, claim(i), "AlreadyClaimed")
    rejected(anvil, d, claim(6, prf=proof[7]), "InvalidProof")  # a wrong proof
    rejected(anvil, d, claim(7, account=leaf[7][1], amount=leaf[6][2], prf=proof[6]), "InvalidProof")  # another's
    rejected(anvil, d, claim(6, account=RELAYER), "InvalidProof")  # the proof, another account
    rejected(anvil, d, claim(6, amount=leaf[6][2] + 1), "InvalidProof")
    rejected(anvil, d, ca.sweep(1), "ClaimWindowOpen", frm=OWNER)
    tx(anvil, d, claim(6))
    warp(anvil, 3601)
    rejected(anvil, d, claim(7), "ClaimWindowClosed")  # after the window
    rejected(anvil, d, ca.sweep(1), "NotOwner")
    tx(anvil, d, ca.sweep(1), frm=OWNER)
    assert balance(anvil, sweep_to) == leaf[7][2] + leaf[8][2]
    rejected(anvil, d, ca.sweep(1), "AlreadySwept", frm=OWNER)
    assert balance(anvil, d) == 0
    assert max(gas) < 130_000, gas  # first claim writes a new bitmap word; each pays a new account


def test_token_epoch_and_a_tree_whose_leaves_exceed_its_total(anvil, distributor):
    d = distributor
    token = deploy_token(anvil.url).lower()
    shares = [(0, fresh_address().lower(), 600), (1, fresh_address().lower(), 500)]
    tree = claim_tree(shares)
    deadline = latest_timestamp(anvil) + 3600
    # Registered with a total below the sum of its leaves (a wrong tree): the contract
    # pays at most the funded total, the second claim is refused.
    tx(anvil, d, ca.create_epoch(7, tree.root, token, 1000, deadline, OWNER), frm=OWNER)
    send(anvil.url, OWNER, token, "0x" + ca._call("approve(address,uint256)", ["address", "uint256"],
                                                  [d, 1000]).hex())
    tx(anvil, d, ca.fund_epoch(7, 1000), frm=OWNER)
    tx(anvil, d, ca.claim(7, 0, shares[0][1], 600, tree.proof(0)))
    assert token_balance(anvil.url, token, shares[0][1]) == 600
    rejected(anvil, d, ca.claim(7, 1, shares[1][1], 500, tree.proof(1)), "FundedShort")


def test_vouchers_digest_single_use_window_and_revoke(anvil, distributor):
    d = distributor
    chain_id = int(anvil.rpc("eth_chainId", []), 16)
    signer = LocalKeySigner(bytes.fromhex(SIGNER_KEY.removeprefix("0x")))
    now = latest_timestamp(anvil)
    to = fresh_address().lower()
    v = ca.Voucher(os.urandom(32), to, ca.NATIVE, 10**15, now - 10, now + 600)
    onchain = call(anvil.url, d, f"voucherDigest({ca.VOUCHER_TUPLE})", [ca.VOUCHER_TUPLE], [tuple(v.values())])
    assert bytes.fromhex(onchain[2:]) == ca.voucher_digest(v, chain_id, d)
    sig = ca.sign_voucher(v, chain_id, d, signer)
    rejected(anvil, d, ca.redeem(v, sig), "VoucherFundsShort")
    tx(anvil, d, ca.fund_vouchers(ca.NATIVE, 5 * 10**15), value=5 * 10**15, frm=OWNER)
    tx(anvil, d, ca.redeem(v, sig))
    assert balance(anvil, to) == 10**15
    rejected(anvil, d, ca.redeem(v, sig), "VoucherUsed")
    # another amount under the same signature, or a signature of another key
    forged = ca.Voucher(os.urandom(32), to, ca.NATIVE, 10**15, now - 10, now + 600)
    rejected(anvil, d, ca.redeem(ca.Voucher(forged.nonce, to, ca.NATIVE, 2 * 10**15, now - 10, now + 600),
                                 ca.sign_voucher(forged, chain_id, d, signer)), "InvalidSignature")
    other = LocalKeySigner(os.urandom(32))
    rejected(anvil, d, ca.redeem(forged, ca.sign_voucher(forged, chain_id, d, other)), "InvalidSignature")
    # window: not yet valid, and expired
    early = ca.Voucher(os.urandom(32), to, ca.NATIVE, 1, now + 500, now + 600)
    rejected(anvil, d, ca.redeem(early, ca.sign_voucher(early, chain_id, d, signer)), "VoucherNotValid")
    late = ca.Voucher(os.urandom(32), to, ca.NATIVE, 1, now - 100, now + 5)
    warp(anvil, 30)
    rejected(anvil, d, ca.redeem(late, ca.sign_voucher(late, chain_id, d, signer)), "VoucherNotValid")
    # revoked before use
    rv = ca.Voucher(os.urandom(32), to, ca.NATIVE, 1, now - 10, now + 6000)
    rejected(anvil, d, ca.revoke_voucher(rv.nonce), "NotOwner")
    tx(anvil, d, ca.revoke_voucher(rv.nonce), frm=OWNER)
    rejected(anvil, d, ca.redeem(rv, ca.sign_voucher(rv, chain_id, d, signer)), "VoucherUsed")
    state = call(anvil.url, d, "voucherState(bytes32)", ["bytes32"], [rv.nonce])
    assert decode(["uint8"], bytes.fromhex(state[2:]))[0] == 2
