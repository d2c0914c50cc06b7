"""Shared helpers of the invoice tests: wait for a database condition, feed rows of an invoice."""

from __future__ import annotations

import asyncio
import time


async def until(pool, sql: str, *args, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await pool.fetchval(sql, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            rows = [dict(r) for r in await pool.fetch(
                "SELECT id, app_ref, state, received, reason FROM invoices ORDER BY created_at")]
            claims = [dict(r) for r in await pool.fetch("SELECT * FROM invoice_payments")]
            cur = await pool.fetchrow("SELECT cursor_number, final_number, halted_reason FROM chain_state")
            raise AssertionError(f"timed out: {sql} {args}\ninvoices {rows}\nclaims {claims}\nchain {dict(cur or {})}")
        await asyncio.sleep(0.05)


async def state_of(pool, app_ref: str) -> str:
    return await pool.fetchval("SELECT state FROM invoices WHERE app_ref = $1", app_ref)


async def feed_states(pool, invoice_id: str) -> list[str]:
    rows = await pool.fetch("SELECT payload FROM feed_outbox WHERE kind = 'invoice' AND subject = $1 ORDER BY tx, id",
                            invoice_id)
    return [r["payload"]["state"] for r in rows]
