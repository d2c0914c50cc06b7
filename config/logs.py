"""structlog set-up: JSON lines when stderr is not a TTY, readable otherwise.

Event names are stable identifiers (`follower.reorg`, `payout.signed`) so
that alerts and log queries can match on them.

structlog is imported with the first log line, not at start-up: importing
it (its console renderer pulls in rich where that is installed) costs more
than a whole `chainsettle index` takes to commit its first range, and a
command may write no line at all. `get_logger` hands out a stand-in that
becomes structlog's own logger on first use; `configure_logging` applies at
once if structlog is loaded already, else right after it loads.
"""

from __future__ import annotations

import logging
import sys

import orjson

_SECRET_KEYS = {"private_key", "seed", "secret", "password", "token", "admin_token", "authorization"}
_pending: tuple[str, bool] | None = None  # (level, JSON?) for when structlog loads


def _drop_secrets(_logger, _name, event_dict):
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "***"
    return event_dict


def _orjson_dumps(obj, default=None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    global _pending
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    getattr(logging, level.upper())  # an unknown level fails here, as it always did
    _pending = (level, use_json)
    if "structlog" in sys.modules:
        _apply_pending()


def _apply_pending() -> None:
    global _pending
    if _pending is None:
        return
    import structlog

    level, use_json = _pending
    _pending = None
    renderer = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class _Logger:
    """structlog's logger for one name, made (structlog imported) on first use."""

    __slots__ = ("_name", "_logger")

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._logger = None

    def __getattr__(self, attr: str):
        logger = self._logger
        if logger is None:
            import structlog

            _apply_pending()
            logger = self._logger = structlog.get_logger(self._name) if self._name else structlog.get_logger()
        return getattr(logger, attr)


def get_logger(name: str | None = None):
    return _Logger(name)
