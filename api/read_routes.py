"""Read routes over what the indexer wrote: health, readiness, status, events."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from config import Settings
from db import Queries

from .http import CHAIN_NAME, EVENT_NAME, Query, RequestError, json_response, row_dict
from .settlement_routes import payout_summary, reconciliation_summary
from .state import POOL, SETTINGS

Q = Queries(Path(__file__).with_name("queries.sql"))
READY_TIMEOUT = 3.0
RECENT_REORGS = 5
routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """The process answers; says nothing about the database (that is /ready)."""
    return json_response({"status": "ok"})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
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


@routes.get("/v1/status")
async def status(request: web.Request) -> web.Response:
    Query(request.query, set())
    settings = request.app[SETTINGS]
    thresholds = {c.name: c.lag_threshold_blocks for c in settings.chains}
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(Q.chain_states)
        reorg_rows = await conn.fetch(Q.recent_reorgs, RECENT_REORGS)
        payouts = await payout_summary(conn)
        reconciliation = await reconciliation_summary(conn)
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
    })


EVENT_PARAMS = {"chain", "address", "event", "from_block", "to_block", "limit", "cursor", "order"}
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


@routes.get("/v1/events")
async def events(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].api
    q = Query(request.query, EVENT_PARAMS)
    chain = q.text("chain", CHAIN_NAME, "a chain name (lowercase letters, digits, '-', '_')")
    address = q.address("address")
    event = q.text("event", EVENT_NAME, "an event name such as Transfer")
    from_block = q.integer("from_block")
    to_block = q.integer("to_block")
    if from_block is not None and to_block is not None and to_block < from_block:
        raise RequestError("to_block", f"must be at least from_block ({from_block})")
    # [integrity] every page is an index range: these filters are only indexed
    # under a chain (0009); without one they would scan the whole table.
    for name, value in (("address", address), ("event", event), ("from_block", from_block), ("to_block", to_block)):
        if value is not None and chain is None:
            raise RequestError("chain", f"is required with {name}: filter by chain too")
    limit = q.integer("limit", default=settings.default_page_size, low=1, high=settings.max_page_size)
    raw_cursor = request.query.get("cursor")
    after = decode_cursor(raw_cursor) if raw_cursor is not None else (None, None)
    order = q.choice("order", ("asc", "desc"), "asc")
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
