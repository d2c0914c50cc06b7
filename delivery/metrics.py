"""Prometheus metrics of the relays (deploy/prometheus/alerts.yml matches on these)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter("chainsettle_delivery_attempts_total", "Delivery attempts by outcome",
                   ["subscription", "outcome"])
DEAD_LETTERS = Counter("chainsettle_delivery_dead_letters_total", "Messages dead-lettered after the last retry",
                       ["subscription"])
DISABLED_TOTAL = Counter("chainsettle_delivery_disabled_total", "Subscriptions disabled by the relay",
                         ["subscription", "reason"])
LAG_SECONDS = Gauge("chainsettle_delivery_lag_seconds", "Age of the oldest undelivered message", ["subscription"])
LAG_EVENTS = Gauge("chainsettle_delivery_lag_events", "Messages not yet delivered", ["subscription"])
DEAD = Gauge("chainsettle_delivery_dead_held", "Dead-lettered messages held", ["subscription"])
DISABLED = Gauge("chainsettle_delivery_subscription_disabled", "1 while a subscription is disabled", ["subscription"])
PAUSED = Gauge("chainsettle_delivery_subscription_paused", "1 while a subscription is paused", ["subscription"])
FANNED_OUT = Counter("chainsettle_delivery_fanned_out_total", "Messages queued for a subscription", ["subscription"])
LATENCY = Histogram("chainsettle_delivery_attempt_seconds", "Time per delivery attempt", ["sink"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30))
RELAY_ERRORS = Counter("chainsettle_delivery_relay_errors_total", "Relay loop errors (database unreachable)")
FAILURE_OUTCOMES = ("http_error", "timeout", "network", "refused", "gone")
FAILING = Gauge("chainsettle_delivery_subscription_failing",
                "1 while a subscription's last attempt failed, by its outcome (the reason is in /v1/deliveries)",
                ["subscription", "outcome"])
