"""Read routes over what the indexer wrote: health, readiness, status, events."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, Field

from config import Settings
from db import Queries

from .http import RequestError, json_response, row_dict
from .routing import Address, ChainName, EventName, QueryInt, Routes, Runtime, Text
from .scopes import can_read, principal, public_areas
from .settlement_routes import PayoutSummary, ReconciliationSummary, page_limit, payout_summary, reconciliation_summary
from .state import POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
READY_TIMEOUT = 3.0
RECENT_REORGS = 5
routes = Routes("public", auth=None)
probes = Routes("ops", auth=None)


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    reasons: list[str]


@probes.get("/health", response=Health)
async def health(request: web.Request) -> web.Response:
    """The process is alive

    The process answers; says nothing about the database (that is /ready).
    """
    return json_response({"status": "ok"})


@probes.get("/ready", response=Ready, responses={503: (Ready, "Not ready; `reasons` says why")})
async def ready(request: web.Request) -> web.Response:
    """Database reachable, every chain within its lag threshold, none halted"""
    settings = request.app[SETTINGS]
    reasons: list[str] = []
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with request.app[POOL].acquire() as conn:
                states = {r["chain"]: r for r in await conn.fetch(Q.chain_states)}
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reasons.append(f"database: not reachable ({exc.__class__.__name__})")
        states = None
    if states is not None:
        reasons.extend(readiness_problems(settings, states))
    body = {"ready": not reasons, "reasons": reasons}
    return json_response(body, status=200 if not reasons else 503)


def readiness_problems(settings: Settings, states: dict[str, Any]) -> list[str]:
    problems = []
    for cfg in settings.chains:
        row = states.get(cfg.name)
        if row is None:
            problems.append(f"{cfg.name}: no follower has registered this chain yet")
            continue
        if row["halted_reason"] is not None:
            problems.append(f"{cfg.name}: halted: {row['halted_reason']}")
        head, cursor = row["head_number"], row["cursor_number"]
        if head is None or cursor is None:
            problems.append(f"{cfg.name}: no head or indexed block recorded yet")
        elif head - cursor > cfg.lag_threshold_blocks:
            problems.append(f"{cfg.name}: {head - cursor} blocks behind the head (threshold {cfg.lag_threshold_blocks})")
    return problems


def _lag_seconds(row: asyncpg.Record) -> float | None:
    """Age of the newest indexed block: its own timestamp, else the head's when caught up."""
    now = row["db_now"]
    ts = row["cursor_timestamp"]
    if ts is None and row["cursor_number"] is not None and row["cursor_number"] >= (row["head_number"] or 0):
        status = row["status"] if isinstance(row["status"], dict) else {}
        head_ts = status.get("head_timestamp")
        ts = head_ts if isinstance(head_ts, (int, float)) and not isinstance(head_ts, bool) else None
    if ts is None:
        return None
    return round(max(0.0, now - float(ts)), 3)


def chain_view(row: asyncpg.Record, cfg_threshold: int | None, reorgs: list[dict]) -> dict[str, Any]:
    status = row["status"] if isinstance(row["status"], dict) else {}
    head, cursor = row["head_number"], row["cursor_number"]
    if head is not None and cursor is not None and cursor > head:
        head = cursor  # one row, one snapshot; a block we indexed exists, so the head is at least there
    endpoints = status.get("endpoints")
    return {
        "chain": row["chain"],
        "kind": row["kind"],
        "chain_id": row["chain_id"],
        "configured": cfg_threshold is not None,
        "head": head,
        "indexed": cursor,
        "finalized": row["final_number"],
        "chain_finalized": row["chain_finalized"],
        "lag_blocks": max(0, head - cursor) if head is not None and cursor is not None else None,
        "lag_seconds": _lag_seconds(row),
        "lag_threshold_blocks": cfg_threshold,
        "state": status.get("state") if isinstance(status.get("state"), str) else None,
        "halted_reason": row["halted_reason"],
        "last_error": status.get("last_error") if isinstance(status.get("last_error"), str) else None,
        "endpoints": endpoints if isinstance(endpoints, list) else [],
        "factory_children": status.get("factory_children") if isinstance(status.get("factory_children"), int) else None,
        "reorg_count": row["reorg_count"],
        "recent_reorgs": reorgs,
        "head_seen_at": row["head_seen_at"],
        "updated_at": row["updated_at"],
    }


