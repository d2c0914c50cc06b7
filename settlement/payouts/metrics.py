"""Prometheus metrics of the payout pipeline (alert rules match on these)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PAYOUTS = Gauge("chainsettle_payouts", "Payout requests by state", ["chain", "state"])
BATCHES = Gauge("chainsettle_payout_batches", "Payout batches by state", ["chain", "state"])
BATCH_SIZE = Histogram(
    "chainsettle_payout_batch_size", "Recipients per payout batch", ["chain"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
TX_BROADCASTS = Counter("chainsettle_payout_broadcasts_total", "Broadcasts of signed payout transactions", ["chain", "result"])
FEE_BUMPS = Counter("chainsettle_payout_fee_bumps_total", "Replacement transactions with raised fees", ["chain"])
FEE_CAP_HIT = Counter(
    "chainsettle_payout_fee_cap_hit_total", "Transactions that would need a fee above the configured cap", ["chain"]
)
NONCE_GAPS = Counter("chainsettle_payout_nonce_gaps_total", "Nonce gaps found against the chain and filled", ["chain"])
KILLED = Gauge("chainsettle_payout_kill_switch", "1 while signing is stopped by a kill switch", ["chain"])
CONFIRMED = Counter("chainsettle_payout_batches_confirmed_total", "EVM batches confirmed from final events", ["chain"])
XRPL_VALIDATED = Counter(
    "chainsettle_payout_xrpl_payments_validated_total", "XRPL payout payments validated tesSUCCESS", ["chain"]
)
EXPIRED = Counter("chainsettle_payout_batches_expired_total", "Batches proven dead after expiry", ["chain"])
FAIL_CLOSED = Counter(
    "chainsettle_payout_fail_closed_total", "The impossible observed: kill switch on, asset paused", ["chain", "kind"]
)
STUCK_TXS = Gauge(
    "chainsettle_payout_stuck_transactions", "Payout transactions stopped at the fee cap, not mined", ["chain"]
)
REORGED = Counter(
    "chainsettle_payout_txs_reorged_total", "Mined payout transactions reorged out before final, sent again", ["chain"]
)
OWNER_CALLS = Gauge(
    "chainsettle_distribution_owner_calls",
    "ClaimDistributor owner calls the payout sender sends, by state (queued, sent, failed)", ["chain", "state"],
)
OWNER_CALLS_STUCK = Gauge(
    "chainsettle_distribution_owner_calls_stuck",
    "Owner calls sent, or queued with nothing to wait for, unchanged for over 30 minutes", ["chain"],
)
OWNER_CALLS_FAILED = Counter(
    "chainsettle_distribution_owner_calls_failed_total",
    "Owner calls that failed: reverted in a final block, or refused by simulation before signing", ["chain", "kind"],
)
OWNER_CALLS_CONFIRMED = Counter(
    "chainsettle_distribution_owner_calls_confirmed_total",
    "Owner calls confirmed by a final receipt", ["chain", "kind"],
)
