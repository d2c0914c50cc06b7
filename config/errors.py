"""One exception tree for the whole daemon.

Each class's docstring is its default message; driver and library errors are
wrapped at the edge so callers only ever catch these.
"""

from __future__ import annotations


class ChainsettleError(Exception):
    """chainsettle error"""

    def __init__(self, message: str | None = None, **context: object) -> None:
        self.context = context
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(ChainsettleError):
    """invalid configuration"""


class SecretError(ConfigError):
    """a secret reference could not be resolved"""
