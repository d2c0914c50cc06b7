"""What an intent says, validated: every refusal names its field.

A spec is stored as JSON in intent_versions (amounts as decimal strings);
`IntentSpec.parse` is the only way in, from the API, the CLI or the store.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from config import Settings

from .errors import IntentError
from .schedule import Schedule

_UNITS = re.compile(r"^[0-9]{1,78}$")
_EVM = re.compile(r"^0x[0-9a-fA-F]{40}$")
_XRPL = re.compile(r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_UNITS = 2**256 - 1


def _units(v, *, positive: bool):
    if isinstance(v, bool):
        raise ValueError("must be an integer in base units")
    if isinstance(v, str):
        if not _UNITS.match(v):
            raise ValueError("must be an integer in base units (digits only)")
        v = int(v)
    if not isinstance(v, int):
        raise ValueError("must be an integer in base units")
    if v > MAX_UNITS or v < (1 if positive else 0):
        raise ValueError("must be a positive integer below 2**256" if positive else "must be 0 or more, below 2**256")
    return str(v)


class IntentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1, max_length=200)
    chain: StrictStr = Field(min_length=1, max_length=64)
    asset: StrictStr = Field(min_length=1, max_length=64)
    to: StrictStr = Field(min_length=1, max_length=128)
    destination_tag: StrictInt | None = Field(None, ge=0, le=2**32 - 1)
    amount_mode: Literal["fixed", "above_floor"] = "fixed"
    amount: StrictInt | StrictStr | None = None  # fixed: what each occurrence pays
    floor: StrictInt | StrictStr | None = None  # above_floor: what stays in the source account
    cron: StrictStr | None = None
    rrule: StrictStr | None = None
    interval_seconds: StrictInt | None = None
    timezone: StrictStr
    end_of_month: Literal["skip", "clamp"] = "skip"
    start: datetime
    end: datetime | None = None
    cap_per_period: StrictInt | StrictStr | None = None
    cap_period: Literal["day", "week", "month", "year"] = "month"
    source_account: StrictStr | None = None  # default: the recipient's ledger account user:<chain>:<to>
    buffer: StrictInt | StrictStr = "0"
    low_buffer_below: StrictInt | StrictStr | None = None
    gas_cap: StrictInt | None = Field(None, ge=1)  # EVM: wei per gas; XRPL: drops per transaction
    window_start: StrictStr | None = None  # HH:MM in the intent's zone
    window_end: StrictStr | None = None
    missed_run_policy: Literal["skip", "latest", "all"] = "skip"
    grace_seconds: StrictInt = Field(300, ge=0, le=30 * 86400)
    max_catch_up: StrictInt = Field(12, ge=1, le=1000)
    catch_up_approval_above: StrictInt | StrictStr | None = None
    deadline_seconds: StrictInt = Field(86400, ge=60, le=366 * 86400)
    retry_base_seconds: StrictInt = Field(60, ge=1, le=86400)
    retry_max_seconds: StrictInt = Field(3600, ge=1, le=7 * 86400)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_text(cls, v):
        if v is not None and not isinstance(v, (str, datetime)):
            raise ValueError("must be an ISO 8601 date-time with a UTC offset")
        return v

    @field_validator("amount", "cap_per_period", "catch_up_approval_above")
    @classmethod
    def _positive(cls, v):
        return None if v is None else _units(v, positive=True)

    @field_validator("floor", "buffer", "low_buffer_below")
    @classmethod
    def _non_negative(cls, v):
        return None if v is None else _units(v, positive=False)

    @field_validator("window_start", "window_end")
    @classmethod
    def _hhmm(cls, v):
        if v is not None and not _HHMM.match(v):
            raise ValueError("must be a wall time HH:MM (24 hours)")
        return v

    @field_validator("source_account")
    @classmethod
    def _account(cls, v):
        if v is not None and not _ACCOUNT.match(v):
            raise ValueError("must be a ledger account code such as user:<chain>:<address>")
        return v

    # -- derived ------------------------------------------------------------------

    @classmethod
    def load(cls, data: dict) -> IntentSpec:
        """A stored spec (it passed `parse` when written): field types only."""
        return cls.model_validate(data)

    @classmethod
    def parse(cls, data: object, settings: Settings | None = None) -> IntentSpec:
        if not isinstance(data, dict):
            raise IntentError(None, "an intent is a JSON object")
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or None
            msg = err["msg"].removeprefix("Value error, ")
            raise IntentError(field, msg) from None
        try:
            spec.schedule()  # cron / rrule / interval / zone / start / end
        except (OverflowError, ValueError) as exc:  # a start or end near year 9999
            raise IntentError("start", f"out of range: {exc}") from None
        if spec.amount_mode == "fixed" and spec.amount is None:
            raise IntentError("amount", "a fixed intent needs an amount")
        if spec.amount_mode == "above_floor" and spec.floor is None:
            raise IntentError("floor", "an above_floor intent needs a floor")
        if (spec.window_start is None) != (spec.window_end is None):
            raise IntentError("window_end" if spec.window_end is None else "window_start",
                              "a window needs both window_start and window_end")
        if spec.retry_max_seconds < spec.retry_base_seconds:
            raise IntentError("retry_max_seconds", "must be at least retry_base_seconds")
        if settings is not None:
            spec.check_chain(settings)
        return spec

    def check_chain(self, settings: Settings) -> None:
        pc = settings.payouts.chain(self.chain)
        if pc is None:
            configured = ", ".join(c.chain for c in settings.payouts.chains) or "none"
            raise IntentError("chain", f"payouts are not configured for {self.chain!r} (configured: {configured})")
        if pc.asset(self.asset) is None:
            raise IntentError("asset", f"{self.asset!r} is not a payout asset of {self.chain!r}")
        if pc.kind == "xrpl":
            from xrpl.core.addresscodec import is_valid_classic_address

            if not _XRPL.match(self.to) or not is_valid_classic_address(self.to):
                raise IntentError("to", "must be a classic XRPL address (r...), checksum included")
        else:
            if not _EVM.match(self.to) or int(self.to, 16) == 0:
                raise IntentError("to", "must be a 0x-prefixed 20-byte hex address, not zero")
            if self.destination_tag is not None:
                raise IntentError("destination_tag", "destination tags exist only on XRPL chains")

    @property
    def recipient(self) -> str:
        return self.to.lower() if self.to.startswith("0x") else self.to

    @property
    def source(self) -> str:
        return self.source_account or f"user:{self.chain}:{self.recipient}"

    def schedule(self, trusted: bool = False) -> Schedule:
        """`trusted`: a stored spec, validated when it was written; skips the never-runs search."""
        return Schedule.build(cron=self.cron, rrule=self.rrule, interval_seconds=self.interval_seconds,
                              timezone_name=self.timezone, start=self.start, end=self.end,
                              end_of_month=self.end_of_month, trusted=trusted)

    def window(self) -> tuple[time, time] | None:
        if self.window_start is None:
            return None
        return time.fromisoformat(self.window_start), time.fromisoformat(self.window_end)

    def as_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)
