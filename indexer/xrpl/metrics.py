"""Prometheus metrics specific to XRPL followers.

The generic follower and RPC metrics (head, indexed, lag, events, RPC
requests/errors/latency per endpoint) live in `indexer.metrics` and are
shared with the EVM followers so one dashboard shows every chain; these add
what only the XRP Ledger has.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LEDGERS_INDEXED = Counter("chainsettle_xrpl_ledgers_indexed_total", "Validated ledgers fully indexed", ["chain"])
TRANSACTIONS = Counter(
    "chainsettle_xrpl_transactions_total", "Stored transaction rows by type and result class (tes/tec)",
    ["chain", "type", "result"],
)
GAP = Gauge("chainsettle_xrpl_gap", "1 while the next ledger to index is on no endpoint (history gap)", ["chain"])
GAP_LEDGERS = Gauge("chainsettle_xrpl_gap_ledgers", "Ledgers in the current history gap", ["chain"])
RPC_ERRORS = Counter(
    "chainsettle_xrpl_rpc_errors_total", "rippled/Clio error answers by endpoint and error token",
    ["chain", "endpoint", "error"],
)
STREAM_CONNECTED = Gauge("chainsettle_xrpl_stream_connected", "1 while a ledger stream subscription is open", ["chain"])
ENDPOINT_EXCLUDED = Gauge(
    "chainsettle_xrpl_endpoint_excluded", "1 when an endpoint is on another network and never used", ["chain", "endpoint"],
)
