"""[ledger] and [reconcile] sections."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LedgerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconcileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_seconds: float = Field(60.0, gt=0)
