"""One RPC endpoint's health as a client sees it, for EVM and XRPL clients
alike: latency (EWMA), consecutive failures, a jittered cool-down, and a
label that never shows the URL's credentials."""

from __future__ import annotations

import random
import time
from typing import Any

from config import mask_url


class Endpoint:
    def __init__(self, url: str, index: int) -> None:
        self.url = url
        self.label = f"{index}:{mask_url(url)}"  # credentials never leave this object
        self.latency = 0.05  # EWMA seconds
        self.failures = 0  # consecutive
        self.cooldown_until = 0.0
        self.last_error: str | None = None
        self.requests = 0
        self.errors = 0

    @property
    def healthy(self) -> bool:
        return self.failures < 3 and time.monotonic() >= self.cooldown_until

    def score(self) -> tuple[int, float, float]:
        now = time.monotonic()
        cooling = 1 if now < self.cooldown_until else 0
        return (cooling, self.failures, self.latency)

    def on_success(self, elapsed: float) -> None:
        self.latency = 0.8 * self.latency + 0.2 * elapsed
        self.failures = 0
        self.cooldown_until = 0.0

    def on_failure(self, error: str, retry_after: float | None = None) -> None:
        self.failures += 1
        self.errors += 1
        self.last_error = error
        backoff = retry_after if retry_after is not None else min(30.0, 0.25 * 2 ** min(self.failures, 7))
        self.cooldown_until = time.monotonic() + backoff * random.uniform(0.8, 1.2)

    def snapshot(self) -> dict[str, Any]:
        return {
            "endpoint": self.label,
            "healthy": self.healthy,
            "latency_ms": round(self.latency * 1000, 1),
            "consecutive_failures": self.failures,
            "requests": self.requests,
            "errors": self.errors,
            "last_error": self.last_error,
        }
