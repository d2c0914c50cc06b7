"""[api] section: the read API, admin API and status page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8080"
    admin_token: str | None = None  # a secret reference, e.g. env:CHAINSETTLE_ADMIN_TOKEN
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_second: float = Field(20.0, gt=0)
    rate_limit_burst: int = Field(40, ge=1)
