"""XRPL payouts: one Payment per payout, Sequences, submission, validation."""
