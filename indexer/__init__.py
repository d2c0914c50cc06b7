"""Chain followers, decoding, reorg handling and the event store."""
