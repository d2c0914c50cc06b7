"""verify-payment for an invoice: the invoice's own rules, and the claim in the same transaction.

From the indexed data of the invoice's (watched) wallet, under a row lock
of the invoice:
- a transfer of the transaction already allocated to this invoice: the
  answer comes from that claim and the invoice's state;
- one claimed by another invoice or a claim key: `already_claimed`;
- an unclaimed one (the follower's hook left it: the invoice was made
  after the block was indexed, or expired) is checked against the invoice's
  rules: match method (an `amount` invoice wants its exact amount within
  the tolerance), `after_block`, state (a paid, overpaid, late-paid or
  cancelled invoice takes nothing more, nor does a `payer` / `amount`
  invoice that already received its amount), expiry (past the grace: the
  payment is recorded for review, `expired`). If it fits, it is claimed
  for this invoice whole, booked, and the invoice's state recomputed, all
  in this transaction; then the answer is read from the claim.

The answer for a claimed transfer: `pending` while the transfer (or another
payment of the invoice) is not final; then `paid_final` when the invoice is
paid, overpaid or paid_late, `underpaid` with the invoice's shortfall.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg

from config import ChainConfig
from db import Queries
from db.values import amount_text
from settlement.invoices import claims
from settlement.invoices.verify import Transfer, narrow, taken_verdict, transfer_of, units
from settlement.ledger.rules import AssetSpec

Q = Queries(Path(__file__).with_name("invoices.sql"))
CLOSED = ("paid", "overpaid", "paid_late", "invalid")
SETTLED = ("paid", "overpaid", "paid_late")


class _Lost(Exception):
    """another route claimed the transfer between our read and our claim"""


async def for_invoice(pool: asyncpg.Pool, cfg: ChainConfig, spec: AssetSpec, invoice_id: str,
                      tx_hash: str) -> dict[str, Any] | None:
    """The answer from indexed data, or None when the transaction is not indexed."""
    for attempt in range(3):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _answer(conn, cfg, spec, invoice_id, tx_hash)
        except (_Lost, asyncpg.DeadlockDetectedError):
            # The follower or another verify call claimed it first: read again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _answer(conn: asyncpg.Connection, cfg: ChainConfig, spec: AssetSpec, invoice_id: str,
                  tx_hash: str) -> dict[str, Any] | None:
    inv = await conn.fetchrow(Q.lock_invoice, invoice_id)
    rows = await conn.fetch(Q.transfers_of_tx, cfg.name, tx_hash, invoice_id)
    if not rows:
        return None
    final_number = rows[0]["final_number"] if rows[0]["final_number"] is not None else -1
    block = max(r["block_number"] for r in rows)
    where = {"source": "index", "tx_hash": tx_hash, "block_number": block}
    mine = narrow([transfer_of(r) for r in rows], to=inv["wallet"], spec=spec, tag=inv["destination_tag"],
                  memo=inv["memo"], payer=inv["payer"])
    if isinstance(mine, dict):
        return {**mine, **where}
    claimed_now = False
    if not any(t.allocated_here for t in mine):
        refused = await _refusal(conn, cfg, spec, inv, mine, block, tx_hash)
        if refused is not None:
            return {**refused, **where}
        fit = _fitting(inv, spec, [t for t in mine if not t.claimed])
        found = [claims.Claim(await _transfer_row(conn, cfg, spec, t, tx_hash),
                              [[{"invoice_id": invoice_id, "late": None}, units(t.value, spec)]]) for t in fit]
        for c in found:
            # As the hook: the block's time, the clock when no header below it is stored.
            c.parts[0][0]["late"] = (c.transfer["block_time"] or dt.datetime.now(dt.UTC)) > inv["expires_at"]
        if not await claims.claim(conn, cfg.name, found):
            raise _Lost()
        claimed_now = True
        rows = await conn.fetch(Q.transfers_of_tx, cfg.name, tx_hash, invoice_id)
        mine = [t for t in (transfer_of(r) for r in rows) if t.allocated_here]
    await claims.recompute(conn, cfg.name, [invoice_id], waiting=False)
    now = await conn.fetchrow(Q.lock_invoice, invoice_id)
    here = [t for t in mine if t.allocated_here]
    top = rows[0]["cursor_number"] or 0
    out: dict[str, Any] = {
        "amount": amount_text(sum(t.allocated_here for t in here)), "payer": here[0].payer,
        "confirmations": max(0, top - block + 1), "log_indexes": [t.log_index for t in here],
        "invoice_state": now["state"], "received": amount_text(now["received"]), "claimed_now": claimed_now}
    if block > final_number:
        return {"status": "pending", **out, **where}
    if now["state"] in SETTLED:
        return {"status": "paid_final", **out, **where}
    if now["state"] == "underpaid":
        return {"status": "underpaid", "shortfall": amount_text(now["shortfall"]), **out, **where}
    return {"status": "pending", "reason": "another payment of the invoice is not final yet", **out, **where}


def _fitting(inv: asyncpg.Record, spec: AssetSpec, free: list[Transfer]) -> list[Transfer]:
    fit = [t for t in free if (units(t.value, spec) or 0) > 0]
    if inv["match_method"] == "amount":
        fit = [t for t in fit if abs(units(t.value, spec) - int(inv["amount"])) <= int(inv["tolerance"])]
    return fit


async def _refusal(conn: asyncpg.Connection, cfg: ChainConfig, spec: AssetSpec, inv: asyncpg.Record,
                   mine: list[Transfer], block: int, tx_hash: str) -> dict[str, Any] | None:
    """Why the invoice does not take this transaction's unclaimed transfers, or None if it does."""
    free = [t for t in mine if not t.claimed]
    if not free:
        return taken_verdict(mine)
    if inv["after_block"] is None:
        return {"status": "pending", "reason": "the chain's height when the invoice was made is not known yet"}
    if block <= inv["after_block"]:
        return {"status": "not_found", "reason": "the transfer predates the invoice"}
    fit = _fitting(inv, spec, free)
    if not fit:
        return {"status": "wrong_amount", "amount": amount_text(sum(units(t.value, spec) or 0 for t in free)),
                "expected": amount_text(inv["amount"]), "tolerance": amount_text(inv["tolerance"]),
                "reason": "an amount invoice is paid only by its exact amount (within its tolerance)"}
    if inv["state"] in CLOSED:
        return {"status": "invoice_closed", "invoice_state": inv["state"],
                "reason": f"the invoice is {inv['state']}; it takes no further payment"}
    if inv["match_method"] in ("payer", "amount") and int(inv["received"]) + int(inv["tolerance"]) >= int(inv["amount"]):
        return {"status": "invoice_closed", "invoice_state": inv["state"],
                "reason": "the invoice already received its amount; it takes no further payment"}
    if inv["state"] == "expired" and not inv["matchable"]:
        for t in fit:
            row = await _transfer_row(conn, cfg, spec, t, tx_hash)
            await claims.record_retired(conn, cfg.name, [{**row, "invoice_id": inv["id"]}])
        return {"status": "expired", "invoice_state": "expired",
                "reason": "the invoice expired past its grace; the payment is recorded for review, not credited"}
    return None


async def _transfer_row(conn: asyncpg.Connection, cfg: ChainConfig, spec: AssetSpec, t: Transfer,
                        tx_hash: str) -> dict[str, Any]:
    block_time = await conn.fetchval(Q.transfer_block_time, cfg.name, t.block_number, t.event_id)
    return {"tx_hash": tx_hash, "log_index": t.log_index, "event_id": t.event_id,
            "block_number": t.block_number, "amount": units(t.value, spec), "block_time": block_time,
            "payer": t.payer}
