"""Broadcast one signed transaction to every healthy endpoint of a chain.

Failover (EvmRpc.call) stops at the first endpoint that answers; a signed
transaction should reach every node we know, so that one node dropping it
(or being partitioned) does not delay the payout. Each endpoint's answer is
returned as it is: "already known" and "nonce too low" are classified by
the caller, which knows whether the transaction is its own.
"""

from __future__ import annotations

import asyncio

from indexer.errors import RpcError, RpcErrorKind
from indexer.evm.rpc import EvmRpc


async def send_raw_everywhere(rpc: EvmRpc, raw_hex: str, *, timeout: float | None = None) -> list[tuple[str, object]]:
    """[(endpoint label, tx hash | RpcError)] for every healthy endpoint (all of them if none is)."""
    targets = [e for e in rpc.endpoints if e.healthy] or list(rpc.endpoints)

    async def one(ep):
        try:
            return ep.label, await rpc.call_on(ep, "eth_sendRawTransaction", [raw_hex], timeout=timeout)
        except RpcError as exc:
            if exc.kind in (RpcErrorKind.RETRYABLE, RpcErrorKind.TIMEOUT):
                ep.on_failure(str(exc.args[0])[:200], exc.retry_after)
            return ep.label, exc

    return list(await asyncio.gather(*(one(ep) for ep in targets)))
