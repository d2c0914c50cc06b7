"""Wallet sign-in: EIP-4361 (SIWE) and XRPL challenges, single-use nonces in Postgres, session tokens."""
