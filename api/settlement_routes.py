"""Read routes over the settlement tables: balances, payouts, batches, reconciliation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from db import Queries
from settlement.ledger.transfers import account_balances as ledger_balances

from .http import CHAIN_NAME, Query, RequestError, json_response, path_ident, row_dict
from .state import POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
_NUMERIC_ID = re.compile(r"[0-9]{1,18}")
routes = web.RouteTableDef()


def _numeric(ref: str) -> int | None:
    return int(ref) if _NUMERIC_ID.fullmatch(ref) else None


def _not_found(what: str) -> RequestError:
    return RequestError("id", f"no {what} with this id", status=404, code="not_found")


async def _account(conn: asyncpg.Connection, ref: str) -> asyncpg.Record:
    row = await conn.fetchrow(Q.account_by_ref, ref, _numeric(ref))
    if row is None:
        raise RequestError("id", "no ledger account with this code or id", status=404, code="not_found")
    return row


def _account_view(row: asyncpg.Record) -> dict[str, Any]:
    return {"id": row["id"], "code": row["code"], "kind": row["kind"], "label": row["label"]}


@routes.get("/v1/accounts/{id}/balances")
async def account_balances(request: web.Request) -> web.Response:
    Query(request.query, set())
    ref = path_ident(request)
    async with request.app[POOL].acquire() as conn:
        account = await _account(conn, ref)
        rows = await ledger_balances(conn, account["code"], account["id"], account["kind"])
    # balance: every entry; final_balance (= final): final chain data and
    # posted transfers; held, reserved, pending, available: see
    # settlement/ledger/transfers.py. Integer strings in base units.
    balances = [
        {
            "asset_id": r["asset_id"], "chain": r["chain"], "symbol": r["symbol"], "decimals": r["decimals"],
            "balance": str(r["balance"]), "final_balance": str(r["final"]),
            **{k: str(r[k]) for k in ("final", "held", "reserved", "pending", "available")},
        }
        for r in rows
    ]
    return json_response({"account": _account_view(account), "balances": balances})


def payout_view(r: asyncpg.Record) -> dict[str, Any]:
    out = {k: r[k] for k in ("id", "idempotency_key", "chain", "asset", "recipient", "amount", "state", "reason",
                             "requested_by", "created_at", "updated_at")}
    out["batch"] = None if r["batch_id"] is None else {
        "batch_id": r["batch_id"], "state": r["batch_state"], "executed_block": r["executed_block"],
        "executed_tx": r["executed_tx"], "outcome": r["outcome"],
    }
    return out


@routes.get("/v1/accounts/{id}/payouts")
async def account_payouts(request: web.Request) -> web.Response:
    """Payouts to the account's address: codes read '<kind>:<chain>:<address>'."""
    api = request.app[SETTINGS].api
    q = Query(request.query, {"limit", "cursor"})
    limit = q.integer("limit", default=api.default_page_size, low=1, high=api.max_page_size)
    cursor = q.integer("cursor")
    ref = path_ident(request)
    async with request.app[POOL].acquire() as conn:
        account = await _account(conn, ref)
        parts = account["code"].split(":", 2)
        rows = []
        if len(parts) == 3:
            rows = await conn.fetch(Q.payouts_to, parts[1], parts[2], cursor, limit + 1)
    payouts = [payout_view(r) for r in rows[:limit]]
    return json_response({
        "account": _account_view(account), "payouts": payouts,
        "next": payouts[-1]["id"] if len(rows) > limit else None,
    })


@routes.get("/v1/payouts/{id}")
async def payout(request: web.Request) -> web.Response:
    """By numeric id, or by the idempotency key it was requested with."""
    Query(request.query, set())
    ref = path_ident(request)
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(Q.payout_by_ref, ref, _numeric(ref))
    if row is None:
        raise _not_found("payout")
    return json_response({"payout": payout_view(row)})


@routes.get("/v1/batches/{id}")
async def batch(request: web.Request) -> web.Response:
    Query(request.query, set())
    ref = path_ident(request).lower()
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(Q.batch_by_id, ref)
        if row is None:
            raise _not_found("batch")
        items = await conn.fetch(Q.batch_item_rows, ref)
        txs = await conn.fetch(Q.batch_transactions, ref)
    body = row_dict(row)
    body["items"] = [row_dict(i) for i in items]
    body["transactions"] = [row_dict(t) for t in txs]
    return json_response({"batch": body})


@routes.get("/v1/reconciliation")
async def reconciliation(request: web.Request) -> web.Response:
    api = request.app[SETTINGS].api
    q = Query(request.query, {"chain", "status", "limit", "cursor"})
    chain = q.text("chain", CHAIN_NAME, "a chain name (lowercase letters, digits, '-', '_')")
    status = q.choice("status", ("any", "ok", "mismatch", "error"), "any")
    limit = q.integer("limit", default=min(20, api.max_page_size), low=1, high=api.max_page_size)
    cursor = q.integer("cursor")
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(Q.reconciliation_page, chain, None if status == "any" else status, cursor, limit + 1)
    runs = [row_dict(r) for r in rows[:limit]]
    return json_response({"runs": runs, "next": runs[-1]["id"] if len(rows) > limit else None})


async def payout_summary(conn: asyncpg.Connection) -> dict[str, Any]:
    """The payout queue for /v1/status."""
    return {
        "queue": [row_dict(r) for r in await conn.fetch(Q.payout_queue)],
        "open_batches": [row_dict(r) for r in await conn.fetch(Q.open_batches)],
        "kill_switches": [row_dict(r) for r in await conn.fetch(Q.payout_kill_switches)],
    }


async def reconciliation_summary(conn: asyncpg.Connection) -> dict[str, Any]:
    """The newest run per chain and the paused assets, for /v1/status."""
    return {
        "latest": [row_dict(r) for r in await conn.fetch(Q.latest_reconciliations)],
        "paused_assets": [row_dict(r) for r in await conn.fetch(Q.open_pause_rows)],
    }
