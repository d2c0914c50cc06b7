"""What each recipient is owed, as ledger accounts: one per share.

`entitlement:<distribution>:<recipient>` holds the recipient's claimable
entitlement in that distribution. Value reaches it only through the
distribution's own account (`app:dist.<id>`, the hub): creation moves the
owed total from the pool to the hub and, in the same transaction, each share
from the hub to its entitlement (`fan`, one ledger transaction however many
shares, so 100,000 recipients book in one statement); the hub is back at
zero. From there a share leaves its entitlement once, by one of:

- push: a payout request paid from the entitlement (admitted against its
  available balance under its balance-row lock, debited by the payout's
  confirmation); `check_payer` allows it to pay its own recipient only;
- pull: its final `Claimed` event (booked keyed to the event, so a reorg
  that deletes the event un-books it);
- expiry: back to the hub (`fan` with direction -1) and from there to the
  pool, or to a later distribution that carries it.

Entitlements take no app transfers, holds or adjustments: a share's state
and its account move together, by this package only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import asyncpg

from db import Queries
from db.values import amount_text
from settlement.ledger.transfers import ENTITLEMENT, lock_rooms, read_rooms

Q = Queries(Path(__file__).with_name("entitlements.sql"))


class EntitlementBroken(RuntimeError):
    """An entitlement holds less than its share is said to owe: only a bug or a hand edit does that."""


def entitlement_account(distribution_id: str, recipient: str) -> str:
    return f"{ENTITLEMENT}{distribution_id}:{recipient}"


async def fan(conn: asyncpg.Connection, *, key: str, hub: str, asset: str, distribution_id: str,
              amounts: Sequence[tuple[str, int]], direction: int, actor: str, memo: str) -> None:
    """Move each (recipient, amount) between the hub and the recipient's entitlement in ONE ledger
    transaction, in the caller's transaction. direction 1: hub -> entitlements (the hub must hold the sum);
    -1: entitlements -> hub (each must hold its amount). A shortfall raises EntitlementBroken, rolling
    the caller back: nothing moves out of an account that does not hold it."""
    items = [(entitlement_account(distribution_id, r), a) for r, a in amounts if a]
    if not items:
        return
    codes = [c for c, _ in items]
    await conn.execute(Q.ensure_accounts, codes, asset)
    ids = {r["code"]: r["id"] for r in await conn.fetch(Q.account_ids, [*codes, hub])}
    pairs = [(ids[c], asset) for c in codes] + [(ids[hub], asset)]
    await lock_rooms(conn, pairs)
    debited = [(ids[hub], sum(a for _, a in items))] if direction == 1 else [(ids[c], a) for c, a in items]
    rooms = await read_rooms(conn, [(i, asset) for i, _ in debited])
    for account_id, amount in debited:
        room = rooms[(account_id, asset)]
        if room.available < amount:
            code = next(c for c, i in ids.items() if i == account_id)
            raise EntitlementBroken(f"{code} has {room.available} of {asset} available, {amount} was to leave it")
    cause = {"distribution": distribution_id, "memo": memo, "shares": len(items), "direction": direction,
             "amount": str(sum(a for _, a in items))}
    rows = await conn.fetch(Q.fan, key, cause, asset, ids[hub], direction, [ids[c] for c in codes],
                            [a for _, a in items], actor)
    if len(rows) != len(items) + 1:
        raise EntitlementBroken(f"{key}: {len(rows)} balance rows moved for {len(items)} shares")


async def owed_to(conn: asyncpg.Connection, recipient: str, after: str | None = None, limit: int = 100,
                  chain: str | None = None) -> list[dict]:
    """One recipient's shares, by distribution id (keyset pages), with what its entitlement still holds."""
    return [{"distribution": r["distribution_id"], "index": r["idx"], "asset": r["asset_id"], "mode": r["mode"],
             "share": amount_text(r["amount"]), "state": r["state"], "account": r["account"],
             "owed": amount_text(r["owed"] or 0)}
            for r in await conn.fetch(Q.open_of, recipient, after, limit, chain)]
