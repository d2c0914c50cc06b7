"""Invoices matched from indexed data, inside the follower's transaction.

`InvoiceHook` is an `indexer.store.StoreHook`, registered after the ledger
hook (daemon/followers.py). For each committed range it
1. expires waiting invoices whose expiry the chain's time has passed;
2. claims the incoming transfers of the range that match a waiting invoice
   (one transfer settles at most one invoice: the claim's primary key is
   (chain, tx, log index)), and books each claimed amount from the account
   the ledger rules credited (the sender's) to the invoice's account;
3. recomputes the state of every invoice that got a claim or waits for
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
from db.values import amount_text
from settlement.invoices import metrics as m
from settlement.ledger.books import LedgerError, Posting, post_transaction
from settlement.ledger.rules import wallet_account

Q = Queries(Path(__file__).with_name("invoices.sql"))
log = get_logger("settlement.invoices")


class InvoiceHook:
    def __init__(self, settings: Settings) -> None:
        self.chains = {c.name for c in settings.chains}

    async def on_range(self, conn: asyncpg.Connection, chain: str, from_block: int, to_block: int) -> None:
        if chain not in self.chains:
            return
        if not await conn.fetchval(Q.has_waiting, chain):
            return
        for r in await conn.fetch(Q.expire_due, chain, to_block):
            m.INVOICE_STATES.labels(chain, "expired").inc()
            log.info("invoice.expired", chain=chain, invoice=r["id"])
        claims = await conn.fetch(Q.claim_range, chain, from_block, to_block)
        if claims:
            await self._book(conn, chain, claims)
        for r in await conn.fetch(Q.recompute_states, chain, sorted({c["invoice_id"] for c in claims})):
            m.INVOICE_STATES.labels(chain, r["state"]).inc()
            log.info("invoice.state", chain=chain, invoice=r["id"], state=r["state"])

    async def _book(self, conn: asyncpg.Connection, chain: str, claims: list[asyncpg.Record]) -> None:
        invoices = {r["id"]: r for r in await conn.fetch(Q.invoice_for_booking, [c["invoice_id"] for c in claims])}
        for c in claims:
            inv = invoices[c["invoice_id"]]
            wallet = wallet_account(chain, inv["wallet"])
            # Whoever the deposit rule credited (user:<chain>:<sender>, a tag
            # account) hands the amount to the invoice's account; with no
            # rule booking the deposit, the wallet's side is booked here.
            source = await conn.fetchval(Q.source_account, c["event_id"], inv["asset_id"], wallet) or wallet
            amount = int(c["amount"])
            key = f"invoice:{inv['id']}:{chain}:{c['tx_hash']}:{c['log_index']}"
            try:
                await post_transaction(
                    conn, key=key, cause_kind="event", event_id=c["event_id"], chain=chain,
                    block_number=c["block_number"], tx_hash=c["tx_hash"],
                    cause={"invoice": inv["id"], "tx_hash": c["tx_hash"], "log_index": c["log_index"]},
                    postings=[Posting(source, inv["asset_id"], amount), Posting(inv["account"], inv["asset_id"], -amount)])
            except LedgerError as exc:
                # Never stop the follower over the books: the claim stands and
                # reconciliation of the app account shows the gap.
                m.INVOICE_UNBOOKABLE.labels(chain).inc()
                log.error("invoice.unbookable", chain=chain, invoice=inv["id"], tx=c["tx_hash"], error=str(exc))
            m.INVOICE_CLAIMS.labels(chain).inc()
            log.info("invoice.claimed", chain=chain, invoice=inv["id"], tx=c["tx_hash"], log_index=c["log_index"],
                     amount=amount_text(amount), block=c["block_number"])

    async def on_rollback(self, conn: asyncpg.Connection, chain: str, ancestor: int) -> None:
        for r in await conn.fetch(Q.revert_above, chain, ancestor):
            m.INVOICE_STATES.labels(chain, "reverted").inc()
            log.warning("invoice.reverted", chain=chain, invoice=r["id"], ancestor=ancestor)
