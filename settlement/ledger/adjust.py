"""Manual adjustments, as an operator books them: `chainsettle ledger adjust`
and `POST /v1/admin/ledger/adjustments` both come here.

An adjustment explains what the rules do not book (a transfer out of a
wallet made by hand, a correction) with one balanced transaction of two
legs: `amount` of `asset` debited to one account and credited to another,
effective at a block of the chain (default: its final height), with an
author and a reason, audited in the same transaction. Reconciliation at any
height at or above that block then sees it; `ledger resolve` lifts the pause.

Refusals are `AdjustmentRefused` naming the field at fault. Accounts:
- `wallet:`, `fee:`, `equity:`, `user:` and `app:` accounts must already
  exist (a typo must not open a new account that nothing reconciles);
- `external:` and `adjustment:` accounts are opened by the adjustment
  (the other side of a movement the ledger had not seen);
- an account's code names its chain (`wallet:anvil:0x..`), which must be
  the adjustment's chain;
- a user or app account is never taken below its limit (zero, or an app account's
  overdraft), counting what holds and open payouts reserve, under the balance-row
  lock transfers and payouts take.

The key makes it idempotent: the same key with the same body answers the
stored adjustment (created = False); with another body it is a conflict.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from config import Settings
from config.errors import FieldError
from db import Queries
from db.values import amount_text
from indexer.chain_state import final_height
from settlement.ledger.books import Posting, book_adjustment_in
from settlement.ledger.rules import asset_id as make_asset_id
from settlement.ledger.transfers import lock_rooms, overdraft, read_rooms

Q = Queries(Path(__file__).with_name("adjust.sql"))
MAX_UNITS = 2**256 - 1
KEY = re.compile(r"^[A-Za-z0-9_.:@+=-]{1,200}$")
CODE = re.compile(r"^[a-z]+:[A-Za-z0-9_.:@+=-]{1,200}$")
AUTHOR = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
TX_HASH = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
OPENED_BY_ADJUSTMENT = ("external", "adjustment")
KNOWN_KINDS = ("wallet", "user", "app", "fee", "equity", *OPENED_BY_ADJUSTMENT)
NEVER_NEGATIVE = ("user", "app")


class AdjustmentRefused(FieldError):
    """adjustment refused"""


@dataclass(frozen=True)
class Adjustment:
    chain: str
    debit: str
    credit: str
    asset: str  # an asset id ('anvil:Token') or a name of the chain ('Token')
    amount: int | str
    author: str
    reason: str
    block: int | None = None
    tx_hash: str | None = None
    key: str | None = None


def _amount(value: int | str) -> int:
    if isinstance(value, bool):
        raise AdjustmentRefused("amount", "must be a positive integer in base units")
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,78}", value):
            raise AdjustmentRefused("amount", "must be a positive integer in base units (digits only)")
        value = int(value)
    if not isinstance(value, int) or not 0 < value <= MAX_UNITS:
        raise AdjustmentRefused("amount", "must be a positive integer in base units, below 2**256")
    return value


def _text(field: str, value: str | None, limit: int) -> str:
    if value is None or not value.strip():
        raise AdjustmentRefused(field, "is required")
    if _CONTROL.search(value):
        raise AdjustmentRefused(field, "must not contain control characters")
    if len(value) > limit:
        raise AdjustmentRefused(field, f"at most {limit} characters")
    return value.strip()


def check(settings: Settings, a: Adjustment) -> tuple[Adjustment, int]:
    """The adjustment with its fields normalised, and its amount; refusals name the field."""
    names = [c.name for c in settings.chains]
    if a.chain not in names:
        raise AdjustmentRefused("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    author = _text("author", a.author, 200)
    reason = _text("reason", a.reason, 500)
    amount = _amount(a.amount)
    asset = a.asset if ":" in (a.asset or "") else make_asset_id(a.chain, a.asset or "")
    if not a.asset or _CONTROL.search(a.asset) or len(a.asset) > 200:
        raise AdjustmentRefused("asset", "must be an asset id such as 'anvil:Token'")
    for field, code in (("debit", a.debit), ("credit", a.credit)):
        if not code or not CODE.fullmatch(code):
            raise AdjustmentRefused(field, "must be an account code '<kind>:<chain>:...' (no spaces or controls)")
        kind = code.split(":", 1)[0]
        if kind not in KNOWN_KINDS:
            raise AdjustmentRefused(field, f"unknown account kind {kind!r} (one of {', '.join(KNOWN_KINDS)})")
        if kind != "app" and code.split(":")[1] != a.chain:
            raise AdjustmentRefused(field, f"the account belongs to another chain than {a.chain!r}")
    if a.debit == a.credit:
        raise AdjustmentRefused("credit", "must be another account than the debit")
    if a.block is not None and (isinstance(a.block, bool) or not isinstance(a.block, int) or a.block < 0):
        raise AdjustmentRefused("block", "must be a block height (a non-negative integer)")
    if a.tx_hash is not None and not TX_HASH.fullmatch(a.tx_hash):
        raise AdjustmentRefused("tx_hash", "must be a transaction hash (64 hex digits, 0x optional)")
    if a.key is not None and not KEY.fullmatch(a.key):
        raise AdjustmentRefused("key", "must be 1-200 of the characters A-Z a-z 0-9 _ . : @ + = -")
    clean = Adjustment(a.chain, a.debit, a.credit, asset, amount, author, reason, a.block, a.tx_hash, a.key)
    return clean, amount


def _view(row: asyncpg.Record) -> dict:
    return {
        "key": row["idempotency_key"].removeprefix("manual:"), "transaction_id": row["id"], "chain": row["chain"],
        "block_number": row["block_number"], "tx_hash": row["tx_hash"], "asset": row["asset_id"],
        "amount": amount_text(row["amount"]), "debit": row["debit"], "credit": row["credit"],
        "author": row["author"], "reason": row["reason"], "created_at": row["created_at"].isoformat(),
    }


def _same(row: asyncpg.Record, a: Adjustment, amount: int) -> bool:
    return (row["chain"], row["asset_id"], int(row["amount"]), row["debit"], row["credit"], row["reason"],
            row["tx_hash"]) == (a.chain, a.asset, amount, a.debit, a.credit, a.reason, a.tx_hash) and (
        a.block is None or a.block == row["block_number"])


async def adjust(pool: asyncpg.Pool, settings: Settings, request: Adjustment, *, via: str = "cli") -> tuple[dict, bool]:
    """Book one adjustment; return (the adjustment, created now). `via` is audited with the author."""
    a, amount = check(settings, request)
    async with pool.acquire() as conn, conn.transaction():
        key = f"manual:{a.key or uuid.uuid4()}"
        if a.key is not None:
            await conn.execute(Q.lock_key, key)
            stored = await conn.fetchrow(Q.adjustment_by_key, key)
            if stored is not None:
                if not _same(stored, a, amount):
                    raise AdjustmentRefused("key", f"{a.key!r} was already used for another adjustment",
                                            code="conflict")
                return _view(stored), False
        if await conn.fetchrow(Q.chain_asset, a.asset, a.chain) is None:
            raise AdjustmentRefused("asset", f"no asset {a.asset!r} on chain {a.chain!r}")
        for field, code in (("debit", a.debit), ("credit", a.credit)):
            row = await conn.fetchrow(Q.account_by_code, code)
            if row is None and code.split(":", 1)[0] not in OPENED_BY_ADJUSTMENT:
                raise AdjustmentRefused(field, f"no ledger account {code!r} (only external: and adjustment: "
                                               "accounts are opened by an adjustment)")
        if a.debit.split(":", 1)[0] in NEVER_NEGATIVE:
            # The account's balance-row lock, the one transfers, holds and payout
            # admission take: an adjustment cannot spend what a hold or an open
            # payout reserves, nor race them for the last of it.
            debit_id = await conn.fetchval(Q.account_id, a.debit)
            pair = (debit_id, a.asset)
            await lock_rooms(conn, [pair])
            room = (await read_rooms(conn, [pair]))[pair]
            limit = overdraft(settings, a.debit)
            if limit is not None and room.available - amount < -limit:
                raise AdjustmentRefused(
                    "amount", f"{a.debit} is owed {amount_text(room.final)} of {a.asset}, of which "
                    f"{amount_text(room.available)} is available ({amount_text(room.held)} held, "
                    f"{amount_text(room.reserved)} reserved by open payouts); an adjustment cannot take it "
                    "below its limit")
        final = await final_height(conn, a.chain)
        block = a.block if a.block is not None else final
        if block is None:
            raise AdjustmentRefused("block", f"chain {a.chain!r} has no final height yet; give the block")
        if final is None or block > final:
            raise AdjustmentRefused("block", f"above the final height of {a.chain!r} ({final})")
        await book_adjustment_in(
            conn, chain=a.chain, author=a.author, reason=a.reason, block_number=block, tx_hash=a.tx_hash,
            key=key, via=via, postings=[Posting(a.debit, a.asset, amount), Posting(a.credit, a.asset, -amount)])
        stored = await conn.fetchrow(Q.adjustment_by_key, key)
    return _view(stored), True
