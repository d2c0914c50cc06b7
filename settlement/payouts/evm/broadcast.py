"""Broadcast one signed transaction to every healthy endpoint of a chain.

Failover (EvmRpc.call) stops at the first endpoint that answers; a signed
transaction should reach every node we know, so that one node dropping it
(or being partitioned) does not delay the payout. Each endpoint's answer is
returned as it is: "already known" and "nonce too low" are classified by
the caller, which knows whether the transaction is its own.
"""

from __future__ import annotations

import asyncio
import itertools

from indexer.errors import RpcError, RpcErrorKind
from indexer.evm.rpc import EvmRpc

_ids = itertools.count(1)


async def send_raw_everywhere(rpc: EvmRpc, raw_hex: str, *, timeout: float | None = None) -> list[tuple[str, object]]:
    """[(endpoint label, tx hash | RpcError)] for every healthy endpoint (all of them if none is)."""
    targets = [e for e in rpc.endpoints if e.healthy] or list(rpc.endpoints)

    async def one(ep):
        payload = {"jsonrpc": "2.0", "id": next(_ids), "method": "eth_sendRawTransaction", "params": [raw_hex]}
        try:
            return ep.label, await rpc._send(ep, "eth_sendRawTransaction", payload, timeout, True)
        except RpcError as exc:
            if exc.kind in (RpcErrorKind.RETRYABLE, RpcErrorKind.TIMEOUT):
                ep.on_failure(str(exc.args[0])[:200], exc.retry_after)
            return ep.label, exc

    return list(await asyncio.gather(*(one(ep) for ep in targets)))
