"""Prometheus metrics of invoices: thin counters over what the hook did (the rows live in Postgres)."""

from __future__ import annotations

from prometheus_client import Counter

INVOICE_CLAIMS = Counter("chainsettle_invoice_claims_total", "Transfers claimed by an invoice", ["chain"])
INVOICE_STATES = Counter("chainsettle_invoice_state_changes_total", "Invoice state changes made by the follower",
                         ["chain", "state"])
INVOICE_UNBOOKABLE = Counter("chainsettle_invoice_unbookable_total",
                             "Claimed payments whose ledger move could not be booked", ["chain"])
INVOICE_UNMATCHED = Counter("chainsettle_invoice_unmatched_total",
                            "Payments to invoices expired past their grace, recorded for review", ["chain"])