class Reorg(BaseModel):
    id: int
    detected_at: dt.datetime
    common_ancestor: int
    old_cursor: int
    depth: int
    deleted_events: int


class ChainStatus(BaseModel):
    chain: str
    kind: Literal["evm", "xrpl"]
    chain_id: int
    configured: bool
    head: int | None = None
    indexed: int | None = None
    finalized: int | None = None
    chain_finalized: int | None = None
    lag_blocks: int | None = Field(None, ge=0)
    lag_seconds: float | None = None
    lag_threshold_blocks: int | None = None
    state: str | None
    halted_reason: str | None = None
    last_error: str | None = None
    endpoints: list[dict[str, Any]]
    factory_children: int | None = Field(None, description="contracts the chain's factories created")
    reorg_count: int
    recent_reorgs: list[Reorg]
    head_seen_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class AssetUnits(BaseModel):
    id: str
    chain: str
    name: str
    kind: str
    contract: str | None
    symbol: str | None
    decimals: int | None


class Status(BaseModel):
    generated_at: dt.datetime
    chains: list[ChainStatus]
    payouts: PayoutSummary
    reconciliation: ReconciliationSummary
    assets: list[AssetUnits] = Field(description="symbol and decimals per asset, to show amounts in units")


@routes.get("/v1/status", response=Status)
async def status(request: web.Request) -> web.Response:
    """Per-chain follower status, payout queue, last reconciliation

    Public: aggregates only (counts and sums per chain, asset and state), nothing per
    invoice, payout or account; pause reasons only with the right to read reconciliation.
    """
    settings = request.app[SETTINGS]
    thresholds = {c.name: c.lag_threshold_blocks for c in settings.chains}
    reasons = can_read(principal(request), "reconciliation", public_areas(request.app))
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(Q.chain_states)
        reorg_rows = await conn.fetch(Q.recent_reorgs, RECENT_REORGS)
        payouts = await payout_summary(conn)
        if not can_read(principal(request), "payouts", public_areas(request.app)):
            for b in payouts.get("open_batches", []):
                b["ids"] = None  # a batch id awaiting approval is no chain data yet: private
        reconciliation = await reconciliation_summary(conn, reasons=reasons)
        assets = [row_dict(r) for r in await conn.fetch(Q.asset_units)]
    reorgs: dict[str, list[dict]] = {}
    for r in reorg_rows:
        reorgs.setdefault(r["chain"], []).append({k: v for k, v in r.items() if k != "chain"})
    chains = [chain_view(r, thresholds.get(r["chain"]), reorgs.get(r["chain"], [])) for r in rows]
    seen = {c["chain"] for c in chains}
    for cfg in settings.chains:
        if cfg.name not in seen:  # configured, but no follower has started yet
            chains.append({"chain": cfg.name, "kind": cfg.kind, "chain_id": cfg.effective_chain_id,
                           "configured": True, "lag_threshold_blocks": cfg.lag_threshold_blocks,
                           "state": "not_started", "endpoints": [], "recent_reorgs": [], "reorg_count": 0})
    return json_response({
        "generated_at": dt.datetime.now(dt.timezone.utc),
        "chains": chains,
        "payouts": payouts,
        "reconciliation": reconciliation,
        "assets": assets,
    })


_CURSOR = re.compile(r"^c1\.([0-9]{1,20})\.([0-9]{1,19})$")


def encode_cursor(tx: str, row_id: int) -> str:
    """Opaque to clients: where a page ended, in commit order (see queries.sql)."""
    return base64.urlsafe_b64encode(f"c1.{tx}.{row_id}".encode()).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[str, int]:
    try:
        text = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    match = _CURSOR.fullmatch(text)
    if not match or int(match.group(1)) >= 2**64 or int(match.group(2)) >= 2**63:
        raise RequestError("cursor", "must be the `next` value of a previous page, unchanged")
    return match.group(1), int(match.group(2))


