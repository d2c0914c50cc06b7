"""Secret references: `env:NAME`, `file:PATH`, or (discouraged) a literal.

The resolved value never reaches a repr, a log line, an error message or an
API response: `Secret` prints as `***` and only `.reveal()` hands it out.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import SecretError


class Secret:
    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source  # "env:NAME" / "file:PATH" / "literal": safe to show

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, ***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def resolve_secret(ref: str, field: str) -> Secret:
    """Resolve `ref`; errors name the config field, never the value."""
    if ref.startswith("env:"):
        name = ref[4:]
        value = os.environ.get(name)
        if not value:
            raise SecretError(f"{field}: environment variable {name} is not set or empty")
        return Secret(value, ref)
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise SecretError(f"{field}: cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"{field}: secret file {path} is empty")
        return Secret(value, ref)
    return Secret(ref, "literal")


def mask_url(url: str) -> str:
    """Show where a URL points without the credentials providers embed in it.

    Providers put API keys in the userinfo, the path or the query string, so
    only scheme, host and port survive.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    hidden = "/***" if (parts.path not in ("", "/") or parts.query or parts.username) else ""
    return urlunsplit((parts.scheme, f"{host}{port}", hidden, "", ""))
