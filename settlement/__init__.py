"""Ledger, reconciliation and payouts; reads what the indexer wrote."""
