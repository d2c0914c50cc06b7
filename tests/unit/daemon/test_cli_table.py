"""What the list commands print for a person: aligned columns, ISO 8601 times, exact amounts."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from daemon.cli_table import emit, table


def test_a_table_is_aligned_with_iso_times_and_exact_amounts():
    at = dt.datetime(2026, 12, 6, 6, 9, 19, tzinfo=dt.timezone.utc)
    rows = [{"id": 1, "amount": Decimal("150000000000000000000"), "at": at, "reason": None},
            {"id": 22, "amount": Decimal("2"), "at": at, "reason": "x"}]
    lines = table(rows, ["id", "amount", "at", "reason"]).splitlines()
    assert lines[0].split() == ["id", "amount", "at", "reason"]
    assert lines[1].split() == ["1", "150000000000000000000", "2026-12-06T06:09:19+00:00", "-"]
    assert len({ln.index("at") if i == 0 else ln.index("2026") for i, ln in enumerate(lines)}) == 1  # aligned
    assert table([], ["id"]) == "(none)"


def test_json_with_the_flag_and_titled_sections_without(capsys):
    data = {"requests": [{"id": 1, "state": "pending"}], "batches": []}
    emit(data, True, {"requests": None, "batches": None})
    assert json.loads(capsys.readouterr().out) == data
    emit(data, False, {"requests": ["id", "state"], "batches": ["batch_id"]})
    out = capsys.readouterr().out
    assert out.startswith("requests (1)\nid  state\n1   pending") and "batches (0)\n(none)" in out
