"""EVM batch payouts: EIP-712 batches, signing, nonces, broadcast, fee bumps, confirmation."""
