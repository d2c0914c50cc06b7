"""[payouts] section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PayoutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kill_switch: bool = False
    dry_run: bool = False
