"""Amounts as text: the one formatter every output path calls."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import orjson
import pytest

from db.values import NotAnAmount, amount_text, json_default, text_default, units_text

HUGE = 10**78 - 1  # the largest NUMERIC(78,0)


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("1E+24"), "1" + "0" * 24),
    (Decimal("3.128300E+22"), "31283" + "0" * 18),
    (Decimal("-0"), "0"),
    (Decimal("-0E+3"), "0"),
    (Decimal("2.00E+18"), "2" + "0" * 18),
    (Decimal("-5E+2"), "-500"),
    (Decimal("7.000"), "7"),
    (Decimal(HUGE), str(HUGE)),
    (Decimal(-HUGE), str(-HUGE)),
    (Decimal("9.99999999999999999999999999999999999999999999999999999999999999999999999999999E+77"), str(HUGE)),
    (HUGE, str(HUGE)),
    (0, "0"),
    ("1E+3", "1000"),
])
def test_amount_text_is_an_exact_integer(value, text):
    assert amount_text(value) == text
    if isinstance(value, Decimal):
        assert orjson.loads(orjson.dumps({"a": value}, default=json_default)) == {"a": text}


@pytest.mark.parametrize("value", [Decimal("1.5"), Decimal("NaN"), Decimal("Infinity"), Decimal("1E-3"), True, 1.0, "12a"])
def test_amount_text_refuses_what_is_not_an_integer_amount(value):
    with pytest.raises(NotAnAmount):
        amount_text(value)


def test_json_default_refuses_a_fraction_instead_of_printing_it():
    with pytest.raises(TypeError):
        orjson.dumps({"a": Decimal("0.5")}, default=json_default)
    with pytest.raises(TypeError):
        json.dumps({"a": Decimal("0.5")}, default=text_default)


def test_text_default_for_the_cli():
    out = json.loads(json.dumps({"a": Decimal("1E+24"), "t": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "o": object},
                                default=text_default))
    assert out["a"] == "1" + "0" * 24 and out["t"] == "2026-01-02T00:00:00+00:00" and out["o"].startswith("<class")


@pytest.mark.parametrize(("amount", "decimals", "symbol", "text"), [
    (Decimal("1E+24"), 18, "TOK", "1000000 TOK"),
    (1_500_000_000_000_000_000, 18, "ETH", "1.5 ETH"),
    (-1, 6, "XRP", "-0.000001 XRP"),
    (Decimal("-0"), 6, None, "0"),
    (42, 0, "N", "42 N"),
    (HUGE, 18, None, str(HUGE)[:-18] + "." + str(HUGE)[-18:]),
    (5, None, "TOK", None),
])
def test_units_text_by_string_arithmetic(amount, decimals, symbol, text):
    assert units_text(amount, decimals, symbol) == text
