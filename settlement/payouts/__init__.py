"""Chain-independent payout pipeline: requests, batch planning, worker loop, metrics."""
