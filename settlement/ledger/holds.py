"""Holds: two-phase transfers (TigerBeetle's pending / post / void, Blnk's inflight).

A hold reserves its amount against the debit account's available balance
(`ledger_account_balances.held`, under that row's lock, checked like a
transfer). It then leaves 'pending' exactly once, whoever asks first:
- post: books a transfer of `amount` (default: all of it; less returns the
  rest), key 'hold:<id>';
- void: books nothing; the reservation returns;
- expiry: at `expires_at` the sweep (`expire_due`, a `chainsettle run` task
  in every process) voids it; a post or void arriving after the timeout
  finds it expired (and expires it itself if the sweep has not run yet).
Each resolver locks the hold row (`FOR UPDATE`; the sweep with SKIP LOCKED)
and resolves it only from 'pending', then takes the balance-row locks:
hold row before balance rows everywhere, so no cycle with transfers,
which take balance rows only. Asking again replays: a post with the same
amount (or none) of a posted hold answers the stored hold; anything else
that finds it resolved is a conflict naming its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass

import asyncpg

from config import Settings
from config.logs import get_logger
from settlement.ledger import metrics as m
from settlement.ledger.transfers import (
    ACCOUNTS,
    Q,
    Transfer,
    TransferConflict,
    TransferRefused,
    check_account,
    check_transfer,
    frozen_debits,
    lock_rooms,
    normalize_account,
    read_rooms,
    refuse_exceeding,
    retrying,
)

log = get_logger("settlement.ledger.holds")
MAX_TIMEOUT = 366 * 86400


class HoldNotFound(TransferRefused):
    code = "not_found"


@dataclass(frozen=True)
class Hold(Transfer):
    timeout_seconds: float | None = None

    def body(self) -> dict:
        return {**super().body(), "timeout_seconds": self.timeout_seconds}


def hold_view(row) -> dict:
    body = row["body"] if isinstance(row["body"], dict) else json.loads(row["body"])
    return {
        **{k: body[k] for k in ("id", "code", "memo")},
        "debit_account": row["debit_account"], "credit_account": row["credit_account"], "asset": row["asset_id"],
        "amount": str(int(row["amount"])), "state": row["state"],
        "posted_amount": None if row["posted_amount"] is None else str(int(row["posted_amount"])),
        "transaction_id": row["transaction_id"], "expires_at": row["expires_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
        "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
        "resolved_by": row["resolved_by"],
    }


async def create_hold(pool: asyncpg.Pool, settings: Settings, hold: Hold, actor: str) -> tuple[dict, bool]:
    hold = Hold(hold.id, normalize_account(hold.debit_account), normalize_account(hold.credit_account), hold.asset,
                hold.amount, hold.code, hold.memo,
                hold.timeout_seconds if hold.timeout_seconds is not None else settings.ledger.hold_timeout_seconds)
    check_transfer(hold, 0)
    if not 0 < hold.timeout_seconds <= MAX_TIMEOUT:
        raise TransferRefused("timeout_seconds", "invalid_timeout", f"seconds in (0, {MAX_TIMEOUT}]")

    async def work(conn: asyncpg.Connection) -> tuple[dict, bool]:
        stored = await conn.fetchrow(Q.find_hold, hold.id)
        if stored is not None:
            body = stored["body"]
            field = next((k for k in hold.body() if body.get(k) != hold.body()[k]), None)
            if field is not None:
                raise TransferConflict(field, f"hold {hold.id!r} was already created with a different {field}")
            return hold_view(stored), False
        chain, _ = await ACCOUNTS.asset(conn, hold.asset, "asset")
        check_account(settings, hold.debit_account, chain, "debit_account")
        check_account(settings, hold.credit_account, chain, "credit_account")
        accounts = await ACCOUNTS.resolve(conn, settings, {hold.debit_account: ("debit_account", None),
                                                           hold.credit_account: ("credit_account", None)})
        debit, credit = accounts[hold.debit_account], accounts[hold.credit_account]
        pairs = [(debit.id, hold.asset), (credit.id, hold.asset)]
        await lock_rooms(conn, pairs)
        if await frozen_debits(conn, [debit.code]):
            raise TransferRefused("debit_account", "account_frozen", f"{debit.code} is frozen: nothing is debited "
                                  "from it until an operator unfreezes it", account=debit.code)
        room = (await read_rooms(conn, pairs[:1]))[pairs[0]]
        refuse_exceeding(settings, debit, room, hold.amount, "debit_account", what="hold")
        row = await conn.fetchrow(Q.insert_hold, hold.id, hold.body(), debit.id, credit.id, hold.asset, hold.amount,
                                  float(hold.timeout_seconds), actor)
        return hold_view({**dict(row), "debit_account": debit.code, "credit_account": credit.code}), True

    out, created = await retrying(pool, work)
    if created:
        m.LEDGER_TRANSFERS.labels("hold").inc()
    return out, created


async def _resolve(pool: asyncpg.Pool, hold_id: str, amount: int | None, actor: str, post: bool) -> tuple[dict, bool]:
    """Post (`post`, `amount` or all) or void one hold, exactly once."""
    wanted = "posted" if post else "voided"

    async def work(conn: asyncpg.Connection) -> tuple[dict, bool, str | None]:
        row = await conn.fetchrow(Q.lock_hold, hold_id)
        if row is None:
            raise HoldNotFound("id", "unknown_hold", f"no hold {hold_id!r}")
        total = int(row["amount"])
        if row["state"] == "pending" and row["due"]:
            await _expire(conn, [row])
            return hold_view(await conn.fetchrow(Q.find_hold, hold_id)), True, "expired"
        if row["state"] != "pending":
            same_amount = amount is None or row["posted_amount"] is not None and int(row["posted_amount"]) == amount
            if row["state"] == wanted and (not post or same_amount):
                return hold_view(row), False, None
            if row["state"] == wanted:
                raise TransferConflict("amount", f"hold {hold_id!r} was posted with {int(row['posted_amount'])}")
            raise TransferConflict("id", f"hold {hold_id!r} is {row['state']}")
        if amount is not None and not 0 < amount <= total:
            raise TransferRefused("amount", "exceeds_hold", f"{amount} is not within the held amount {total}")
        value = total if amount is None else amount
        pairs = [(row["debit_account_id"], row["asset_id"]), (row["credit_account_id"], row["asset_id"])]
        await lock_rooms(conn, pairs)
        tx_id = None
        if post:
            body = {"hold": hold_id, "debit_account": row["debit_account"], "credit_account": row["credit_account"],
                    "asset": row["asset_id"], "amount": str(value), "code": row["body"].get("code"),
                    "memo": row["body"].get("memo")}
            booked = await conn.fetch(Q.book, [f"hold:{hold_id}"], [hold_id], [row["debit_account_id"]],
                                      [row["credit_account_id"]], [row["asset_id"]], [value], [body], [actor], None)
            tx_id = booked[0]["transaction_id"]
        resolved = await conn.fetchrow(Q.resolve_hold, hold_id, wanted, value if post else None, tx_id, actor)
        if resolved is None:  # cannot happen under the row lock; the conditional update has the last word
            raise asyncpg.SerializationError("hold resolved concurrently")
        return hold_view({**dict(resolved), "debit_account": row["debit_account"],
                          "credit_account": row["credit_account"]}), True, None

    view, changed, expired = await retrying(pool, work)
    if expired:
        m.LEDGER_TRANSFERS.labels("hold_expired").inc()
        raise TransferConflict("id", f"hold {hold_id!r} expired at {view['expires_at']}")
    if changed:
        m.LEDGER_TRANSFERS.labels(f"hold_{wanted}").inc()
    return view, changed


async def post_hold(pool: asyncpg.Pool, hold_id: str, amount: int | None, actor: str) -> tuple[dict, bool]:
    return await _resolve(pool, hold_id, amount, actor, post=True)


async def void_hold(pool: asyncpg.Pool, hold_id: str, actor: str) -> tuple[dict, bool]:
    return await _resolve(pool, hold_id, None, actor, post=False)


async def _expire(conn: asyncpg.Connection, rows) -> None:
    """Expire locked pending holds and return their reservations (hold rows, then balance rows)."""
    await lock_rooms(conn, [(r["debit_account_id"], r["asset_id"]) for r in rows])
    await conn.execute(Q.expire_holds, [r["id"] for r in rows])
    await conn.execute(Q.release_held, [r["debit_account_id"] for r in rows], [r["asset_id"] for r in rows],
                       [int(r["amount"]) for r in rows])


async def expire_due(pool: asyncpg.Pool, limit: int = 500) -> int:
    """One sweep: expire up to `limit` holds past their timeout; return how many."""

    async def work(conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(Q.due_holds, limit)
        if rows:
            await _expire(conn, rows)
        return len(rows)

    n = await retrying(pool, work)
    if n:
        m.LEDGER_TRANSFERS.labels("hold_expired").inc(n)
        log.info("ledger.holds_expired", count=n)
    return n


async def run_hold_expiry(pool: asyncpg.Pool, stop: asyncio.Event, interval: float = 1.0) -> None:
    """The expiry sweep as a daemon task; every process runs one (SKIP LOCKED, resolved once)."""
    while not stop.is_set():
        while await expire_due(pool) and not stop.is_set():
            pass
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
