"""Pure EVM payout arithmetic: how many recipients fit a block's gas share,
and the EIP-1559 fees of a first send or a replacement (no I/O; unit-tested
in tests/unit/settlement/payouts/test_plan.py)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from settlement.payouts.evm import batcher_abi


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def max_recipients_for_gas(*, native: bool, treasury: bool, block_gas_limit: int, gas_share: float, cap: int) -> int:
    """The most recipients whose worst-case gas limit stays within gas_share of a block."""
    budget = int(block_gas_limit * gas_share)
    lo, hi = 0, cap
    while lo < hi:  # gas_limit grows with the count: the largest n that fits
        mid = (lo + hi + 1) // 2
        if batcher_abi.gas_limit(native, mid, treasury=treasury) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def initial_fees(*, base_fee: int, suggested_priority: int, cap: int, max_priority: int) -> Fees:
    """Room for the base fee to double before the next block, within the cap."""
    priority = min(max_priority, suggested_priority)
    max_fee = min(cap, 2 * base_fee + priority)
    return Fees(max_fee, min(priority, max_fee))


def _raise_by(value: int, percent: float) -> int:
    f = Fraction(value) * (100 + Fraction(str(percent))) / 100
    return -(-f.numerator // f.denominator)  # ceiling: a node compares exactly


def bumped_fees(old: Fees, *, base_fee: int, suggested_priority: int, percent: float, cap: int,
                max_priority: int) -> Fees | None:
    """Fees for a replacement at the same nonce, or None when the cap forbids one.

    Both fields rise by at least `percent` (nodes refuse a replacement that
    raises only one, or less than their minimum) and follow the market when
    it moved further. The max fee never passes `cap`.
    """
    min_fee = _raise_by(old.max_fee_per_gas, percent)
    min_priority = _raise_by(old.max_priority_fee_per_gas, percent)
    if old.max_priority_fee_per_gas == 0:
        min_priority = 1
    priority = max(min_priority, min(max_priority, suggested_priority))
    max_fee = min(cap, max(min_fee, 2 * base_fee + priority))
    if max_fee < min_fee:
        return None
    priority = min(priority, max_fee)
    if priority < min_priority:
        return None
    return Fees(max_fee, priority)
