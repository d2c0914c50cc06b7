"""Frozen accounts: an operator stops every movement out of an account until it is unfrozen.

A frozen account is debited by nothing new: no transfer, hold, payout
request or wallet withdrawal (refused with `account_frozen`). Credits still
arrive, reads still work, and what was admitted before the freeze (a
pending hold, a requested payout) runs its course. Every transaction that
debits an account takes the account's freeze lock shared (`lock_debits`)
and then reads `frozen_accounts`; `set_frozen` takes it exclusive, so a
movement in flight finishes first and every later one sees the freeze,
in any process. Shared locks do not wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import asyncpg

from db import Queries
from db.audit import audit

from . import metrics as m

Q = Queries(Path(__file__).with_name("freeze.sql"))


async def lock_debits(conn: asyncpg.Connection, accounts: Iterable[str]) -> None:
    """Take the freeze locks of the accounts a transaction debits (shared); read `frozen_among` after."""
    codes = sorted(set(accounts))
    if codes:
        await conn.execute(Q.lock_shared, codes)


async def frozen_among(conn: asyncpg.Connection, accounts: Iterable[str]) -> set[str]:
    codes = sorted(set(accounts))
    if not codes:
        return set()
    return {r["account"] for r in await conn.fetch(Q.frozen_among, codes)}


async def frozen_count(conn: asyncpg.Connection) -> int:
    n = int(await conn.fetchval(Q.frozen_count))
    m.FROZEN_ACCOUNTS.set(n)
    return n


async def list_frozen(conn: asyncpg.Connection) -> list[dict]:
    return [{"account": r["account"], "reason": r["reason"], "actor": r["actor"],
             "frozen_at": r["frozen_at"].isoformat()} for r in await conn.fetch(Q.list_frozen)]


async def set_frozen(pool: asyncpg.Pool, account: str, frozen: bool, reason: str,
                     actor: str) -> tuple[dict | None, bool]:
    """Freeze or unfreeze (audited, with the reason); returns (the freeze row or None, changed)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.lock_exclusive, account)  # waits out the movements in flight
        if frozen:
            row = await conn.fetchrow(Q.freeze, account, reason, actor)
            changed = row is not None
            if row is None:
                row = await conn.fetchrow(Q.frozen_row, account)
        else:
            row = None
            changed = await conn.fetchval(Q.unfreeze, account) is not None
        if changed:
            await audit(conn, actor, "account.frozen" if frozen else "account.unfrozen", account, {"reason": reason})
        await frozen_count(conn)
    view = None if row is None else {"account": row["account"], "reason": row["reason"], "actor": row["actor"],
                                     "frozen_at": row["frozen_at"].isoformat()}
    return view, changed
