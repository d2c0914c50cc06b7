"""The one error of the intents package: it names the field at fault."""

from __future__ import annotations

from config.errors import FieldError


class IntentError(FieldError):
    """intent refused"""


class IntentNotFound(IntentError):
    """no such intent or occurrence"""

    code = "not_found"


class IntentStateConflict(IntentError):
    """the intent or occurrence is not in a state that allows this"""

    code = "conflict"
