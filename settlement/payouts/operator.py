"""What an operator does with payouts that wait for a human: list the held
ones with their reasons, release a batch's held requests back to the queue
(optionally leaving named recipients held), or cancel them, which frees
what they reserved of the recipient's balance. Every change is audited in
its own transaction.

A request goes back to the queue only when nothing signed for it can still
pay it:
- EVM: its batch executed (confirmed: a batch id runs once) or was proven
  dead (expired). A reverted batch's signature stays valid until its expiry,
  so releasing it marks its requests to be requeued by the expiry proof, not
  now; cancelling it waits for that proof.
- XRPL: a held request has no live payment (a failed or dead one, or none),
  and `xrpl_payments_one_live` keeps it so.
A batch not yet signed (awaiting approval, ready) can be cancelled whole.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries, audit
from db.values import amount_text
from settlement.payouts.requests import BatchNotFound, BatchStateConflict, PayoutError, json_rows

Q = Queries(Path(__file__).with_name("payouts.sql"))
log = get_logger("settlement.payouts")
UNSIGNED = ("awaiting_approval", "ready")


async def held_payouts(conn: asyncpg.Connection, chain: str | None = None, limit: int = 1000) -> list[dict]:
    """Held requests with their reasons and their batch's state, oldest first."""
    rows = json_rows(await conn.fetch(Q.held_requests, chain, limit))
    for r in rows:
        r["amount"] = amount_text(r["amount"])
    return rows


def _batch_id(batch_id: object) -> str:
    if not isinstance(batch_id, str) or len(batch_id) != 66 or not batch_id.startswith("0x"):
        raise PayoutError("batch", "must be a batch id: 0x and 64 hex digits")
    try:
        int(batch_id[2:], 16)
    except ValueError:
        raise PayoutError("batch", "must be a batch id: 0x and 64 hex digits") from None
    return batch_id.lower()


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise PayoutError("reason", "say why (it is recorded in the audit log)")
    return reason.strip()[:500]


async def _batch(conn: asyncpg.Connection, batch_id: str) -> asyncpg.Record:
    b = await conn.fetchrow(Q.lock_batch_row, batch_id)
    if b is None:
        raise BatchNotFound("batch", f"no batch {batch_id}")
    return b


async def release_batch(pool: asyncpg.Pool, settings: Settings, batch_id: str, actor: str, *,
                        without: list[str] | None = None, reason: str | None = None) -> dict:
    """Requeue the held requests of a batch, except those of the recipients in `without`."""
    batch_id = _batch_id(batch_id)
    keep = [w.lower() if w.startswith("0x") else w for w in (without or [])]
    why = (reason or "").strip() or "released by an operator"
    async with pool.acquire() as conn, conn.transaction():
        b = await _batch(conn, batch_id)
        pc = settings.payouts.chain(b["chain"])
        kind = pc.kind if pc is not None else "evm"
        held = await conn.fetch(Q.held_of_batch, batch_id)
        if not held:
            raise BatchStateConflict("batch", f"{batch_id} has no held requests", b["state"])
        unknown = [w for w in keep if w not in {h["recipient"] for h in held}]
        if unknown:
            raise PayoutError("without", f"not a held recipient of {batch_id}: {', '.join(unknown)}")
        given_back = 0
        if kind == "xrpl" or b["state"] in ("confirmed", "expired"):
            moved = await conn.fetch(Q.release_held, batch_id, keep)
            then = "pending"
            # Unpaid and back in the queue: the next batch counts them against a cap again.
            given_back = sum(int(m["amount"]) for m in moved)
            await conn.execute(Q.give_back_daily_total, b["chain"], b["asset"], b["cap_day"], given_back)
        elif b["state"] == "reverted":
            # Its signature is valid until expiry: back to 'batched', so the
            # expiry proof against its own contract requeues them, not before.
            moved = await conn.fetch(Q.rebatch_held, batch_id, keep)
            then = "requeued when the batch is proven dead"
        else:
            raise BatchStateConflict(
                "batch", f"{batch_id} is {b['state']}: its requests could still be paid by it; "
                "confirm it or cancel after it is proven dead", b["state"])
        ids = [m["id"] for m in moved]
        await audit(conn, actor, "payout.released", f"batch:{batch_id}", {
            "requests": ids, "kept_held": keep, "then": then, "reason": why, "batch_state": b["state"],
            "cap_given_back": str(given_back)})
    log.warning("payout.released", batch=batch_id, requests=len(ids), kept=len(keep), then=then, actor=actor)
    return {"batch_id": batch_id, "released": ids, "kept_held": keep, "then": then}


async def cancel_batch(pool: asyncpg.Pool, settings: Settings, batch_id: str, actor: str, *, reason: str) -> dict:
    """Cancel an unsigned batch whole, or the held requests of a batch that can no longer pay them."""
    batch_id = _batch_id(batch_id)
    why = _reason(reason)
    async with pool.acquire() as conn, conn.transaction():
        b = await _batch(conn, batch_id)
        pc = settings.payouts.chain(b["chain"])
        kind = pc.kind if pc is not None else "evm"
        given_back = 0
        if b["state"] in UNSIGNED:
            await conn.execute(Q.cancel_unsigned_batch, batch_id, why)
            cancelled = await conn.fetch(Q.cancel_batched, batch_id, why)
            given_back = int(b["total"])
            await conn.execute(Q.give_back_daily_total, b["chain"], b["asset"], b["cap_day"], b["total"])
        elif kind == "xrpl" or b["state"] in ("confirmed", "expired"):
            cancelled = await conn.fetch(Q.cancel_held, batch_id, why)
            given_back = sum(int(c["amount"]) for c in cancelled)  # held means unpaid
            await conn.execute(Q.give_back_daily_total, b["chain"], b["asset"], b["cap_day"], given_back)
        else:
            raise BatchStateConflict(
                "batch", f"{batch_id} is {b['state']}: a signature of it may still execute "
                f"(until expiry {b['expiry']}); cancel once it is proven dead", b["state"])
        if not cancelled:
            raise BatchStateConflict("batch", f"{batch_id} has nothing to cancel", b["state"])
        ids = [c["id"] for c in cancelled]
        await audit(conn, actor, "payout.cancelled", f"batch:{batch_id}", {
            "requests": ids, "reason": why, "batch_state": b["state"], "cap_given_back": str(given_back)})
    log.warning("payout.cancelled", batch=batch_id, requests=len(ids), actor=actor)
    return {"batch_id": batch_id, "cancelled": ids, "reason": why}
