"""Prometheus metrics of the followers and their RPC endpoints.

Thin wrappers only: the authoritative state lives in Postgres; these are
what Grafana plots and alert rules match on.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RPC_REQUESTS = Counter("chainsettle_rpc_requests_total", "RPC requests sent", ["chain", "endpoint", "method"])
RPC_ERRORS = Counter("chainsettle_rpc_errors_total", "RPC requests that failed", ["chain", "endpoint", "method", "kind"])
RPC_LATENCY = Histogram(
    "chainsettle_rpc_latency_seconds", "RPC request latency", ["chain", "endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ENDPOINT_HEALTHY = Gauge("chainsettle_rpc_endpoint_healthy", "1 when the endpoint is usable", ["chain", "endpoint"])

HEAD_BLOCK = Gauge("chainsettle_head_block", "Chain head seen by the follower", ["chain"])
INDEXED_BLOCK = Gauge("chainsettle_indexed_block", "Highest block fully indexed (cursor)", ["chain"])
FINALIZED_BLOCK = Gauge("chainsettle_finalized_block", "Highest block final and indexed", ["chain"])
LAG_BLOCKS = Gauge("chainsettle_lag_blocks", "Head minus indexed block", ["chain"])
LAG_SECONDS = Gauge("chainsettle_lag_seconds", "Seconds since the indexed block was produced", ["chain"])
EVENTS_INDEXED = Counter("chainsettle_events_indexed_total", "Events stored (new rows)", ["chain"])
LOGS_UNDECODED = Counter("chainsettle_logs_undecoded_total", "Logs kept raw because they did not decode", ["chain"])
GETLOGS_RANGE = Gauge("chainsettle_getlogs_range_blocks", "Current eth_getLogs range size", ["chain"])
REORGS = Counter("chainsettle_reorgs_total", "Reorgs handled", ["chain"])
REORG_DEPTH = Histogram("chainsettle_reorg_depth_blocks", "Depth of handled reorgs", ["chain"], buckets=(1, 2, 3, 5, 8, 13, 21, 64, 128))
FOLLOWER_UP = Gauge("chainsettle_follower_up", "1 while the follower makes progress, 0 while it retries", ["chain"])
FOLLOWER_HALTED = Gauge("chainsettle_follower_halted", "1 when the follower stopped on a reorg beyond finality", ["chain"])

# Integrity: answers checked against headers, re-queried, re-scanned.
GETLOGS_REQUERIES = Counter(
    "chainsettle_getlogs_requeries_total",
    "Ranges or blocks asked again before their logs were accepted "
    "(reason: bloom = header bloom matched but no log came back; confirm = top-window re-query before final)",
    ["chain", "reason"],
)
BLOOM_LIES = Counter("chainsettle_bloom_lies_total", "eth_getLogs answers with a log missing from its header's bloom", ["chain"])
LATE_LOGS = Counter(
    "chainsettle_late_logs_total", "Logs found only by a re-query (stage: bloom, confirm)", ["chain", "stage"])
RESCAN_BLOCKS = Counter("chainsettle_final_rescan_blocks_total", "Final blocks re-scanned in the background", ["chain"])
RESCAN_DIFFERENCES = Counter(
    "chainsettle_final_rescan_differences_total",
    "Differences between stored final events and a background re-scan of the chain (missing or extra logs)",
    ["chain"],
)
INTEGRITY_HALTS = Counter("chainsettle_integrity_halts_total", "Follower halts on a contradiction below final", ["chain"])
FACTORY_CHILDREN_FOUND = Counter(
    "chainsettle_factory_children_found_total", "Contracts announced by configured factories (found in fetched ranges)",
    ["chain"])
TRACED_BLOCKS = Counter("chainsettle_traced_blocks_total", "Blocks whose call traces were read", ["chain", "method"])
