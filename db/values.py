"""How database values become JSON and text: NUMERIC(78,0) amounts as exact
integer strings in base units, timestamps in ISO 8601. Shared by the API,
the delivery bodies and the CLI, so a receiver, an API client and an
operator read the same shapes.

asyncpg decodes NUMERIC into `Decimal` values that keep the wire's exponent
(`Decimal('1E+24')`, `Decimal('3.128300E+22')`), and Python negation makes
`Decimal('-0')`: `str()` of those is not an integer. `amount_text` is the one
place an amount becomes text; everything else calls it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


class NotAnAmount(ValueError):
    """a value that should be an integer amount in base units is not one"""


def amount_text(value: int | Decimal | str) -> str:
    """Exact integer text of an amount in base units: never exponent form, never '-0'.

    A non-integral or non-finite value is refused (NotAnAmount), never printed:
    an amount with a fraction of a base unit is a bug upstream.
    """
    if isinstance(value, bool):
        raise NotAnAmount(f"{value!r} is a boolean, not an amount")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        try:
            value = Decimal(value)
        except ArithmeticError:
            raise NotAnAmount(f"{value!r} is not a number") from None
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise NotAnAmount(f"{value} is not an integer amount in base units")
        return str(int(value))  # int() is exact at any size; int has no -0
    raise NotAnAmount(f"a {type(value).__name__} is not an amount")


def units_text(amount: int | Decimal | str, decimals: int | None, symbol: str | None = None) -> str | None:
    """An amount in asset units for a person ('1.5 TOK'), by string arithmetic; None without decimals."""
    if decimals is None:
        return None
    text = amount_text(amount)
    neg = text.startswith("-")
    digits = text.lstrip("-").rjust(decimals + 1, "0")
    whole, frac = digits[: len(digits) - decimals], digits[len(digits) - decimals:].rstrip("0")
    shown = ("-" if neg else "") + whole + ("." + frac if frac else "")
    return f"{shown} {symbol}" if symbol else shown


def json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        try:
            return amount_text(obj)
        except NotAnAmount as exc:
            raise TypeError(str(exc)) from None
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def text_default(obj: Any) -> Any:
    """`json.dumps(default=...)` for CLI output: amounts and times as above, anything else as str()."""
    try:
        return json_default(obj)
    except TypeError:
        if isinstance(obj, Decimal):
            raise
        return str(obj)
