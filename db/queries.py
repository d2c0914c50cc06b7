"""Named SQL blocks loaded from .sql files.

Every statement lives under a `-- name: some_name` header (an optional
second comment line says what it is for), so reviewers see all SQL in one
place and Python refers to queries by name.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2]):
        sql = body.strip()
        if name in queries:
            raise ValueError(f"duplicate query name {name!r}")
        if not sql:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = sql
    return queries


@cache
def load_queries(path: str | Path) -> dict[str, str]:
    return parse_queries(Path(path).read_text())


class Queries:
    """Attribute access to the named queries of one file: `Q.insert_event`."""

    def __init__(self, path: str | Path) -> None:
        self._q = load_queries(str(path))

    def __getattr__(self, name: str) -> str:
        try:
            return self._q[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None
