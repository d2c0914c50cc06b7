"""Writes grafana/dashboards/chainsettle.json.

The dashboard is generated so every panel follows one layout and so the
tests can check that each query names a metric the daemon really exports.
Run: .venv/bin/python grafana/build_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).parent / "dashboards" / "chainsettle.json"

# (row title, [(panel title, unit, [PromQL, ...]), ...])
ROWS = [
    ("Chains", [
        ("Head, indexed and final block", "none", [
            "chainsettle_head_block", "chainsettle_indexed_block", "chainsettle_finalized_block"]),
        ("Lag (blocks)", "none", ["chainsettle_lag_blocks"]),
        ("Lag (seconds)", "s", ["chainsettle_lag_seconds"]),
        ("Follower up / halted", "none", ["chainsettle_follower_up", "chainsettle_follower_halted"]),
    ]),
    ("Indexing", [
        ("Events indexed /s", "ops", ["sum by (chain) (rate(chainsettle_events_indexed_total[5m]))"]),
        ("Undecoded logs /s", "ops", ["sum by (chain) (rate(chainsettle_logs_undecoded_total[5m]))"]),
        ("eth_getLogs range (blocks)", "none", ["chainsettle_getlogs_range_blocks"]),
        ("Reorgs and depth", "none", [
            "sum by (chain) (increase(chainsettle_reorgs_total[1h]))",
            "histogram_quantile(0.99, sum by (le, chain) (rate(chainsettle_reorg_depth_blocks_bucket[1h])))"]),
    ]),
    ("RPC endpoints", [
        ("Requests /s", "reqps", ["sum by (chain, endpoint) (rate(chainsettle_rpc_requests_total[5m]))"]),
        ("Errors /s by kind", "reqps", ["sum by (chain, endpoint, kind) (rate(chainsettle_rpc_errors_total[5m]))"]),
        ("Latency p95", "s", [
            "histogram_quantile(0.95, sum by (le, chain, endpoint, method) (rate(chainsettle_rpc_latency_seconds_bucket[5m])))"]),
        ("Endpoint healthy", "none", ["chainsettle_rpc_endpoint_healthy"]),
    ]),
    ("Payouts", [
        ("Payout requests by state", "none", ["sum by (chain, state) (chainsettle_payouts)"]),
        ("Batches by state", "none", ["sum by (chain, state) (chainsettle_payout_batches)"]),
        ("Batch size p50 / p95", "none", [
            "histogram_quantile(0.5, sum by (le, chain) (rate(chainsettle_payout_batch_size_bucket[1h])))",
            "histogram_quantile(0.95, sum by (le, chain) (rate(chainsettle_payout_batch_size_bucket[1h])))"]),
        ("Fee bumps, cap hits, nonce gaps", "none", [
            "sum by (chain) (increase(chainsettle_payout_fee_bumps_total[1h]))",
            "sum by (chain) (increase(chainsettle_payout_fee_cap_hit_total[1h]))",
            "sum by (chain) (increase(chainsettle_payout_nonce_gaps_total[1h]))"]),
        ("Broadcasts /s by result", "ops", ["sum by (chain, result) (rate(chainsettle_payout_broadcasts_total[5m]))"]),
        ("Kill switch", "none", ["chainsettle_payout_kill_switch"]),
    ]),
    ("Ledger and reconciliation", [
        ("Reconciliation difference (base units)", "none", ["chainsettle_reconciliation_difference"]),
        ("Reconciliation mismatches", "none", ["chainsettle_reconciliation_mismatches"]),
        ("Seconds since last reconciliation", "s", [
            "time() - max by (chain) (chainsettle_reconciliation_last_run_timestamp_seconds)"]),
        ("Paused assets", "none", ["chainsettle_asset_paused"]),
        ("Wallet balances (base units)", "none", ["chainsettle_wallet_balance"]),
        ("Wallets below minimum", "none", ["chainsettle_wallet_low"]),
        ("Ledger transactions /s", "ops", ["sum by (chain) (rate(chainsettle_ledger_event_transactions_total[5m]))"]),
        ("Unbookable events /s", "ops", ["sum by (chain, rule) (rate(chainsettle_ledger_unbookable_total[5m]))"]),
    ]),
    ("XRPL and API", [
        ("XRPL ledgers indexed /s", "ops", ["sum by (chain) (rate(chainsettle_xrpl_ledgers_indexed_total[5m]))"]),
        ("XRPL gap (ledgers)", "none", ["chainsettle_xrpl_gap_ledgers"]),
        ("API requests /s", "reqps", ["sum by (route, status) (rate(chainsettle_api_requests_total[5m]))"]),
        ("SSE clients", "none", ["chainsettle_api_sse_clients"]),
    ]),
    ("Integrity", [
        ("getLogs re-queries /s by reason", "ops",
         ["sum by (chain, reason) (rate(chainsettle_getlogs_requeries_total[5m]))"]),
        ("Late logs found by re-queries (1h)", "none", ["sum by (chain, stage) (increase(chainsettle_late_logs_total[1h]))"]),
        ("Final re-scan differences (1h)", "none", [
            "sum by (chain) (increase(chainsettle_final_rescan_differences_total[1h]))",
            "sum by (chain) (increase(chainsettle_bloom_lies_total[1h]))"]),
        ("Seconds since last successful reconciliation", "s", [
            "time() - max by (chain) (chainsettle_reconciliation_last_success_timestamp_seconds)"]),
    ]),
    ("Deliveries", [
        ("Delivery lag (seconds)", "s", ["chainsettle_delivery_lag_seconds"]),
        ("Delivery lag (messages)", "none", ["chainsettle_delivery_lag_events"]),
        ("Attempts /s by outcome", "ops", [
            "sum by (subscription, outcome) (rate(chainsettle_delivery_attempts_total[5m]))"]),
        ("Attempt latency p50 / p99", "s", [
            "histogram_quantile(0.5, sum by (le, sink) (rate(chainsettle_delivery_attempt_seconds_bucket[5m])))",
            "histogram_quantile(0.99, sum by (le, sink) (rate(chainsettle_delivery_attempt_seconds_bucket[5m])))"]),
        ("Dead letters (held, and new in 1h)", "none", [
            "chainsettle_delivery_dead_held",
            "sum by (subscription) (increase(chainsettle_delivery_dead_letters_total[1h]))"]),
        ("Disabled / paused subscriptions", "none", [
            "sum(chainsettle_delivery_subscription_disabled)", "sum(chainsettle_delivery_subscription_paused)"]),
    ]),
]


def panel(pid: int, title: str, unit: str, exprs: list[str], x: int, y: int) -> dict:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 6, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": "__auto"} for i, e in enumerate(exprs)],
    }


def build(rows=ROWS) -> dict:
    panels, pid, y = [], 1, 0
    for title, items in rows:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, (ptitle, unit, exprs) in enumerate(items):
            panels.append(panel(pid, ptitle, unit, exprs, (i % 4) * 6, y + (i // 4) * 8))
            pid += 1
        y += 8 * ((len(items) + 3) // 4)
    return {
        "uid": "chainsettle",
        "title": "chainsettle",
        "tags": ["chainsettle"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")
