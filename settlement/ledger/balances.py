"""On-chain balances at a given height, per chain kind.

EVM: `eth_getBalance(addr, H)` and ERC-20 `balanceOf` by `eth_call` at H,
batched through `indexer.evm.rpc.EvmRpc` (failover, bounded retries).
XRPL: `account_info` / `account_lines` at validated ledger H via xrpl-py;
an answer that is not from a validated ledger is refused.

Reading state at H needs a node that still holds it: public EVM endpoints
often keep only the last ~128 blocks, which is fine for H (the final,
indexed height) but opening balances of an old start block need an archive
node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx
from eth_utils import function_signature_to_4byte_selector

from config import ChainConfig, ChainsettleError, mask_url
from indexer.errors import BadRpcResponse, RpcError
from indexer.evm.rpc import EvmRpc

_BALANCE_OF = "0x" + function_signature_to_4byte_selector("balanceOf(address)").hex()
_DECIMALS = "0x" + function_signature_to_4byte_selector("decimals()").hex()
_MAX_UNITS = 10**78


class BalanceError(ChainsettleError):
    """an on-chain balance could not be read"""


@dataclass(frozen=True)
class BalanceQuery:
    address: str
    asset: Mapping[str, Any]  # an `assets` row: id, kind, contract, currency, issuer, decimals


class BalanceReader(Protocol):
    async def balances(self, height: int, queries: Sequence[BalanceQuery]) -> list[int]: ...

    async def decimals(self, asset: Mapping[str, Any]) -> int | None: ...

    async def close(self) -> None: ...


def _quantity(raw: object, what: str) -> int:
    if raw == "0x":  # eth_call to an address without code (yet) at that height
        return 0
    try:
        value = int(raw, 16)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRpcResponse(f"{what}: not a hex quantity: {str(raw)[:40]}") from None
    if value >= _MAX_UNITS:
        raise BadRpcResponse(f"{what}: value out of range")
    return value


class EvmBalanceReader:
    # Block 0 holds the genesis allocations and no transactions: the state
    # "before" a chain indexed from genesis is the state at block 0.
    first_state = 0

    def __init__(self, rpc: EvmRpc, *, batch_size: int = 100) -> None:
        self.rpc = rpc
        self.batch_size = batch_size

    @classmethod
    def for_chain(cls, cfg: ChainConfig) -> "EvmBalanceReader":
        return cls(EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=cfg.max_attempts))

    async def balances(self, height: int, queries: Sequence[BalanceQuery]) -> list[int]:
        tag = hex(height)
        calls = []
        for q in queries:
            kind = q.asset["kind"]
            if kind == "native":
                calls.append(("eth_getBalance", [q.address, tag]))
            elif kind == "erc20":
                data = _BALANCE_OF + q.address.lower().removeprefix("0x").rjust(64, "0")
                calls.append(("eth_call", [{"to": q.asset["contract"], "data": data}, tag]))
            else:
                raise BalanceError(f"asset {q.asset['id']}: kind {kind!r} is not an EVM asset")
        out: list[int] = []
        for i in range(0, len(calls), self.batch_size):
            chunk = calls[i: i + self.batch_size]
            try:
                results = await self.rpc.batch(chunk)
            except RpcError as exc:
                raise BalanceError(f"{self.rpc.chain}: balances at {height}: {exc}") from None
            for (method, _), q, raw in zip(chunk, queries[i: i + self.batch_size], results):
                out.append(_quantity(raw, f"{method} {q.asset['id']} of {q.address} at {height}"))
        return out

    async def decimals(self, asset: Mapping[str, Any]) -> int | None:
        if asset["kind"] != "erc20":
            return None
        try:
            raw = await self.rpc.call("eth_call", [{"to": asset["contract"], "data": _DECIMALS}, "latest"])
            value = _quantity(raw, f"decimals() of {asset['id']}")
        except (RpcError, BadRpcResponse):
            return None  # decimals() is optional in ERC-20; only display needs it
        return value if 0 <= value <= 77 else None

    async def close(self) -> None:
        await self.rpc.close()


class XrplBalanceReader:
    """XRP in drops and issued currencies scaled by the asset's decimals."""

    # There is no ledger before the first: nothing was held "before" it.
    first_state = None

    def __init__(self, urls: Sequence[str], *, chain: str, timeout: float = 15.0) -> None:
        if not urls:
            raise ValueError("at least one XRPL URL is required")
        self.urls = list(urls)
        self.chain = chain
        self.timeout = timeout

    @classmethod
    def for_chain(cls, cfg: ChainConfig) -> "XrplBalanceReader":
        return cls(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout)

    async def _request(self, request) -> dict:
        """One request, failing over across the endpoints; the result member."""
        from xrpl.asyncio.clients import AsyncJsonRpcClient, AsyncWebsocketClient
        from xrpl.asyncio.clients.exceptions import XRPLRequestFailureException

        last = "no endpoint"
        for url in self.urls:
            try:
                if url.startswith(("ws://", "wss://")):
                    async with AsyncWebsocketClient(url) as client:
                        response = await asyncio.wait_for(client.request(request), self.timeout)
                else:
                    response = await asyncio.wait_for(AsyncJsonRpcClient(url).request(request), self.timeout)
            except (OSError, asyncio.TimeoutError, httpx.HTTPError, XRPLRequestFailureException) as exc:
                last = f"{mask_url(url)}: {exc.__class__.__name__}"
                continue
            result = response.result
            if not isinstance(result, dict):
                last = f"{mask_url(url)}: result is not an object"
                continue
            return result
        raise BalanceError(f"{self.chain}: {request.method.value}: every endpoint failed (last: {last})")

    async def balances(self, height: int, queries: Sequence[BalanceQuery]) -> list[int]:
        return [await self._one(height, q) for q in queries]

    async def _one(self, height: int, q: BalanceQuery) -> int:
        from xrpl.models.requests import AccountInfo, AccountLines

        kind = q.asset["kind"]
        if kind == "native":
            result = await self._request(AccountInfo(account=q.address, ledger_index=height))
            if result.get("error") == "actNotFound":
                return 0  # not funded yet at that ledger
            self._check(result, "account_info", q, height)
            try:
                return int(result["account_data"]["Balance"])
            except (KeyError, TypeError, ValueError):
                raise BadRpcResponse(f"account_info {q.address} at {height}: no integer Balance") from None
        if kind != "xrpl_iou":
            raise BalanceError(f"asset {q.asset['id']}: kind {kind!r} is not an XRPL asset")
        total = Decimal(0)
        marker = None
        while True:
            result = await self._request(AccountLines(account=q.address, ledger_index=height,
                                                      peer=q.asset["issuer"], marker=marker))
            if result.get("error") == "actNotFound":
                return 0
            self._check(result, "account_lines", q, height)
            for line in result.get("lines") or []:
                if line.get("currency") == q.asset["currency"] and line.get("account") == q.asset["issuer"]:
                    try:
                        total += Decimal(str(line["balance"]))
                    except (KeyError, InvalidOperation):
                        raise BadRpcResponse(f"account_lines {q.address} at {height}: bad balance") from None
            marker = result.get("marker")
            if not marker:
                break
        return to_base_units(total, q.asset["decimals"], f"{q.asset['id']} of {q.address} at {height}")

    @staticmethod
    def _check(result: dict, method: str, q: BalanceQuery, height: int) -> None:
        if "error" in result:
            raise BalanceError(f"{method} {q.address} at {height}: {result.get('error')}: {result.get('error_message', '')}")
        if result.get("validated") is not True:
            raise BalanceError(f"{method} {q.address} at {height}: answer is not from a validated ledger")
        if int(result.get("ledger_index", -1)) != height:
            raise BalanceError(f"{method} {q.address}: asked for ledger {height}, got {result.get('ledger_index')}")

    async def decimals(self, asset: Mapping[str, Any]) -> int | None:
        return None  # XRP has 6; issued currencies must configure theirs

    async def close(self) -> None:
        return None


def to_base_units(value: Decimal, decimals: int | None, what: str) -> int:
    """An issued-currency amount in base units; refuses to round."""
    if decimals is None:
        raise BalanceError(f"{what}: the asset has no decimals configured")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise BalanceError(f"{what}: {value} has more precision than the asset's {decimals} decimals")
    return int(scaled)


def reader_for(cfg: ChainConfig) -> BalanceReader:
    return EvmBalanceReader.for_chain(cfg) if cfg.kind == "evm" else XrplBalanceReader.for_chain(cfg)
