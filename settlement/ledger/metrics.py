"""Prometheus metrics of the ledger and reconciliation.

Thin wrappers: the runs, results and pauses live in Postgres; these are
what alert rules match on. Differences are in base units (a float gauge
loses precision beyond 2^53, which is still non-zero for alerting).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LEDGER_TRANSACTIONS = Counter(
    "chainsettle_ledger_transactions_total", "Ledger transactions booked outside the range hook", ["chain", "cause"]
)
LEDGER_BOOKED = Counter("chainsettle_ledger_event_transactions_total", "Ledger transactions booked from events", ["chain"])
LEDGER_UNBOOKABLE = Counter(
    "chainsettle_ledger_unbookable_total", "Rule matches that could not be booked", ["chain", "rule", "reason"]
)
LEDGER_ROLLED_BACK = Counter(
    "chainsettle_ledger_rolled_back_total", "Ledger transactions deleted by reorg rollbacks", ["chain"]
)

RECON_RUNS = Counter("chainsettle_reconciliation_runs_total", "Reconciliation runs", ["chain", "status"])
RECON_HEIGHT = Gauge("chainsettle_reconciliation_height", "Height H of the last reconciliation run", ["chain"])
RECON_LAST_RUN = Gauge(
    "chainsettle_reconciliation_last_run_timestamp_seconds", "When the last run finished", ["chain", "status"]
)
RECON_MISMATCHES = Gauge(
    "chainsettle_reconciliation_mismatches", "Wallet assets beyond tolerance in the last run", ["chain"]
)
RECON_DIFFERENCE = Gauge(
    "chainsettle_reconciliation_difference", "On-chain minus ledger balance at H, base units",
    ["chain", "asset", "account"],
)
RECON_STATUS = Gauge(
    "chainsettle_reconciliation_status", "0 match, 1 within tolerance, 2 mismatch", ["chain", "asset", "account"]
)
ASSET_PAUSED = Gauge("chainsettle_asset_paused", "1 while payouts of the asset are paused", ["asset"])

STATUS_CODES = {"ok": 0, "within_tolerance": 1, "mismatch": 2}
WALLET_BALANCE = Gauge(
    "chainsettle_wallet_balance", "On-chain balance of a configured wallet at the reconciled height (base units)",
    ["chain", "wallet", "asset"],
)
WALLET_LOW = Gauge(
    "chainsettle_wallet_low", "1 while a wallet holds less than its [reconcile.min_balances] entry", ["chain", "wallet", "asset"],
)

# A run that errored (or checked nothing) must not look like a fresh check.
RECON_LAST_SUCCESS = Gauge(
    "chainsettle_reconciliation_last_success_timestamp_seconds",
    "When the last run that compared at least one balance finished (status ok or mismatch)", ["chain"],
)
RECON_LAST_ERROR = Gauge(
    "chainsettle_reconciliation_last_error_timestamp_seconds", "When the last run that errored finished", ["chain"],
)
RECON_OVERPAID = Gauge(
    "chainsettle_reconciliation_overpaid_users", "User accounts paid more than they were owed, as of H", ["chain"],
)

LEDGER_TRANSFERS = Counter(
    "chainsettle_ledger_transfers_total", "Transfers booked and holds resolved, by kind",
    ["kind"],  # transfer, hold, hold_posted, hold_voided, hold_expired
)
LEDGER_RETRIES = Counter(
    "chainsettle_ledger_transfer_retries_total", "Transfer transactions retried after a deadlock or serialization failure"
)

FROZEN_ACCOUNTS = Gauge("chainsettle_frozen_accounts", "Accounts an operator froze (no withdrawal, transfer or hold "
                        "debits them)")
