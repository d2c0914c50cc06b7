"""Batching caps, fee arithmetic, transaction signing and the payout config."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from config import ConfigError, load_settings
from settlement.payouts.evm import batcher_abi
from settlement.payouts.evm.config import check_payout_config
from settlement.payouts.evm.fees import (
    Fees,
    bumped_fees,
    initial_fees,
    max_recipients_for_gas,
)
from settlement.payouts.evm.signer import LocalKeySigner
from settlement.payouts.evm.tx import sign_tx
from settlement.payouts.plan import Pending, next_batch

GWEI = 10**9
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def reqs(*amounts, age=100.0):
    return [Pending(i, f"0x{i:040x}", a, age) for i, a in enumerate(amounts, 1)]


def test_batch_is_capped_by_count_total_and_day():
    pending = reqs(5, 5, 5, 5, 5)
    assert [p.id for p in next_batch(pending, max_recipients=3, max_total=None, daily_left=None, wait_seconds=0)] == [1, 2, 3]
    assert [p.id for p in next_batch(pending, max_recipients=10, max_total=12, daily_left=None, wait_seconds=0)] == [1, 2]
    assert [p.id for p in next_batch(pending, max_recipients=10, max_total=None, daily_left=16, wait_seconds=0)] == [1, 2, 3]
    assert next_batch(pending, max_recipients=10, max_total=None, daily_left=4, wait_seconds=0) == []


def test_queue_order_is_kept_and_young_partial_batches_wait():
    # The large head request ends the batch instead of being skipped by smaller ones.
    pending = reqs(9, 1, 1)
    assert [p.id for p in next_batch(pending, max_recipients=10, max_total=5, daily_left=None, wait_seconds=0)] == []
    young = reqs(1, 1, age=1.0)
    assert next_batch(young, max_recipients=10, max_total=None, daily_left=None, wait_seconds=30) == []
    assert len(next_batch(young, max_recipients=2, max_total=None, daily_left=None, wait_seconds=30)) == 2
    assert len(next_batch(reqs(1, 1, age=31.0), max_recipients=10, max_total=None, daily_left=None, wait_seconds=30)) == 2


def test_requests_under_the_approval_threshold_never_wait_behind_one_above_it():
    def ids(pending, **kw):
        args = {"max_recipients": 10, "max_total": None, "daily_left": None, "wait_seconds": 0, **kw}
        return [p.id for p in next_batch(pending, **args)]

    # A 150-token request first, then a 2-token one and a 0.001-token one (threshold 100):
    # the large one goes alone (it needs approval), the small ones form their own batch.
    pending = reqs(150_000, 2_000, 1)
    assert ids(pending, approval_threshold=100_000) == [1]
    assert ids(pending[1:], approval_threshold=100_000) == [2, 3]
    # Small ones first: they never take the large one with them.
    assert ids(reqs(2, 150, 1, 200), approval_threshold=100) == [1, 3]
    # A small lane stays at or below the threshold (so it is `ready`); the cap still binds below it.
    assert ids(reqs(60, 60, 60), approval_threshold=100) == [1]
    assert ids(reqs(40, 40, 40), approval_threshold=100, max_total=50) == [1]
    assert ids(reqs(100, 1), approval_threshold=100) == [1]  # at the threshold is not above it
    # Large ones batch together; a young small lane waits while an old large lane is cut.
    assert ids(reqs(150, 200), approval_threshold=100) == [1, 2]
    young_small = [Pending(1, "0x1", 1, 1.0), Pending(2, "0x2", 500, 60.0)]
    assert ids(young_small, approval_threshold=100, wait_seconds=30) == [2]
    assert ids(reqs(1, 2, age=1.0), approval_threshold=100, wait_seconds=30) == []
    # Without a threshold nothing changes: one lane in queue order.
    assert ids(reqs(150, 2), max_total=None) == [1, 2]


def test_gas_share_bounds_recipients():
    n = max_recipients_for_gas(native=True, treasury=False, block_gas_limit=30_000_000, gas_share=0.3, cap=1000)
    assert batcher_abi.gas_limit(True, n) <= 9_000_000 < batcher_abi.gas_limit(True, n + 1)
    assert max_recipients_for_gas(native=True, treasury=False, block_gas_limit=30_000_000, gas_share=0.3, cap=50) == 50
    assert max_recipients_for_gas(native=False, treasury=False, block_gas_limit=100_000, gas_share=0.5, cap=50) == 0


def test_initial_fees_respect_the_cap():
    assert initial_fees(base_fee=10 * GWEI, suggested_priority=GWEI, cap=100 * GWEI, max_priority=2 * GWEI) == Fees(21 * GWEI, GWEI)
    assert initial_fees(base_fee=10 * GWEI, suggested_priority=5 * GWEI, cap=15 * GWEI, max_priority=2 * GWEI) == Fees(15 * GWEI, 2 * GWEI)


def test_bumps_raise_both_fields_and_stop_at_the_cap():
    old = Fees(10 * GWEI, GWEI)
    calm = bumped_fees(old, base_fee=GWEI, suggested_priority=GWEI, percent=12.5, cap=100 * GWEI, max_priority=2 * GWEI)
    assert calm == Fees(11_250_000_000, 1_125_000_000)
    spike = bumped_fees(old, base_fee=30 * GWEI, suggested_priority=GWEI, percent=12.5, cap=100 * GWEI, max_priority=2 * GWEI)
    assert spike.max_fee_per_gas == 61_125_000_000 and spike.max_priority_fee_per_gas == 1_125_000_000
    capped = bumped_fees(old, base_fee=30 * GWEI, suggested_priority=GWEI, percent=12.5, cap=12 * GWEI, max_priority=2 * GWEI)
    assert capped == Fees(12 * GWEI, 1_125_000_000)
    assert bumped_fees(Fees(12 * GWEI, GWEI), base_fee=30 * GWEI, suggested_priority=GWEI, percent=12.5,
                       cap=12 * GWEI, max_priority=2 * GWEI) is None
    # Odd values round up: a node compares exactly.
    odd = bumped_fees(Fees(9, 1), base_fee=0, suggested_priority=0, percent=12.5, cap=10**6, max_priority=0)
    assert odd == Fees(11, 2)


def test_signed_transaction_recovers_to_the_sender_and_hash_matches():
    signer = LocalKeySigner(bytes.fromhex(KEY[2:]))
    tx = sign_tx(signer, chain_id=31337, nonce=7, to="0x" + "11" * 20, data=b"\x01\x02", gas=100_000,
                 fees=Fees(3 * GWEI, GWEI))
    raw = bytes.fromhex(tx.raw[2:])
    assert raw[0] == 2
    assert Account.recover_transaction(raw) == signer.address
    expected = Account.sign_transaction({
        "type": 2, "chainId": 31337, "nonce": 7, "to": "0x" + "11" * 20, "value": 0, "data": b"\x01\x02",
        "gas": 100_000, "maxFeePerGas": 3 * GWEI, "maxPriorityFeePerGas": GWEI, "accessList": []}, KEY)
    assert tx.tx_hash == "0x" + expected.hash.hex().removeprefix("0x")
    assert KEY[2:] not in repr(signer) and KEY[2:] not in tx.raw


def _config(tmp_path: Path, payouts: str, contracts: str = "") -> Path:
    p = tmp_path / "c.toml"
    p.write_text(f"""
