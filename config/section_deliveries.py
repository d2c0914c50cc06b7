"""[delivery] (how relays send) and [[deliveries]] (subscriptions from the file).

Subscriptions made over the admin API live only in Postgres; those in the
file are upserted at start-up (their state, cursor and messages kept).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_STREAM = re.compile(r"^[A-Za-z0-9:._{}-]{1,200}$")
# Svix's schedule after the first try: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27 h in all).
SVIX_SCHEDULE = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeliveryFilter(_Strict):
    """Empty lists match everything; several fields must all match."""

    chains: list[str] = Field(default_factory=list)
    contracts: list[str] = Field(default_factory=list)      # contract addresses (chain events)
    events: list[str] = Field(default_factory=list)         # event names (chain events)
    accounts: list[str] = Field(default_factory=list)       # ledger account codes or plain addresses
    # Message types or their kinds: "chain_event", "chain_event.final", "payout",
    # "payout.confirmed", "reconciliation.mismatch", any feed_outbox kind.
    types: list[str] = Field(default_factory=list)

    @field_validator("contracts", "accounts")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [x.lower() for x in v]


class SubscriptionSpec(_Strict):
    """A subscription as the admin API takes it (a webhook secret is generated when none is given)."""

    id: str
    sink: Literal["webhook", "redis"]
    url: str                                   # https:// webhook, or redis:// for a stream
    stream: str | None = None                  # redis only
    secrets: list[str] = Field(default_factory=list)  # env:/file: references to whsec_ secrets
    filter: DeliveryFilter = DeliveryFilter()
    finality: Literal["instant", "final"] = "instant"
    ordering: Literal["per_key", "strict"] = "per_key"
    start: Literal["now", "earliest"] = "now"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (max 63)")
        return v

    @field_validator("stream")
    @classmethod
    def _stream(cls, v: str | None) -> str | None:
        if v is not None and not _STREAM.match(v):
            raise ValueError("must be 1-200 of letters, digits and :._{}-")
        return v

    @model_validator(mode="after")
    def _sink_fields(self) -> "DeliveryConfig":
        if self.sink == "redis":
            if not self.stream:
                raise ValueError("stream: required for a redis sink")
            if not self.url.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError("url: a redis sink needs a redis://, rediss:// or unix:// URL")
        else:
            if self.stream is not None:
                raise ValueError("stream: only for a redis sink")
            if not self.url.startswith(("https://", "http://")):
                raise ValueError("url: a webhook sink needs an https:// URL (http:// only for loopback)")
        return self


class DeliveryConfig(SubscriptionSpec):
    """A [[deliveries]] entry: its secrets are env:/file: references, at least one for a webhook."""

    @model_validator(mode="after")
    def _secrets_given(self) -> "DeliveryConfig":
        if self.sink == "webhook" and not self.secrets:
            raise ValueError("secrets: a webhook needs at least one signing secret (env:NAME or file:PATH)")
        return self


class DeliverySettings(_Strict):
    enabled: bool = True                       # `chainsettle run` runs the relay
    poll_interval: float = Field(1.0, gt=0, le=60)  # fallback when no NOTIFY arrives
    fanout_batch: int = Field(1000, ge=1, le=100_000)
    send_batch: int = Field(100, ge=1, le=10_000)   # per_key: heads sent at once per subscription
    timeout: float = Field(15.0, gt=0, le=120)       # per attempt
    retry_schedule: list[float] = Field(default_factory=lambda: list(SVIX_SCHEDULE))
    jitter: float = Field(0.2, ge=0, le=1)           # +/- this fraction of each delay
    max_retry_after: float = Field(86_400.0, gt=0)   # cap on a receiver's Retry-After
    disable_after: float = Field(5 * 86_400.0, gt=0)  # failing this long (s) disables the subscription
    response_bytes: int = Field(256, ge=0, le=4096)  # first bytes of each answer kept
    rotation_overlap: float = Field(86_400.0, ge=0)  # old secret stays valid this long after a rotation
    retention: float = Field(7 * 86_400.0, gt=0)   # delivered messages (and attempts) kept this long (s)
    redis_maxlen: int = Field(1_000_000, ge=1)       # XADD MAXLEN ~
    redis_dedupe_ttl: int = Field(7 * 86_400, ge=60)  # seconds an event id is remembered per stream
    # SSRF: targets resolving to loopback/private/link-local are refused unless listed here.
    allow_loopback: bool = False
    allow_private: list[str] = Field(default_factory=list)  # CIDRs, e.g. ["10.1.0.0/16"]

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, v: list[float]) -> list[float]:
        if any(x < 0 for x in v):
            raise ValueError("delays must be >= 0 seconds")
        return v

    @field_validator("allow_private")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for i, c in enumerate(v):
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                raise ValueError(f"[{i}]: {c!r} is not a CIDR network") from None
        return v


def unique_ids(subs: list[DeliveryConfig]) -> None:
    ids = [s.id for s in subs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"deliveries: ids must be unique: {', '.join(dupes)}")
