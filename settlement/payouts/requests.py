"""Payout requests, approvals, kill switches and the listing: the pipeline's
entry points for the CLI and the admin API.

A request is accepted once per idempotency key: asking again with the same
key returns the stored request (and refuses one that differs). It is paid
from `from_account` (default: the recipient's own `user:<chain>:<address>`,
a withdrawal; or an app account such as `app:prizes`, or an intent's
source). Unless `payouts.require_balance` is off, it must fit that
account's available balance (settlement/ledger/transfers.py: final, minus
open holds and payout requests from it, plus an app account's overdraft),
checked under the account's balance-row lock, and fit the per-batch cap.
The confirmation hooks debit that same account when the payout is final.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from config import Settings
from config.errors import FieldError
from config.logs import get_logger
from db import Queries, audit
from db.values import amount_text
from settlement.ledger.rules import asset_id
from settlement.ledger.transfers import (
    ACCOUNTS,
    ENTITLEMENT,
    TransferRefused,
    check_account,
    entitlement_recipient,
    frozen_debits,
    lock_rooms,
    normalize_account,
    overdraft,
    read_rooms,
)
from settlement.payouts import metrics as pm

Q = Queries(Path(__file__).with_name("payouts.sql"))
log = get_logger("settlement.payouts")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_XRPL_ADDRESS = re.compile(r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$")


class PayoutError(FieldError):
    """payout request refused"""


class IdempotencyConflict(PayoutError):
    """the idempotency key was used for a different payout"""

    code = "conflict"


class AccountFrozen(PayoutError):
    """the paying account is frozen (settlement/ledger/freeze.py)"""

    code = "account_frozen"


class BatchNotFound(PayoutError):
    """no batch with this id"""

    code = "not_found"


class BatchStateConflict(PayoutError):
    """the batch is not in a state that allows this"""

    code = "conflict"

    def __init__(self, field: str | None, reason: str, state: str) -> None:
        super().__init__(field, reason)
        self.state = state


def user_account(chain: str, address: str) -> str:
    # XRPL r-addresses are case-sensitive (base58): only 0x addresses are folded.
    return f"user:{chain}:{address.lower() if address.startswith('0x') else address}"


def _check_recipient(pc, to: object, tag: object) -> None:
    if pc.kind == "xrpl":
        # XRPL: a classic r-address (checksum included) and an optional 32-bit destination tag.
        from xrpl.core.addresscodec import is_valid_classic_address

        if not isinstance(to, str) or not _XRPL_ADDRESS.match(to) or not is_valid_classic_address(to):
            raise PayoutError("to", "must be a classic XRPL address (r...)")
        if tag is not None and (not isinstance(tag, int) or isinstance(tag, bool) or not 0 <= tag < 2**32):
            raise PayoutError("destination_tag", "a destination tag is an integer 0..4294967295")
        return
    if tag is not None:
        raise PayoutError("destination_tag", "destination tags exist only on XRPL chains")
    if not isinstance(to, str) or not _ADDRESS.match(to):
        raise PayoutError("to", "must be a 0x-prefixed 20-byte hex address")
    if int(to, 16) == 0:
        raise PayoutError("to", "the zero address cannot be paid")


def _funders(settings: Settings, chain: str) -> set[str]:
    return {f.address if f.address.startswith("r") else f.address.lower()
            for f in settings.ledger.funders if f.chain == chain}


def _check(settings: Settings, chain: str, asset: str, to: str, amount: object, key: str, tag: object = None):
    pc = settings.payouts.chain(chain)
    if pc is None:
        configured = ", ".join(c.chain for c in settings.payouts.chains) or "none"
        raise PayoutError("chain", f"payouts are not configured for {chain!r} (configured: {configured})")
    a = pc.asset(asset)
    if a is None:
        raise PayoutError("asset", f"{asset!r} is not a payout asset of {chain!r} ({', '.join(x.name for x in pc.assets)})")
    _check_recipient(pc, to, tag)
    if (to if pc.kind == "xrpl" else to.lower()) in _funders(settings, chain):
        # The transfer back to a funder is booked by the ledger rules as a
        # defunding; a payout would book the same value a second time.
        raise PayoutError("to", "a [[ledger.funders]] address is not paid by payouts; its transfer back "
                                "from the wallet is booked as a defunding of its app account")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 2**256:
        raise PayoutError("amount", "must be a positive integer in base units")
    if not isinstance(key, str) or not _KEY.match(key):
        raise PayoutError("key", "the idempotency key must be 1-200 printable characters without spaces")
    if a.max_batch_total is not None and amount > a.max_batch_total:
        raise PayoutError("amount", f"{amount} exceeds the per-batch cap {a.max_batch_total} of {chain}:{asset}")
    if a.daily_cap is not None and amount > a.daily_cap:
        raise PayoutError("amount", f"{amount} exceeds the per-day cap {a.daily_cap} of {chain}:{asset}")
    return pc, a


def _same(row, chain: str, asset: str, to: str, amount: int, tag: int | None = None,
          from_account: str | None = None) -> bool:
    return ((row["chain"], row["asset"], row["recipient"], int(row["amount"]), row.get("destination_tag"))
            == (chain, asset, to, amount, tag)
            and (from_account is None or row.get("from_account", from_account) == from_account))


async def lock_payers(conn: asyncpg.Connection, chain: str, asset: str, accounts) -> None:
    """The per-paying-account lock of admission, taken by every confirmation
    hook too (in sorted order, so two hooks never deadlock) before it marks
    a request paid and books its debit."""
    for a in sorted(set(accounts)):
        await conn.execute(Q.lock_name, f"{chain}:{asset}:{a}")


def request_dict(row) -> dict:
    d = dict(row)
    d["amount"] = amount_text(d["amount"])
    for k in ("created_at", "updated_at"):
        if d.get(k) is not None:
            d[k] = d[k].isoformat()
    return d


def _check_from(settings: Settings, chain: str, from_account: object, recipient: str) -> str:
    if not isinstance(from_account, str) or not 0 < len(from_account) <= 200:
        raise PayoutError("from_account", "a ledger account code such as app:prizes or user:<chain>:<address>")
    code = normalize_account(from_account)
    owner = entitlement_recipient(code)
    if code.startswith(ENTITLEMENT):
        # A share owed to one recipient pays that recipient only.
        if owner != recipient:
            raise PayoutError("from_account", f"{code} is an entitlement of {owner}: it pays only {owner}")
        return code
    try:
        check_account(settings, code, chain, "from_account")
    except TransferRefused as exc:
        raise PayoutError("from_account", f"{exc.result}: {exc.reason}") from None
    return code


async def request_payout(pool: asyncpg.Pool, settings: Settings, *, chain: str, asset: str, to: str, amount: int,
                         key: str, actor: str = "cli", destination_tag: int | None = None,
                         from_account: str | None = None,
                         admission: Callable[[asyncpg.Connection, str], Awaitable[None]] | None = None
                         ) -> tuple[dict, bool]:
    """Store one payout request; return (request, created_now). `destination_tag`: XRPL only.
    `from_account`: the account paying (default: the recipient's user account).
    `admission(conn, payer)`: more checks (a wallet's withdrawal limits), run under the payer's
    lock in the admitting transaction; it raises a PayoutError to refuse (nothing is stored)."""
    tag = destination_tag
    pc, _ = _check(settings, chain, asset, to, amount, key, tag)
    recipient = to if pc.kind == "xrpl" else to.lower()
    payer = user_account(chain, recipient) if from_account is None else _check_from(settings, chain, from_account, recipient)
    refused: PayoutError | None = None
    async with pool.acquire() as conn, conn.transaction():
        # One decision per key: a concurrent request with the same key waits
        # here and then finds the first one's outcome, accepted or refused.
        await conn.execute(Q.lock_name, f"payout-key:{key}")
        existing = await conn.fetchrow(Q.find_request, key)
        if existing is not None:
            if not _same(existing, chain, asset, recipient, amount, tag, payer):
                raise IdempotencyConflict("key", f"{key!r} was already used for a different payout")
            return request_dict(existing), False
        first = await conn.fetchrow(Q.find_refusal, key)
        if first is not None:
            if (first["chain"], first["asset"], first["recipient"], int(first["amount"])) != (chain, asset, recipient, amount):
                raise IdempotencyConflict("key", f"{key!r} was already used for a different payout")
            raise PayoutError(first["field"], f"{first['reason']} (the first answer for key {key!r}, replayed)")
        await lock_payers(conn, chain, asset, [payer])
        if await frozen_debits(conn, [payer]):
            raise AccountFrozen("from_account", f"{payer} is frozen: no payout is paid from it until an operator "
                                "unfreezes it")
        if admission is not None:
            await admission(conn, payer)
        if payer.startswith("app:") or settings.payouts.require_balance:
            try:
                account = (await ACCOUNTS.resolve(conn, settings, {payer: ("from_account", None)}))[payer]
            except TransferRefused as exc:
                raise PayoutError("from_account", f"{exc.result}: {exc.reason}") from None
        if settings.payouts.require_balance:
            # The paying account's balance-row lock (transfers and holds take
            # it too), then final, held and reserved from ONE statement (one
            # snapshot): a confirmation, under the lock above, commits "paid"
            # and the debit together, so this sees both or neither.
            pair = (account.id, asset_id(chain, asset))
            await lock_rooms(conn, [pair])
            room = (await read_rooms(conn, [pair]))[pair]
            limit = overdraft(settings, payer)
            if limit is not None and room.available + limit < amount:
                refused = PayoutError(
                    "amount", f"{amount} exceeds what {payer} has available in {chain}:{asset} "
                    f"({room.available}: the final ledger owes {room.final}, of which {room.reserved} is already "
                    f"requested and {room.held} held" + (f"; overdraft {limit}" if limit else "") + ")"
                )
                await conn.execute(Q.insert_refusal, key, chain, asset, recipient, amount, refused.field,
                                   refused.reason, actor)
                await audit(conn, actor, "payout.refused", f"payout-key:{key}", {
                    "chain": chain, "asset": asset, "to": recipient, "amount": amount_text(amount),
                    "field": refused.field, "reason": refused.reason})
        if refused is None:
            row = await conn.fetchrow(Q.insert_request, key, chain, asset, recipient, amount, actor, payer)
            if row is not None and tag is not None:
                # The column comes with db/migrations/0006_xrpl_payouts.sql; same transaction as the insert.
                row = await conn.fetchrow(Q.set_request_tag, row["id"], tag)
            if row is None:  # cannot happen under the key lock; kept as the unique key's last word
                row = await conn.fetchrow(Q.find_request, key)
                if not _same(row, chain, asset, recipient, amount, tag, payer):
                    raise IdempotencyConflict("key", f"{key!r} was already used for a different payout")
                return request_dict(row), False
            await audit(conn, actor, "payout.requested", f"payout:{row['id']}", {
                "key": key, "chain": chain, "asset": asset, "to": recipient, "amount": amount_text(amount),
                "from_account": payer,
                **({"tag": tag} if tag is not None else {})})
    if refused is not None:
        log.info("payout.refused", chain=chain, asset=asset, to=recipient, field=refused.field)
        raise refused
    log.info("payout.requested", id=row["id"], chain=chain, asset=asset, to=recipient, amount=amount_text(amount),
             from_account=payer)
    return request_dict(row), True


async def approve_batch(pool: asyncpg.Pool, batch_id: str, actor: str) -> dict:
    if not actor or not actor.strip():
        raise PayoutError("approver", "an approval needs the approver's name")
    batch_id = batch_id.lower()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.approve_batch, batch_id, actor)
        if row is None:
            state = await conn.fetchval(Q.batch_state, batch_id)
            if state is None:
                raise BatchNotFound("batch", f"no batch {batch_id}")
            raise BatchStateConflict("batch", f"{batch_id} is {state}, not awaiting approval", state)
        await audit(conn, actor, "payout.batch_approved", f"batch:{batch_id}",
                    {"total": amount_text(row["total"]), "items": row["item_count"]})
    log.info("payout.batch_approved", batch=batch_id, approver=actor)
    return {"batch_id": batch_id, "state": "ready", "approved_by": actor}


async def kill_switch_on(conn: asyncpg.Connection, chain: str) -> bool:
    """The run-time kill switch of `chain` or the global one ('*'), as set by set_kill_switch."""
    return bool(await conn.fetchval(Q.killed, chain))


async def set_kill_switch(pool: asyncpg.Pool, scope: str, killed: bool, reason: str, actor: str) -> None:
    """scope '*' (every chain) or a chain name; workers see it before their next signature."""
    if not reason or not reason.strip():
        raise PayoutError("reason", "a kill switch change needs a reason")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.set_control, scope, killed, reason, actor)
        await audit(conn, actor, "payout.kill_switch" if killed else "payout.resumed", f"payouts:{scope}",
                    {"killed": killed, "reason": reason})
    log.warning("payout.kill_switch", scope=scope, killed=killed, actor=actor, reason=reason)


async def kill_switches(conn: asyncpg.Connection) -> dict[str, bool]:
    """The run-time switches by scope ('*' or a chain)."""
    return {r["scope"]: r["killed"] for r in await conn.fetch(Q.list_controls)}


def json_rows(rows) -> list[dict]:
    """Rows as JSON-ready dicts (timestamps in ISO 8601), for listings."""
    out = []
    for r in rows:
        d = dict(r)
        for k, v in d.items():
            if hasattr(v, "isoformat"):
                d[k] = v.isoformat()
        out.append(d)
    return out


async def list_queue(conn: asyncpg.Connection, chain: str | None = None, limit: int = 1000) -> dict:
    """Requests, batches and kill switches, newest first (what `payouts list` shows)."""
    return {
        "requests": json_rows(await conn.fetch(Q.list_requests, chain, limit)),
        "batches": json_rows(await conn.fetch(Q.list_batches, chain, limit)),
        "controls": json_rows(await conn.fetch(Q.list_controls)),
    }


REQUEST_STATES = ("pending", "batched", "paid", "held", "cancelled")
BATCH_STATES = ("awaiting_approval", "ready", "signed", "dry_run", "confirmed", "reverted", "expired", "cancelled")


async def refresh_gauges(conn: asyncpg.Connection, chains=()) -> None:
    """Every state of every chain (the configured `chains` and any with rows)
    set, to 0 when empty: an alert on a state must resolve once it empties,
    and exist from start-up, not from the first row."""
    req = {(r["chain"], r["state"]): r["n"] for r in await conn.fetch(Q.request_counts)}
    bat = {(r["chain"], r["state"]): r["n"] for r in await conn.fetch(Q.batch_counts)}
    for chain in set(chains) | {c for c, _ in req} | {c for c, _ in bat}:
        for state in REQUEST_STATES:
            pm.PAYOUTS.labels(chain, state).set(req.get((chain, state), 0))
        for state in BATCH_STATES:
            pm.BATCHES.labels(chain, state).set(bat.get((chain, state), 0))
