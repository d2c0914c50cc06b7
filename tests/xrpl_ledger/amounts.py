"""XRP and issued-currency amounts with rippled's precision and text form.

XRP is an integer number of drops. An issued-currency value is a decimal
with 16 significant digits and an exponent in -96..80 (rippled's STAmount);
results of arithmetic are truncated to that precision the way rippled's
`canonicalize` does, and values below the smallest exponent become zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

MIN_MANTISSA = 10**15
MAX_MANTISSA = 10**16 - 1
MIN_EXPONENT = -96
MAX_EXPONENT = 80
MAX_DROPS = 10**17  # all XRP that exists
ZERO = Decimal(0)


class AmountError(ValueError):
    """An amount that no transaction may carry (maps to temBAD_AMOUNT / temBAD_CURRENCY)."""

    def __init__(self, message: str, code: str = "temBAD_AMOUNT") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class IOU:
    currency: str
    issuer: str
    value: Decimal

    def to_json(self) -> dict[str, str]:
        return {"currency": self.currency, "issuer": self.issuer, "value": iou_text(self.value)}


def _split(value: Decimal) -> tuple[int, int, int]:
    """(sign, mantissa, exponent) with the mantissa in rippled's range, truncated."""
    sign, digits, exp = value.as_tuple()
    mant = int("".join(map(str, digits)) or "0")
    if mant == 0:
        return 0, 0, 0
    while mant < MIN_MANTISSA:
        mant *= 10
        exp -= 1
    while mant > MAX_MANTISSA:
        mant //= 10
        exp += 1
    return sign, mant, exp


def canonical(value: Decimal) -> Decimal:
    """Round to what an STAmount can hold (truncating, as rippled does)."""
    sign, mant, exp = _split(value)
    if mant == 0 or exp < MIN_EXPONENT:
        return ZERO
    if exp > MAX_EXPONENT:
        raise AmountError("issued-currency value overflows")
    return Decimal((sign, tuple(int(c) for c in str(mant)), exp))


def iou_text(value: Decimal) -> str:
    """rippled's STAmount::getText: plain decimal, or `mantissa e exponent` far from 1."""
    sign, mant, exp = _split(canonical(value))
    if mant == 0:
        return "0"
    neg = "-" if sign else ""
    if exp != 0 and (exp < -25 or exp > -5):
        return f"{neg}{mant}e{exp}"
    text = format(Decimal(mant).scaleb(exp), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return neg + text


def is_xrp(amount: Any) -> bool:
    return isinstance(amount, str)


def parse_drops(value: Any, field: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise AmountError(f"{field}: XRP amounts are strings of drops")
    drops = int(value)
    if drops > MAX_DROPS:
        raise AmountError(f"{field}: more XRP than exists")
    return drops


def valid_currency(code: str) -> bool:
    if len(code) == 3:
        return code != "XRP" and all(c.isalnum() or c in "?!@#$%^&*<>(){}[]|" for c in code)
    return len(code) == 40 and all(c in "0123456789ABCDEFabcdef" for c in code) and not code.startswith("00")


def parse_iou(value: Any, field: str) -> IOU:
    if not isinstance(value, dict) or not {"currency", "issuer", "value"} <= set(value):
        raise AmountError(f"{field}: issued amounts need currency, issuer and value")
    currency = str(value["currency"])
    if not valid_currency(currency):
        raise AmountError(f"{field}: bad currency code {currency!r}", "temBAD_CURRENCY")
    try:
        v = Decimal(str(value["value"]))
    except InvalidOperation:
        raise AmountError(f"{field}: value is not a number") from None
    if not v.is_finite():
        raise AmountError(f"{field}: value is not finite")
    return IOU(currency.upper() if len(currency) == 40 else currency, str(value["issuer"]), canonical(v))


def parse_amount(value: Any, field: str) -> int | IOU:
    return parse_drops(value, field) if is_xrp(value) else parse_iou(value, field)


def amount_json(amount: int | IOU) -> str | dict[str, str]:
    return str(amount) if isinstance(amount, int) else amount.to_json()


def currency_bytes(code: str) -> bytes:
    """The 160-bit currency code used in ledger keys."""
    if len(code) == 40:
        return bytes.fromhex(code)
    return bytes(12) + code.encode("ascii") + bytes(5)
