"""How database values become JSON: NUMERIC(78,0) amounts as strings (every
digit kept), timestamps in ISO 8601. Shared by the API and the delivery
bodies, so a receiver and an API client read the same shapes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


def json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    raise TypeError(f"cannot serialize {type(obj).__name__}")
