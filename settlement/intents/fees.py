"""The chain's current fee, for the gas-cap condition: EVM `eth_gasPrice`
(wei per gas), XRPL `fee` (open-ledger fee in drops)."""

from __future__ import annotations

from config import Settings


class RpcFees:
    """A FeeReader over the chains' configured endpoints; clients are made once and kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, object] = {}

    async def __call__(self, chain: str) -> int | None:
        cfg = next((c for c in self.settings.chains if c.name == chain), None)
        if cfg is None:
            return None
        client = self._clients.get(chain)
        if cfg.kind == "xrpl":
            from indexer.xrpl.client import XrplClient

            if client is None:
                client = self._clients[chain] = XrplClient(cfg.rpc, chain=chain, timeout=5.0, max_attempts=2)
            res = await client.request("fee")
            return int(res["drops"]["open_ledger_fee"])
        from indexer.evm.rpc import EvmRpc

        if client is None:
            client = self._clients[chain] = EvmRpc(cfg.rpc, chain=chain, timeout=5.0, max_attempts=2)
        return int(await client.call("eth_gasPrice", []), 16)

    async def close(self) -> None:
        for c in self._clients.values():
            await c.close()
        self._clients.clear()
