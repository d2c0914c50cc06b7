"""Push: pay every share of a distribution through the payout pipeline.

Each share becomes one payout request from the distribution's account
(`app:dist.<id>`), idempotency key `distribution:<id>:<index>`, so the
pipeline's exactly-once machinery (persisted keys, signed batches that the
PayoutBatcher contract refuses to execute twice, XRPL Sequence) pays it at
most once, under its caps, approvals and kill switches; the request is
admitted against the distribution account's available balance under its
balance-row lock, and the confirmation debits that account.

A share whose payout an operator cancels (a held request: the way out of
a stuck payout) goes back to owed in `sync` and is pushed again by the next
`push`, under key `distribution:<id>:<idx>:<n>`.

`push(...)` is safe to run again at any instant (after a SIGKILL, or from
two processes): a share whose request exists is found by its key and
marked; the share's state update is a conditional UPDATE, so it happens
once. `sync(...)` moves shares to `paid` as their payouts are confirmed
(and back if a reorg un-confirms one), and the distribution to `paid` when
all are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from config import Settings
from config.logs import get_logger
from db import audit
from settlement.distributions.entitlements import entitlement_account
from settlement.distributions.snapshots import NotFound, Q, SnapshotRefused
from settlement.payouts.requests import PayoutError, request_payout

log = get_logger("settlement.distributions.push")


@dataclass
class PushResult:
    requested: int = 0
    replayed: int = 0
    refused: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"requested": self.requested, "replayed": self.replayed, "refused": self.refused}


def payout_key(distribution_id: str, idx: int, attempts: int = 0) -> str:
    """The share's payout key; a new one after each payout an operator cancelled."""
    return f"distribution:{distribution_id}:{idx}" + (f":{attempts}" if attempts else "")


async def push(pool: asyncpg.Pool, settings: Settings, distribution_id: str, actor: str,
               page: int = 500) -> PushResult:
    async with pool.acquire() as conn:
        d = await conn.fetchrow(Q.find_distribution, distribution_id)
    if d is None:
        raise NotFound("id", f"no distribution {distribution_id!r}")
    if d["mode"] != "push":
        raise SnapshotRefused("mode", f"{distribution_id} is paid by claims ({d['mode']}), not pushed")
    chain, asset = d["asset_id"].split(":", 1)
    out = PushResult()
    after = -1
    while True:
        async with pool.acquire() as conn:
            rows = await conn.fetch(Q.owed_shares, distribution_id, after, page)
            keys = [payout_key(distribution_id, r["idx"], r["attempts"]) for r in rows]
            # A request written before entitlements existed pays from the hub: its replay names it.
            payers = {p["idempotency_key"]: p["from_account"] for p in await conn.fetch(Q.payers_of, keys)}
        if not rows:
            break
        for r, key in zip(rows, keys, strict=True):
            after = r["idx"]
            payer = payers.get(key) or entitlement_account(distribution_id, r["recipient"])
            try:
                _, created = await request_payout(pool, settings, chain=chain, asset=asset, to=r["recipient"],
                                                  amount=int(r["amount"]), key=key, actor=actor,
                                                  from_account=payer)
            except PayoutError as exc:
                out.refused.append({"index": r["idx"], "recipient": r["recipient"], "field": exc.field,
                                    "reason": exc.reason})
                continue
            async with pool.acquire() as conn:
                await conn.execute(Q.mark_requested, distribution_id, r["idx"], key)
            if created:
                out.requested += 1
            else:
                out.replayed += 1
    if out.requested or out.refused:
        async with pool.acquire() as conn:
            await audit(conn, actor, "distribution.pushed", f"distribution:{distribution_id}", out.as_dict())
    log.info("distribution.pushed", id=distribution_id, requested=out.requested, replayed=out.replayed,
             refused=len(out.refused))
    return out


async def sync(pool: asyncpg.Pool, distribution_id: str) -> bool:
    """Shares follow their payouts; True when the distribution became paid now.

    A share whose payout an operator cancelled is owed again (audited): the
    next `push` requests it under a new key, from the same entitlement."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.fetch(Q.sync_paid, distribution_id)
        reopened = await conn.fetch(Q.reopen_cancelled, distribution_id)
        if reopened:
            await audit(conn, "distributions", "distribution.reopened", f"distribution:{distribution_id}",
                        {"shares": [{"index": r["idx"], "cancelled_key": r["cancelled_key"]} for r in reopened],
                         "amount": str(sum(int(r["amount"]) for r in reopened))})
            log.warning("distribution.reopened", id=distribution_id, shares=len(reopened))
        return await conn.fetchval(Q.set_paid_if_done, distribution_id) is not None
