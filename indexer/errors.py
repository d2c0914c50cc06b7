"""Indexer errors. RPC failures carry a `kind` instead of a class per cause."""

from __future__ import annotations

from enum import Enum

from config import ChainsettleError


class RpcErrorKind(str, Enum):
    RETRYABLE = "retryable"  # network, 5xx, 429, bad JSON: try again / elsewhere
    TIMEOUT = "timeout"  # the node gave up or we did: retry smaller
    RANGE_TOO_LARGE = "range_too_large"  # too many results / block range / response size
    UNSUPPORTED = "unsupported"  # method not available on this endpoint
    EXECUTION = "execution"  # eth_call / estimateGas reverted: the answer, not a fault
    ALREADY_KNOWN = "already_known"  # our transaction is in the pool already
    NONCE_TOO_LOW = "nonce_too_low"  # that nonce is used (maybe by our own transaction)
    UNDERPRICED = "underpriced"  # replacement fee too low / fee below the pool minimum
    FATAL = "fatal"  # invalid request: a bug or bad config, retrying will not help


class RpcError(ChainsettleError):
    """RPC request failed"""

    def __init__(
        self,
        message: str,
        *,
        kind: RpcErrorKind,
        endpoint: str | None = None,
        method: str | None = None,
        code: int | None = None,
        hint: tuple[int, int] | int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.endpoint = endpoint
        self.method = method
        self.code = code
        self.hint = hint  # a block range (from, to) or a span the provider suggested
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" [{self.endpoint}]" if self.endpoint else ""
        return f"{self.method or 'rpc'}{where}: {self.kind.value}: {self.args[0]}"


class AllEndpointsFailed(RpcError):
    """every endpoint failed"""


class BadRpcResponse(ChainsettleError):
    """an RPC response did not have the expected shape"""


class StaleCursor(ChainsettleError):
    """the stored cursor moved under us (another writer or a rewind)"""


class ReorgBeyondFinality(ChainsettleError):
    """a reorg reached below the finalized height"""


class ChainHalted(ChainsettleError):
    """this chain's follower is halted"""


class ReplayRefused(ChainsettleError):
    """a replay was refused (above final, fenced out, or only non-canonical logs offered)"""
