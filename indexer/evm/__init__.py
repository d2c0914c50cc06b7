"""EVM source: JSON-RPC client, getLogs fetching, decoding, the follower and native-transfer scan."""
