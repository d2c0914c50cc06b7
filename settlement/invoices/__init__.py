"""Incoming payments: invoices matched from indexed data, and payment verification."""
