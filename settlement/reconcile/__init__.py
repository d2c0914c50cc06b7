"""Reconciliation of on-chain balances against the ledger at a final height."""
