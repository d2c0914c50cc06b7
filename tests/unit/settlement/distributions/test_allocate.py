"""Largest-remainder allocation: exact sum, within one unit, order-independent."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.distributions.allocate import AllocationError, allocate

weights_st = st.dictionaries(
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=6),
    st.integers(min_value=0, max_value=10**30), min_size=1, max_size=60,
).filter(lambda d: any(d.values()))
totals = st.integers(min_value=0, max_value=10**40)


@settings(max_examples=300, deadline=None)
@given(weights_st, totals, st.randoms(use_true_random=False))
def test_sum_exact_within_one_unit_order_independent(weights, total, rnd):
    pairs = list(weights.items())
    a = allocate(total, pairs, seed="d1")
    assert sum(v for _, v in a.shares) + a.remainder == total
    assert a.remainder == 0
    big_w = sum(weights.values())
    got = a.as_dict()
    for recipient, w in pairs:
        assert abs(got.get(recipient, 0) - Fraction(total * w, big_w)) < 1
    rnd.shuffle(pairs)
    assert allocate(total, pairs, seed="d1") == a


@settings(max_examples=200, deadline=None)
@given(weights_st, totals, st.integers(min_value=0, max_value=10**20))
def test_minimum_sends_small_shares_to_remainder(weights, total, minimum):
    full = allocate(total, weights.items(), seed="x").as_dict()
    a = allocate(total, weights.items(), minimum=minimum, seed="x")
    assert sum(v for _, v in a.shares) + a.remainder == total
    assert all(v >= minimum for _, v in a.shares)
    # dropping a small share never changes anyone else's
    assert all(full[r] == v for r, v in a.shares)
    assert a.remainder == sum(v for v in full.values() if v < minimum)


def test_tie_break_is_deterministic_and_seeded():
    pairs = [(f"r{i}", 1) for i in range(10)]
    a = allocate(3, pairs, seed="s1")
    assert a == allocate(3, list(reversed(pairs)), seed="s1")
    assert sorted(v for _, v in a.shares) == [1, 1, 1]
    winners = {frozenset(r for r, _ in allocate(3, pairs, seed=f"s{i}").shares) for i in range(20)}
    assert len(winners) > 1  # the seed moves ties around, no fixed favourite


def test_exact_division_and_examples():
    assert allocate(100, [("a", 1), ("b", 1), ("c", 2)]).as_dict() == {"a": 25, "b": 25, "c": 50}
    a = allocate(10, [("a", 1), ("b", 1), ("c", 1)], seed="t")
    assert sorted(a.as_dict().values()) == [3, 3, 4]
    assert allocate(0, [("a", 1)]).shares == ()


@pytest.mark.parametrize("total,weights,minimum,field", [
    (-1, [("a", 1)], 0, "total"),
    (1.5, [("a", 1)], 0, "total"),
    (10, [], 0, "weights"),
    (10, [("a", 0)], 0, "weights"),
    (10, [("a", -1)], 0, "weights[0].weight"),
    (10, [("a", 1), ("a", 2)], 0, "weights[1].recipient"),
    (10, [("a", True)], 0, "weights[0].weight"),
    (10, [("a", 1)], -1, "minimum"),
])
def test_refusals_name_the_field(total, weights, minimum, field):
    with pytest.raises(AllocationError) as e:
        allocate(total, weights, minimum=minimum)
    assert e.value.field == field


def test_large_random_list():
    rnd = random.Random(7)
    pairs = [(f"0x{i:040x}", rnd.randrange(1, 10**18)) for i in range(5000)]
    a = allocate(10**24 + 7, pairs, seed="big")
    assert sum(v for _, v in a.shares) == 10**24 + 7
