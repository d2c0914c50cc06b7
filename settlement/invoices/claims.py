"""Claiming incoming transfers for invoices: the allocation rule, the gate, the books.

Used by the follower's hook (every committed range) and by verify-payment
for an invoice (a transfer the hook left unclaimed), always inside the
caller's transaction, so a claim commits with the state change it causes.

The gate is `payment_claims`: one row per transfer, inserted with ON
CONFLICT DO NOTHING, so whichever route claims a transfer first owns all
of it; an invoice, or a verify-payment claim key, never shares it.

Allocation rule (deterministic, README "Invoices"): for each transfer, in
(block, log index) order, among the matchable invoices it fits (the wallet
and asset; its tag, memo, payer or exact amount; after the invoice's
`after_block`):
1. an invoice it names by destination tag or memo takes all of it;
2. otherwise the invoices are taken oldest first (live ones before expired
   ones still in their grace). An `amount` invoice takes the whole transfer
   if it is the first that still needs anything. `payer` invoices are
   filled in turn: each takes what it still lacks (amount - received, its
   unfinal claims included), the rest goes to the next; what is left after
   the last is excess on the last one that took a part;
3. an invoice that already received its amount (within tolerance), `seen`
   or not, takes nothing more; a transfer no invoice needs stays unclaimed
   (it remains the sender's deposit).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import asyncpg

from config.logs import get_logger
from db import Queries
from db.values import amount_text
from settlement.invoices import metrics as m
from settlement.ledger.books import LedgerError, Posting, post_transaction
from settlement.ledger.rules import wallet_account

Q = Queries(Path(__file__).with_name("invoices.sql"))
log = get_logger("settlement.invoices")
EXPLICIT = ("destination_tag", "memo")


@dataclass
class Claim:
    transfer: asyncpg.Record | dict
    parts: list[list] = field(default_factory=list)  # [candidate row, amount]


def need(row, received: int) -> int:
    """What an invoice still lacks; 0 once received is within tolerance of the amount."""
    amount, tol = int(row["invoice_amount"]), int(row["tolerance"])
    return 0 if received + tol >= amount else amount - received


def _parts(live: list, amount: int, received: dict[str, int]) -> list[list]:
    for r in live:
        if r["match_method"] in EXPLICIT:
            return [[r, amount]]
    parts: list[list] = []
    left = amount
    for r in sorted(live, key=lambda r: r["state"] == "expired"):  # stable: oldest first within each
        lacks = need(r, received[r["invoice_id"]])
        if lacks <= 0:
            continue
        if r["match_method"] == "amount":
            if not parts:
                return [[r, amount]]
            continue
        take = min(left, lacks)
        parts.append([r, take])
        left -= take
        if left == 0:
            break
    if parts and left:
        parts[-1][1] += left
    return parts


def allocate(rows: list) -> tuple[list[Claim], list]:
    """(claims, retired hits) from match_range's candidate rows (pure)."""
    received: dict[str, int] = {}
    claims, retired = [], []
    for _, group in itertools.groupby(rows, key=lambda r: r["event_id"]):
        group = list(group)
        for r in group:
            received.setdefault(r["invoice_id"], int(r["received"]))
        parts = _parts([r for r in group if not r["retired"]], int(group[0]["amount"]), received)
        if parts:
            for r, amount in parts:
                received[r["invoice_id"]] += amount
            claims.append(Claim(group[0], parts))
        else:
            hit = next((r for r in group if r["retired"]), None)
            if hit is not None:
                retired.append(hit)
    return claims, retired


def _num(x: int) -> Decimal:
    return Decimal(x)


async def claim(conn: asyncpg.Connection, chain: str, claims: list[Claim]) -> list[str]:
    """Insert the claims that win the gate, their allocations, and book them; the invoice ids touched."""
    if not claims:
        return []
    won = {(r["tx_hash"], r["log_index"]) for r in await conn.fetch(
        Q.insert_claims, chain, [c.transfer["tx_hash"] for c in claims], [c.transfer["log_index"] for c in claims],
        [c.parts[0][0]["invoice_id"] for c in claims], [None] * len(claims),
        [c.transfer["event_id"] for c in claims], [c.transfer["block_number"] for c in claims],
        [_num(int(c.transfer["amount"])) for c in claims])}
    parts = [(c.transfer, r, amount) for c in claims if (c.transfer["tx_hash"], c.transfer["log_index"]) in won
             for r, amount in c.parts]
    if not parts:
        return []
    booked = await conn.fetch(
        Q.insert_allocations, chain, [t["tx_hash"] for t, _, _ in parts], [t["log_index"] for t, _, _ in parts],
        [r["invoice_id"] for _, r, _ in parts], [t["event_id"] for t, _, _ in parts],
        [t["block_number"] for t, _, _ in parts], [t["block_time"] for t, _, _ in parts],
        [t["payer"] for t, _, _ in parts], [_num(a) for _, _, a in parts], [bool(r["late"]) for _, r, _ in parts])
    await book(conn, chain, booked)
    return sorted({r["invoice_id"] for r in booked})


async def record_retired(conn: asyncpg.Connection, chain: str, hits: list) -> None:
    for h in hits:
        if await conn.fetchval(Q.insert_unmatched, chain, h["tx_hash"], h["log_index"], h["invoice_id"],
                               h["event_id"], h["block_number"], h["payer"], _num(int(h["amount"])),
                               "payment to an invoice expired past its grace"):
            m.INVOICE_UNMATCHED.labels(chain).inc()
            log.warning("invoice.unmatched_payment", chain=chain, invoice=h["invoice_id"], tx=h["tx_hash"],
                        log_index=h["log_index"], amount=str(h["amount"]))


async def book(conn: asyncpg.Connection, chain: str, claims: list[asyncpg.Record]) -> None:
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


async def recompute(conn: asyncpg.Connection, chain: str, ids: list[str], *, waiting: bool = True) -> None:
    """New states of `ids` (and, with `waiting`, of every invoice waiting for finality)."""
    for r in await conn.fetch(Q.recompute_states, chain, ids, waiting):
        m.INVOICE_STATES.labels(chain, r["state"]).inc()
        log.info("invoice.state", chain=chain, invoice=r["id"], state=r["state"])
