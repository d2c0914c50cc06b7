"""Invoices matched from indexed data, inside the follower's transaction.

`InvoiceHook` is an `indexer.store.StoreHook`, registered after the ledger
hook (daemon/followers.py). For each committed range it
1. expires waiting invoices whose expiry the chain's time has passed;
2. retires expired invoices past their grace (no longer matchable);
3. claims the incoming transfers of the range that fit matchable invoices
   (`claims.py`: the allocation rule; a transfer is claimed once, by its
   payment_claims row), books each allocated amount from the account the
   ledger rules credited (the sender's) to the invoice's account, and
   records a payment naming a retired invoice in invoice_unmatched;
4. recomputes the state of every invoice that got a claim or waits for
   finality: `seen` until every claimed transfer is final, then `paid`,
   `underpaid`, `overpaid` or `paid_late`.
On a reorg, claims above the common ancestor go and their invoices become
`reverted` (the ledger hook deletes the derived ledger entries); a transfer
that comes back on the new branch is claimed again.

Each state change writes a feed_outbox row (trigger of 0011_invoices.sql)
in this same transaction.

Seen by the matcher: ERC-20 `Transfer` logs of the invoice's exact token
contract (what arrived, so fee-on-transfer tokens count the net amount);
native coin moved by top-level transactions (NativeTransfer rows; value
moved by internal calls of a contract is NOT indexed and never matches);
XRPL Payments with tesSUCCESS in validated ledgers, by delivered_amount.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries
from settlement.invoices import claims
from settlement.invoices import metrics as m

Q = Queries(Path(__file__).with_name("invoices.sql"))
log = get_logger("settlement.invoices")
MASS_SWEEP = 1000  # invoices leaving the matchable set in one range that call for fresh statistics
SWEEP_BATCH = 5000  # invoices expired (and retired) per range at most: the transaction stays short


class InvoiceHook:
    def __init__(self, settings: Settings) -> None:
        self.chains = {c.name for c in settings.chains}
        self.grace = settings.invoices.expired_grace_seconds

    async def on_range(self, conn: asyncpg.Connection, chain: str, from_block: int, to_block: int) -> None:
        if chain not in self.chains:
            return
        if not await conn.fetchval(Q.has_waiting, chain):
            return
        for r in await conn.fetch(Q.bind_after_block, chain, to_block):
            log.warning("invoice.bound_late", chain=chain, invoice=r["id"], after_block=r["after_block"])
        expired = await conn.fetch(Q.expire_due, chain, to_block, SWEEP_BATCH)
        for r in expired:
            m.INVOICE_STATES.labels(chain, "expired").inc()
            log.info("invoice.expired", chain=chain, invoice=r["id"])
        retired = await conn.fetch(Q.retire_expired, chain, to_block, float(self.grace), SWEEP_BATCH)
        for r in retired:
            log.info("invoice.retired", chain=chain, invoice=r["id"])
        if len(expired) + len(retired) >= MASS_SWEEP:
            # Many invoices just left the matchable set: refresh the planner's
            # statistics now, or it keeps estimating them matchable and scans
            # the table per transfer instead of the partial indexes.
            await conn.execute("ANALYZE invoices")
        found, retired = claims.allocate(await conn.fetch(Q.match_range, chain, from_block, to_block))
        touched = await claims.claim(conn, chain, found)
        await claims.record_retired(conn, chain, retired)
        await claims.recompute(conn, chain, touched)

    async def on_rollback(self, conn: asyncpg.Connection, chain: str, ancestor: int) -> None:
        for r in await conn.fetch(Q.revert_above, chain, ancestor):
            m.INVOICE_STATES.labels(chain, "reverted").inc()
            log.warning("invoice.reverted", chain=chain, invoice=r["id"], ancestor=ancestor)
        await conn.execute(Q.delete_claims_above, chain, ancestor)
