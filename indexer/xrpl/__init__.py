"""XRPL source: the validated-ledger client, decoding and the follower."""