class Event(BaseModel):
    id: int = Field(ge=1)
    chain: str
    block_number: int = Field(ge=0)
    block_hash: str
    tx_hash: str
    tx_index: int = Field(ge=0)
    log_index: int = Field(ge=0)
    address: str
    event: str
    args: dict[str, Any]
    inserted_at: dt.datetime
    final: bool


class EventPage(BaseModel):
    events: list[Event]
    next: str | None = Field(description="pass as `cursor` for the next page; null when no more rows now")
    resume: str | None = Field(description="ascending order: pass as `cursor` later to get rows committed since; "
                                           "following `next` then `resume` sees every row once")


PageLimit = Runtime("page_size")


class EventsQuery(BaseModel):
    chain: ChainName | None = Field(None, description="Only this chain")
    address: Address | None = Field(None, description="Emitting contract / account (needs `chain`)")
    event: EventName | None = Field(None, description="Event name, e.g. Transfer (needs `chain`)")
    from_block: QueryInt() | None = Field(None, description="Lowest block number (needs `chain`)")
    to_block: QueryInt() | None = Field(None, description="Highest block number, at least from_block (needs `chain`)")
    limit: Annotated[QueryInt(1), PageLimit] | None = Field(None, description="Page size")
    cursor: Text("^[A-Za-z0-9_-]{1,80}$", "the `next` value of a previous page, unchanged") | None = Field(
        None, description="The `next` (or `resume`) value of a previous page, unchanged")
    order: Literal["asc", "desc"] = Field("asc", description="By commit order; default asc")


@routes.get("/v1/events", params=EventsQuery, response=EventPage)
async def events(request: web.Request, p: EventsQuery) -> web.Response:
    """Stored events, filtered, in keyset pages in commit order"""
    settings = request.app[SETTINGS].api
    chain, address, event, from_block, to_block = p.chain, p.address, p.event, p.from_block, p.to_block
    if from_block is not None and to_block is not None and to_block < from_block:
        raise RequestError("to_block", f"must be at least from_block ({from_block})")
    # [integrity] every page is an index range: these filters are only indexed
    # under a chain (0009); without one they would scan the whole table.
    names = [c.name for c in request.app[SETTINGS].chains]
    if chain is not None and chain not in names and not await request.app[POOL].fetchval(Q.chain_known, chain):
        # An empty page would read as "nothing happened on it": a typo must not look like that.
        # (A chain no longer configured whose rows are still stored stays readable.)
        raise RequestError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    for name, value in (("address", address), ("event", event), ("from_block", from_block), ("to_block", to_block)):
        if value is not None and chain is None:
            raise RequestError("chain", f"is required with {name}: filter by chain too")
    limit = page_limit(p.limit, settings)
    raw_cursor = p.cursor
    after = decode_cursor(raw_cursor) if raw_cursor is not None else (None, None)
    order = p.order
    query = Q.events_page_asc if order == "asc" else Q.events_page_desc
    async with request.app[POOL].acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        horizon = (await conn.fetchrow(Q.events_page_begin, str(settings.statement_timeout_ms)))["horizon"]
        rows = await conn.fetch(query, chain, address, event, from_block, to_block, after[0], after[1], horizon, limit + 1)
    more = len(rows) > limit
    page = [{k: v for k, v in row_dict(r).items() if k != "tx"} for r in rows[:limit]]
    # `next`: more rows are there now. `resume`: where to poll from later (in
    # commit order, rows still committing come after it): a client that
    # follows `next`, then polls `resume`, sees every row exactly once.
    last = encode_cursor(rows[len(page) - 1]["tx"], page[-1]["id"]) if page else raw_cursor
    return json_response({"events": page, "next": last if more else None,
                          "resume": last if order == "asc" else None})
