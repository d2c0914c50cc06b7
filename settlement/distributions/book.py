"""Creating a distribution: allocate, then book it all in one transaction.

`{id, snapshot, pool_account, asset, total, minimum, remainder_account,
mode}`: `total` base units of `asset` from `pool_account`, split over the
snapshot's weights by `allocate` (largest remainder, tie-break seeded with
the distribution id). In ONE transaction, through the ledger's transfer
machinery (so the pool's limits are checked under its balance-row lock,
and a refusal writes nothing):

- transfer `distribution:<id>` moves `total - remainder` from the pool to
  the distribution's own account `app:dist.<id>` (the liability);
- transfer `distribution:<id>:remainder` moves the remainder (shares below
  `minimum`) to `remainder_account` (when it differs from the pool);
- ledger transaction `distribution:<id>:shares` moves each share from
  `app:dist.<id>` to its recipient's entitlement account
  `entitlement:<id>:<recipient>` (entitlements.py): what the ledger says
  each recipient is owed, until paid (push) or claimed (pull);
- one `distribution_shares` row per recipient: the share's state.

Idempotent on the client's id: the same body replays the stored
distribution; a different one is a conflict naming the first differing
field.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from config import Settings
from config.errors import FieldError
from db import audit
from db.values import amount_text
from settlement.distributions.allocate import MAX_AMOUNT, AllocationError, allocate
from settlement.distributions.entitlements import fan
from settlement.distributions.snapshots import NotFound, Q, SnapshotConflict, SnapshotRefused, check_id
from settlement.ledger.transfers import (
    ACCOUNTS,
    Request,
    Transfer,
    TransferRefused,
    book_requests,
    check_account,
    normalize_account,
    prepare,
    retrying,
)

MODES = ("push", "pull")


class DistributionRefused(SnapshotRefused):
    """distribution refused"""


class DistributionConflict(SnapshotConflict):
    """the id was used for a different distribution"""


@dataclass(frozen=True)
class DistributionRequest:
    id: str
    snapshot: str
    pool_account: str
    asset: str
    total: int
    minimum: int = 0
    remainder_account: str | None = None
    mode: str = "push"
    unclaimed: str = "pool"  # pull: 'pool' (back at the deadline) or 'rollover' (into a later distribution)
    carry_from: str | None = None  # a closed 'rollover' distribution whose expired shares this one adds

    def body(self) -> dict:
        return {"id": self.id, "snapshot": self.snapshot, "pool_account": self.pool_account, "asset": self.asset,
                "total": str(self.total), "minimum": str(self.minimum),
                "remainder_account": self.remainder_account or self.pool_account, "mode": self.mode,
                "unclaimed": self.unclaimed, "carry_from": self.carry_from}


def account_of(distribution_id: str) -> str:
    return f"app:dist.{distribution_id}"


async def book_linked(conn: asyncpg.Connection, settings: Settings, transfers: list[Transfer], actor: str) -> None:
    """Book linked transfers in the caller's transaction through the ledger's machinery (the debited
    accounts' row locks and limits); a refusal raises, rolling the caller's transaction back."""
    r = Request(prepare(transfers), actor)
    await book_requests(conn, settings, [r])
    if r.error is not None:
        raise r.error


async def contract_account(conn: asyncpg.Connection, chain: str, contract: str) -> str:
    """The ledger account of a ClaimDistributor: its wallet account when it is a configured wallet
    (funding it from another wallet is then an internal move), else external:<chain>:<contract>."""
    return await conn.fetchval(Q.wallet_account, chain, contract) or f"external:{chain}:{contract}"


def distribution_view(row, totals: dict | None = None) -> dict:
    out = {"id": row["id"], "snapshot": row["snapshot_id"], "asset": row["asset_id"],
           "pool_account": row["pool_account"], "account": row["account"], "total": amount_text(row["total"]),
           "minimum": amount_text(row["minimum"]), "remainder": amount_text(row["remainder"]),
           "remainder_account": row["remainder_account"], "mode": row["mode"], "recipients": row["recipients"],
           "state": row["state"], "unclaimed": row["unclaimed"], "carried_from": row["carried_from"],
           "carried": amount_text(row["carried"]),
           "created_by": row["created_by"], "created_at": row["created_at"].isoformat()}
    if totals is not None:
        out["shares"] = totals
    return out


def _check(req: DistributionRequest) -> DistributionRequest:
    check_id(req.id)
    check_id(req.snapshot, "snapshot")
    if req.mode not in MODES:
        raise DistributionRefused("mode", f"one of {', '.join(MODES)}")
    for name, v in (("total", req.total), ("minimum", req.minimum)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_AMOUNT:
            raise DistributionRefused(name, "an integer in base units")
    if req.total <= 0:
        raise DistributionRefused("total", "must be above zero")
    if req.unclaimed not in ("pool", "rollover") or req.unclaimed == "rollover" and req.mode != "pull":
        raise DistributionRefused("unclaimed", "'pool', or 'rollover' for a pull distribution")
    if req.carry_from is not None:
        check_id(req.carry_from, "carry_from")
    return DistributionRequest(req.id, req.snapshot, normalize_account(req.pool_account), req.asset, req.total,
                               req.minimum, normalize_account(req.remainder_account or req.pool_account), req.mode,
                               req.unclaimed, req.carry_from)


async def _carried(conn: asyncpg.Connection, req: DistributionRequest) -> tuple[dict[str, int], str | None]:
    """The expired shares of `carry_from` per recipient (marked rolled, once) and its account."""
    if req.carry_from is None:
        return {}, None
    src = await conn.fetchrow(Q.lock_distribution, req.carry_from)
    if src is None:
        raise NotFound("carry_from", f"no distribution {req.carry_from!r}")
    if src["unclaimed"] != "rollover" or src["state"] != "closed" or src["asset_id"] != req.asset:
        raise DistributionRefused("carry_from", f"{req.carry_from} is not a closed 'rollover' distribution of "
                                                f"{req.asset}")
    into = await conn.fetchval(Q.carried_into, req.carry_from)
    if into is not None:
        raise DistributionRefused("carry_from", f"{req.carry_from} was carried into {into} already")
    carried: dict[str, int] = {}
    for r in await conn.fetch(Q.roll_shares, req.carry_from):
        carried[r["recipient"]] = carried.get(r["recipient"], 0) + int(r["amount"])
    # The expired entitlements go back to their hub, which the caller's
    # transfer `distribution:<id>:carried` empties into this distribution's.
    await fan(conn, key=f"distribution:{req.carry_from}:carried-out", hub=src["account"], asset=req.asset,
              distribution_id=req.carry_from, amounts=sorted(carried.items()), direction=-1, actor="distributions",
              memo=f"carried into {req.id}")
    return carried, src["account"]


async def share_totals(conn: asyncpg.Connection, distribution_id: str) -> dict:
    return {r["state"]: {"count": r["n"], "amount": amount_text(r["amount"])}
            for r in await conn.fetch(Q.share_totals, distribution_id)}


async def create_distribution(pool: asyncpg.Pool, settings: Settings, req: DistributionRequest,
                              actor: str) -> tuple[dict, bool]:
    """Allocate and book; return (the distribution, created now)."""
    req = _check(req)
    body = req.body()
    account = account_of(req.id)

    async def work(conn: asyncpg.Connection) -> tuple[dict, bool]:
        row = await conn.fetchrow(Q.find_distribution, req.id)
        if row is not None:
            diff = next((k for k in body if row["body"].get(k) != body[k]), None)
            if diff is not None:
                raise DistributionConflict(diff, f"{req.id!r} was already used with a different {diff}")
            return distribution_view(row, await share_totals(conn, req.id)), False
        if await conn.fetchval("SELECT 1 FROM distribution_snapshots WHERE id = $1", req.snapshot) is None:
            raise NotFound("snapshot", f"no snapshot {req.snapshot!r}")
        chain, _ = await ACCOUNTS.asset(conn, req.asset, "asset")
        for name, code in (("pool_account", req.pool_account), ("remainder_account", req.remainder_account)):
            check_account(settings, code, chain, name)
        weights = [(r["recipient"], int(r["weight"])) for r in await conn.fetch(Q.snapshot_weights, req.snapshot)]
        try:
            alloc = allocate(req.total, weights, minimum=req.minimum, seed=req.id)
        except AllocationError as exc:
            raise DistributionRefused("snapshot", exc.reason) from exc
        owed = req.total - alloc.remainder
        transfers = []
        if owed:
            transfers.append(Transfer(f"distribution:{req.id}", req.pool_account, account, req.asset, owed,
                                      memo=f"distribution {req.id}: {len(alloc.shares)} shares"))
        if alloc.remainder and req.remainder_account != req.pool_account:
            transfers.append(Transfer(f"distribution:{req.id}:remainder", req.pool_account, req.remainder_account,
                                      req.asset, alloc.remainder, memo=f"distribution {req.id}: shares below minimum"))
        carried, source = await _carried(conn, req)
        if carried:  # the liability moves with the shares: the old distribution's account to this one's
            transfers.append(Transfer(f"distribution:{req.id}:carried", source, account, req.asset,
                                      sum(carried.values()), memo=f"distribution {req.id}: carried from "
                                                                   f"{req.carry_from}"))
        shares = alloc.as_dict()
        for recipient, amount in carried.items():
            shares[recipient] = shares.get(recipient, 0) + amount
        if not shares:
            raise DistributionRefused("total", "every share is below the minimum: nothing to distribute")
        if await conn.fetchval(Q.insert_distribution, req.id, req.snapshot, req.asset, req.pool_account, account,
                               req.total, req.minimum, alloc.remainder, req.remainder_account, req.mode, body,
                               len(shares), actor, req.unclaimed, req.carry_from, sum(carried.values())) is None:
            raise asyncpg.UniqueViolationError("raced")  # retried whole: the next attempt replays
        if transfers:
            await book_linked(conn, settings, transfers, actor)  # a refusal rolls it all back
        order = sorted(shares)
        await fan(conn, key=f"distribution:{req.id}:shares", hub=account, asset=req.asset, distribution_id=req.id,
                  amounts=[(r, shares[r]) for r in order], direction=1, actor=actor,
                  memo=f"distribution {req.id}: {len(order)} shares")
        await conn.execute(Q.insert_shares, req.id, list(range(len(order))), order, [shares[r] for r in order])
        await audit(conn, actor, "distribution.created", f"distribution:{req.id}",
                    {"total": str(req.total), "remainder": str(alloc.remainder), "recipients": len(shares),
                     "carried": str(sum(carried.values()))})
        row = await conn.fetchrow(Q.find_distribution, req.id)
        return distribution_view(row, await share_totals(conn, req.id)), True

    # The distribution's account exists before the booking transaction (an
    # account without entries if that is refused): the ledger's account
    # cache only keeps accounts that committed.
    async with pool.acquire() as conn:
        await conn.execute(Q.ensure_app_account, account, f"distribution {req.id}")
    try:
        return await retrying(pool, work)
    except TransferRefused as exc:
        raise DistributionRefused("pool_account" if exc.result == "exceeds_available" else exc.field,
                                  exc.reason) from exc


async def get_distribution(conn: asyncpg.Connection, distribution_id: str) -> dict:
    row = await conn.fetchrow(Q.find_distribution, distribution_id)
    if row is None:
        raise NotFound("id", f"no distribution {distribution_id!r}")
    return distribution_view(row, await share_totals(conn, distribution_id))


async def shares_page(conn: asyncpg.Connection, distribution_id: str, after: int = -1, limit: int = 500) -> list[dict]:
    return [{"index": r["idx"], "recipient": r["recipient"], "amount": amount_text(r["amount"]), "state": r["state"],
             "payout_key": r["payout_key"]}
            for r in await conn.fetch(Q.shares_page, distribution_id, after, limit)]


__all__ = ["DistributionConflict", "DistributionRefused", "DistributionRequest", "FieldError", "account_of",
           "create_distribution", "get_distribution", "shares_page"]
