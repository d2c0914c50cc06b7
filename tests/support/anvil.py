"""anvil for tests: the same dev-chain helpers the demo uses."""

from daemon.devchain import DEV_ACCOUNTS, Anvil, anvil_binary, free_port, rpc_sync

__all__ = ["DEV_ACCOUNTS", "Anvil", "anvil_binary", "free_port", "rpc_sync"]
