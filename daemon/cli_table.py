"""What the list commands print: an aligned table for a person, JSON with --json.

Times are ISO 8601 (as the API prints them), amounts exact integer strings,
an absent value `-`. A column that does not fit is cut with `…` only past
`WIDE` characters, so ids and hashes stay whole in the common case.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from db.values import text_default

WIDE = 70


def cell(value: Any) -> str:
    """One value as a table shows it."""
    if value is None:
        return "-"
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return text_default(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=text_default, separators=(",", ":"))
    text = str(value).replace("\n", " ")
    return text if len(text) <= WIDE else text[: WIDE - 1] + "…"


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """`rows` as aligned columns under a header; '(none)' when empty."""
    if not rows:
        return "(none)"
    grid = [list(columns)] + [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in grid)


def emit(data: Any, as_json: bool, sections: Mapping[str, Sequence[str] | None]) -> None:
    """Print `data` as JSON (as_json) or, per section name in `sections`, a titled table of its rows.

    `data` is a dict of lists (one section each) or a list (one unnamed section, key "").
    Columns None: every key of the first row.
    """
    if as_json:
        print(json.dumps(data, default=text_default, indent=2))
        return
    parts = []
    for name, columns in sections.items():
        rows = data if name == "" else data.get(name) or []
        cols = columns if columns is not None else (list(rows[0]) if rows else [])
        parts.append((f"{name} ({len(rows)})\n" if name else "") + table(rows, cols))
    print("\n\n".join(parts))


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON output (for scripts); an aligned table otherwise")
