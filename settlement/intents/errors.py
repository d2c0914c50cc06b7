"""The one error of the intents package: it names the field at fault."""

from __future__ import annotations

from config import ChainsettleError


class IntentError(ChainsettleError):
    """intent refused

    `field` names the intent field at fault (None when no single field is);
    `reason` is the refusal without it; `code` maps to an HTTP status.
    """

    code = "invalid_parameter"

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class IntentNotFound(IntentError):
    """no such intent or occurrence"""

    code = "not_found"


class IntentStateConflict(IntentError):
    """the intent or occurrence is not in a state that allows this"""

    code = "conflict"
