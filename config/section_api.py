"""[api] section: the read API, admin API, SSE feed and status page."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$")
# Read areas that are private unless the operator publishes them in `[api] public`
# (README "Read scopes"); everything under /v1/admin/ stays behind the admin token.
ReadArea = Literal["accounts", "payouts", "reconciliation", "deliveries", "intents", "invoices", "distributions"]


def split_listen(value: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' → (host, port); ValueError says what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{value!r} must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} is not an IPv6 address") from None
    elif not _HOST.match(host):
        raise ValueError(f"{value!r}: {host!r} is not a host name or IPv4 address (bracket IPv6: [::1]:8080)")
    number = int(port)
    if number > 65535:
        raise ValueError(f"{value!r}: port must be 0-65535")
    return host, number


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # `chainsettle run` serves the API in-process when set
    listen: str = "127.0.0.1:8080"
    # A secret reference (env:NAME or file:PATH); admin routes exist only when set.
    admin_token: str | None = None
    # Exact origins allowed to read the API from a browser, or "*".
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_second: float = Field(20.0, gt=0)
    rate_limit_burst: int = Field(40, ge=1)
    # Peers whose X-Forwarded-For is believed (the rate limit keys on the client).
    trusted_proxies: list[str] = Field(default_factory=list)
    default_page_size: int = Field(100, ge=1)
    max_page_size: int = Field(500, ge=1, le=5000)
    sse_poll_interval: float = Field(0.5, gt=0, le=60)
    sse_heartbeat: float = Field(15.0, gt=0, le=300)
    sse_max_clients: int = Field(200, ge=1)
    # One client (the rate limiter's client key) holds at most this many streams
    # at once; default: a tenth of sse_max_clients, at least 1.
    stream_slots_per_client: int | None = Field(None, ge=1)
    # The WebSocket feed (/v1/ws): messages queued for one client before it is cut
    # off as too slow (never buffered for ever), and how far back a cursor may
    # resume (beyond: the server says `cursor_too_old` and the client refetches).
    ws_send_queue: int = Field(2000, ge=10, le=1_000_000)
    ws_max_catch_up: int = Field(100_000, ge=100)
    # Read areas anyone may read without a token (default: none; see README "Read scopes").
    public: list[ReadArea] = Field(default_factory=list)
    # The API cannot starve the followers and payout workers: `chainsettle run`
    # gives it its own pool, with a short statement timeout; a request waits
    # at most `acquire_timeout` for a connection (then 503); one client has at
    # most `max_inflight_per_client` requests running, checked before any
    # connection is taken (then 429).
    pool_max: int = Field(4, ge=1, le=100)
    statement_timeout_ms: int = Field(3_000, ge=100)
    acquire_timeout: float = Field(2.0, gt=0, le=60)
    max_inflight_per_client: int = Field(4, ge=1)
    status_page: bool = True

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        split_listen(v)
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} must be '*' or an origin like https://app.example.com[:port] (no path, no trailing slash)"
                )
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return v

    @field_validator("admin_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a secret reference such as env:CHAINSETTLE_ADMIN_TOKEN, or be left out")
        return v

    @model_validator(mode="after")
    def _pages(self) -> "ApiSettings":
        if self.default_page_size > self.max_page_size:
            raise ValueError(f"default_page_size ({self.default_page_size}) exceeds max_page_size ({self.max_page_size})")
        if self.stream_slots_per_client is not None and self.stream_slots_per_client > self.sse_max_clients:
            raise ValueError(f"stream_slots_per_client ({self.stream_slots_per_client}) exceeds sse_max_clients "
                             f"({self.sse_max_clients})")
        return self

    @property
    def stream_slots(self) -> int:
        """Streams one client may hold at once."""
        if self.stream_slots_per_client is not None:
            return self.stream_slots_per_client
        return max(1, self.sse_max_clients // 10)

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]
