"""Read routes over the settlement tables: balances, payouts, batches, reconciliation."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field

from config.section_api import ApiSettings
from db import Queries
from settlement.ledger.freeze import frozen_count
from settlement.ledger.transfers import account_balances as ledger_balances

from .http import RequestError, json_response, row_dict
from .routing import ChainName, Ident, QueryInt, Routes, Runtime, Units
from .state import POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
_NUMERIC_ID = re.compile(r"[0-9]{1,18}")
routes = Routes("private")  # each route names its read area
PageLimit = Annotated[QueryInt(1), Runtime("page_size")]


def page_limit(limit: int | None, api: ApiSettings, default: int | None = None) -> int:
    """A `limit` parameter within the configured page size (the document states the bound)."""
    if limit is None:
        return api.default_page_size if default is None else default
    if limit > api.max_page_size:
        raise RequestError("limit", f"must be an integer between 1 and {api.max_page_size}")
    return limit


class ById(BaseModel):
    id: Ident = Field(description="Id or code")


class Page(BaseModel):
    limit: PageLimit | None = Field(None, description="Page size")
    cursor: QueryInt() | None = Field(None, description="The `next` value of the previous page")


class AccountPage(ById, Page):
    pass


class Account(BaseModel):
    id: int
    code: str
    kind: str
    label: str | None


class Balance(BaseModel):
    asset_id: str
    chain: str
    symbol: str | None
    decimals: int | None
    balance: Units = Field(description="base units; positive = held (wallets) or owed (users)")
    final_balance: Units = Field(description="the part booked at final heights (the same as `final`)")
    final: Units = Field(description="final chain data and posted transfers")
    held: Units = Field(description="pending holds debiting the account")
    reserved: Units = Field(description="open payout requests paid from the account")
    pending: Units = Field(description="held + reserved + chain value not final yet")
    available: Units = Field(description="final - held - reserved: what a new transfer, hold or payout may use")


class Balances(BaseModel):
    account: Account
    balances: list[Balance]


class PayoutBatchRef(BaseModel):
    batch_id: str
    state: str
    executed_block: int | None
    executed_tx: str | None
    outcome: str | None


class PayoutFields(BaseModel):
    """What every view of a payout request shows."""

    id: int
    idempotency_key: str
    chain: str
    asset: str
    recipient: str
    from_account: str | None = Field(None, description="the account that pays")
    amount: Units


class PayoutRequest(PayoutFields):
    state: Literal["pending", "batched", "paid", "held", "cancelled"]
    reason: str | None
    requested_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    batch: PayoutBatchRef | None


class AccountPayouts(BaseModel):
    account: Account
    payouts: list[PayoutRequest]
    next: int | None


class Payout(BaseModel):
    payout: PayoutRequest


class BatchItem(BaseModel):
    idx: int
    request_id: int
    recipient: str
    from_account: str | None = Field(None, description="the account that pays")
    amount: Units
    outcome: str | None


class BatchTransaction(BaseModel):
    tx_hash: str
    sender: str
    nonce: int
    attempt: int
    state: str
    broadcasts: int
    gas_limit: int
    max_fee_per_gas: Units
    max_priority_fee_per_gas: Units
    mined_block: int | None
    receipt_status: int | None
    last_error: str | None
    created_at: dt.datetime
    last_broadcast_at: dt.datetime | None


class BatchView(BaseModel):
    batch_id: str
    chain: str
    asset: str
    token: str
    source: int
    treasury: str
    batcher: str
    item_count: int
    total: Units
    gas_limit: int
    expiry: int
    state: str
    reason: str | None
    approved_by: str | None
    approved_at: dt.datetime | None
    signer: str | None
    replaces: str | None
    executed_block: int | None
    executed_tx: str | None
    failed_count: int | None
    failed_amount: Units | None
    created_at: dt.datetime
    updated_at: dt.datetime
    items: list[BatchItem]
    transactions: list[BatchTransaction]


class Batch(BaseModel):
    batch: BatchView


class RunSummary(BaseModel):
    id: int
    chain: str
    height: int | None
    started_at: dt.datetime
    finished_at: dt.datetime
    status: Literal["ok", "mismatch", "error"]
    error: str | None
    checked: int
    mismatches: int


class ReconciliationResult(BaseModel):
    account: str
    asset_id: str
    expected: Units
    actual: Units
    difference: Units
    tolerance: Units
    status: Literal["ok", "within_tolerance", "mismatch"]
    movements: list[dict[str, Any]] = Field(description=(
        "For a mismatch, the movements that explain it: events that touched the wallet since it last matched, "
        "unbooked first (`booked` false), then the largest `amount`; each with block_number, tx_hash, "
        "log_index, source, event, args, amount, booked, booked_by. An overpaid user has {paid, credited}."))
    movements_total: int = Field(description="How many movements there were in all (the list keeps "
                                             "reconcile.max_movements)")


class ReconciliationRun(RunSummary):
    results: list[ReconciliationResult]


class ReconciliationPage(BaseModel):
    runs: list[ReconciliationRun]
    next: int | None


class ReconciliationQuery(Page):
    chain: ChainName | None = Field(None, description="Only this chain")
    status: Literal["any", "ok", "mismatch", "error"] = Field("any", description="Only runs with this outcome")


class QueueRow(BaseModel):
    chain: str
    asset: str
    state: str
    count: int
    amount: Units


class OpenBatches(BaseModel):
    chain: str
    state: str
    count: int
    ids: list[str] | None = Field(None, description="the oldest batch ids in this state (up to 5); only to readers "
                                                    "of payouts (README \"Read scopes\"), else null")


class KillSwitchRow(BaseModel):
    scope: str
    reason: str
    changed_by: str
    changed_at: dt.datetime


class PayoutSummary(BaseModel):
    queue: list[QueueRow]
    open_batches: list[OpenBatches]
    kill_switches: list[KillSwitchRow]
    frozen_accounts: int = Field(0, description="user accounts an operator froze (nothing is paid from them)")


class PausedAsset(BaseModel):
    asset_id: str
    reason: str | None = Field(description="null without the right to read reconciliation details: "
                                           "a reconciler's reason names an account and amounts")
    run_id: int | None
    paused_by: str
    paused_at: dt.datetime


class ReconciliationSummary(BaseModel):
    latest: list[RunSummary]
    paused_assets: list[PausedAsset]


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


NOT_FOUND = {404: "No such resource"}


@routes.get("/v1/accounts/{id}/balances", area="accounts", params=ById, response=Balances, errors=NOT_FOUND)
async def account_balances(request: web.Request, p: ById) -> web.Response:
    """Ledger balances of one account, per asset"""
    ref = p.id
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


@routes.get("/v1/accounts/{id}/payouts", area="accounts", params=AccountPage, response=AccountPayouts, errors=NOT_FOUND)
async def account_payouts(request: web.Request, p: AccountPage) -> web.Response:
    """Payouts to one account, newest first

    Payouts to the account's address: codes read '<kind>:<chain>:<address>'.
    """
    limit = page_limit(p.limit, request.app[SETTINGS].api)
    cursor = p.cursor
    ref = p.id
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


@routes.get("/v1/payouts/{id}", area="payouts", params=ById, response=Payout, errors=NOT_FOUND)
async def payout(request: web.Request, p: ById) -> web.Response:
    """One payout request, by id or idempotency key"""
    ref = p.id
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(Q.payout_by_ref, ref, _numeric(ref))
    if row is None:
        raise _not_found("payout")
    return json_response({"payout": payout_view(row)})


@routes.get("/v1/batches/{id}", area="payouts", params=ById, response=Batch, errors=NOT_FOUND)
async def batch(request: web.Request, p: ById) -> web.Response:
    """One payout batch"""
    ref = p.id.lower()
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


@routes.get("/v1/reconciliation", area="reconciliation", params=ReconciliationQuery, response=ReconciliationPage)
async def reconciliation(request: web.Request, p: ReconciliationQuery) -> web.Response:
    """Reconciliation runs, newest first, with their results"""
    api = request.app[SETTINGS].api
    chain, status, cursor = p.chain, p.status, p.cursor
    limit = page_limit(p.limit, api, default=min(20, api.max_page_size))
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
        "frozen_accounts": await frozen_count(conn),
    }


async def reconciliation_summary(conn: asyncpg.Connection, *, reasons: bool = True) -> dict[str, Any]:
    """The newest run per chain and the paused assets, for /v1/status (`reasons`: the pause reasons too)."""
    paused = [row_dict(r) for r in await conn.fetch(Q.open_pause_rows)]
    if not reasons:
        paused = [{**p, "reason": None} for p in paused]
    return {"latest": [row_dict(r) for r in await conn.fetch(Q.latest_reconciliations)], "paused_assets": paused}