[[chains]]
name = "anvil"
preset = "anvil"
rpc = ["http://127.0.0.1:8545"]
{contracts}

{payouts}
""")
    return p


BATCHER = "0x" + "ab" * 20
CONTRACT = f"""
[[chains.contracts]]
name = "batcher"
address = "{BATCHER}"
abi = "payout_batcher"
"""


def _payouts(**over) -> str:
    fields = {"chain": '"anvil"', "batcher": f'"{BATCHER}"', "max_fee_per_gas": "100000000000"}
    fields.update(over)
    body = "\n".join(f"{k} = {v}" for k, v in fields.items())
    return f"""[[payouts.chains]]
{body}
signer = {{ key = "env:SIGNER" }}
sender = {{ key = "file:/run/secrets/sender" }}
[[payouts.chains.assets]]
name = "native"
"""


def test_config_accepts_a_valid_payout_chain(tmp_path):
    settings = load_settings(_config(tmp_path, _payouts(), CONTRACT))
    check_payout_config(settings)
    assert settings.payouts.chains[0].batcher == BATCHER


@pytest.mark.parametrize("payouts, contracts, field", [
    (_payouts().replace('key = "env:SIGNER"', 'key = "0x' + "11" * 32 + '"'), CONTRACT, "signer.key"),
    (_payouts(max_fee_per_gas="0"), CONTRACT, "max_fee_per_gas"),
    (_payouts(batcher='"0x12"'), CONTRACT, "batcher"),
    ("[payouts]\nbump_percent = 5", CONTRACT, "payouts.bump_percent"),
    ("[payouts]\ngas_share = 1.5", CONTRACT, "payouts.gas_share"),
])
def test_config_errors_name_the_field(tmp_path, payouts, contracts, field):
    with pytest.raises(ConfigError) as err:
        load_settings(_config(tmp_path, payouts, contracts))
    assert field in str(err.value)
    assert "11" * 32 not in str(err.value)


def test_cross_checks_name_the_field(tmp_path):
    settings = load_settings(_config(tmp_path, _payouts()))  # the batcher is not an indexed contract
    with pytest.raises(ConfigError, match=r"payouts.chains\[0\].batcher"):
        check_payout_config(settings)
    settings = load_settings(_config(tmp_path, _payouts().replace('name = "native"', 'name = "USDC"'), CONTRACT))
    with pytest.raises(ConfigError, match=r"payouts.chains\[0\].assets\[0\].name"):
        check_payout_config(settings)
