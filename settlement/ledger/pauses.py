"""Payout pauses per asset: opened by reconciliation (or when the impossible
is observed), lifted only by an operator with a reason; both audited."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config.logs import get_logger
from db import Queries, audit
from settlement.ledger import metrics as m
from settlement.ledger.books import LedgerError, NoOpenPause

Q = Queries(Path(__file__).with_name("pauses.sql"))
log = get_logger("settlement.ledger.pauses")


async def is_paused(conn: asyncpg.Connection, asset_id: str) -> bool:
    """Payout code asks this before batching an asset."""
    return await conn.fetchrow(Q.open_pause, asset_id) is not None


async def open_pauses(conn: asyncpg.Connection) -> list[dict]:
    return [dict(r) for r in await conn.fetch(Q.open_pauses)]


async def pause_asset(conn: asyncpg.Connection, asset_id: str, reason: str, actor: str, run_id: int | None = None) -> bool:
    """Open a pause unless one is open; True when this call opened it."""
    pause_id = await conn.fetchval(Q.insert_pause, asset_id, reason, run_id, actor)
    if pause_id is None:
        return False
    await audit(conn, actor, "asset.paused", asset_id, {"reason": reason, "run_id": run_id, "pause_id": pause_id})
    m.ASSET_PAUSED.labels(asset_id).set(1)
    log.warning("ledger.asset_paused", asset=asset_id, reason=reason, run_id=run_id)
    return True


async def resolve_pause(pool: asyncpg.Pool, asset_id: str, actor: str, reason: str) -> dict:
    """An operator lifts the pause of an asset, with a recorded reason."""
    if not actor or not reason or not reason.strip():
        raise LedgerError("resolving a pause needs an actor and a reason")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.resolve_pause, asset_id, actor, reason)
        if row is None:
            raise NoOpenPause(f"asset {asset_id!r} has no open pause")
        await audit(conn, actor, "asset.resumed", asset_id, {"reason": reason, "pause_id": row["id"],
                                                               "paused_because": row["reason"]})
    m.ASSET_PAUSED.labels(asset_id).set(0)
    log.info("ledger.asset_resumed", asset=asset_id, actor=actor, reason=reason)
    return {"asset": asset_id, "pause_id": row["id"], "paused_because": row["reason"], "resolution": reason}
