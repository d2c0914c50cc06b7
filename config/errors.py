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


class FieldError(ChainsettleError):
    """request refused

    `field` names the request field at fault (None when no single field is);
    `reason` is the refusal without it; `code` (invalid_parameter, not_found,
    conflict) says what kind of refusal it is. Callers map these to their own
    error shapes (a 400 naming the field, a CLI line) without parsing text.
    """

    code = "invalid_parameter"

    def __init__(self, field: str | None, reason: str, *, code: str | None = None) -> None:
        self.field = field
        self.reason = reason
        if code is not None:
            self.code = code
        super().__init__(f"{field}: {reason}" if field else reason)


class ConfigError(ChainsettleError):
    """invalid configuration"""


class SecretError(ConfigError):
    """a secret reference could not be resolved"""
