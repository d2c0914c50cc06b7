"""Transfers between accounts, checked against each account's limits.

What an app does between a deposit and a payout (a prize, a reward, a bet,
a fee share) is a transfer: `{id, debit_account, credit_account, asset,
amount, code, memo}`, booked as a ledger transaction with cause 'transfer'
and two postings. The model is TigerBeetle's:

- The client chooses `id`. The same id with the same body replays the stored
  answer; with a different body it is a conflict naming the first differing
  field. Transfers are immutable: a correction is a new transfer.
- A request with several transfers is linked: all commit or none, and a
  refusal writes nothing. They apply in order (a transfer may spend what an
  earlier one of the request credited).
- Only user (`user:<chain>:<address>`) and app (`app:<name>`) accounts take
  part; wallets, fees and equity are what the chain says, never moved by
  hand here. A user account is never owed less than zero; an app account
  may go `overdraft` below zero (config, `[[ledger.accounts]]`; 0 unless
  configured; "unlimited" for an issuer).

Balances (credit-normal accounts: what the account holds = -sum(postings)):
- final: chain-derived postings in final blocks plus every transfer;
- pending: open holds and open payout requests paid from the account
  (and, for information, chain entries not final yet);
- available = final - held - reserved: what a new transfer, hold or payout
  may use. Unfinal chain value is never available.

Locking. One row per (account, asset) in `ledger_account_balances` keeps
the transfer sum (`posted`) and the open holds (`held`). Its row lock is
THE per-account lock: transfers, holds, hold resolution and payout
admission take it (`SELECT ... FOR UPDATE`, rows sorted by (account id,
asset): one global order, no deadlock between them), then read
availability in ONE later statement, so it sees every write that committed
under the lock. Payout confirmations (inside range commits) do not take
it: they commit "paid" and the debit together, which moves available by
nothing, and one snapshot sees both or neither. Chain-derived entries are
summed per admission through a partial index that excludes transfer
postings, so a hot account's cost does not grow with its transfers. The
lock holds across processes and API replicas because it is a database row
lock; deadlocks and serialization failures (any remaining order, e.g. a
racing duplicate id) are retried whole.

Which chain and height? A transfer is booked on its asset's chain at that
chain's final height at the time (0 before there is one): "as of H"
balances include it from the height it was booked at, and reconciliation,
which compares wallets only, never sees it (transfers never touch a wallet).
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg

from config import Settings
from config.errors import FieldError
from config.logs import get_logger
from db import Queries
from settlement.ledger import metrics as m

Q = Queries(Path(__file__).with_name("transfers.sql"))
log = get_logger("settlement.ledger.transfers")
T = TypeVar("T")
MAX_AMOUNT = 10**78 - 1
MAX_LINKED = 1000
_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
_USER = re.compile(r"^user:([a-z0-9][a-z0-9_-]{0,62}):([A-Za-z0-9:_.-]{1,200})$")
_APP = re.compile(r"^app:[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, asyncpg.UniqueViolationError)
FIELDS = ("id", "debit_account", "credit_account", "asset", "amount", "code", "memo")


class TransferRefused(FieldError):
    """transfer refused

    `result` is the machine code (exceeds_available, unknown_account,
    asset_mismatch, unknown_asset, account_kind, same_account, ...),
    `account` the account it concerns, `index` the transfer's position."""

    code = "refused"

    def __init__(self, field: str | None, result: str, reason: str, *, account: str | None = None,
                 index: int | None = None) -> None:
        super().__init__(field, reason)
        self.result = result
        self.account = account
        self.index = index


class TransferConflict(FieldError):
    """the id was used for a different transfer"""

    code = "conflict"


@dataclass(frozen=True)
class Transfer:
    id: str
    debit_account: str
    credit_account: str
    asset: str  # asset id '<chain>:<name>'
    amount: int
    code: int = 0
    memo: str | None = None

    def body(self) -> dict:
        """The canonical body: what is stored and compared on replay."""
        return {"id": self.id, "debit_account": self.debit_account, "credit_account": self.credit_account,
                "asset": self.asset, "amount": str(self.amount), "code": self.code, "memo": self.memo}


@dataclass(frozen=True)
class Account:
    id: int
    code: str
    kind: str


@dataclass
class Room:
    """One (account, asset): the parts of its balance, in the account's natural sign."""

    chain_final: int
    posted: int
    held: int
    reserved: int

    @property
    def final(self) -> int:
        return -(self.chain_final + self.posted)

    @property
    def available(self) -> int:
        return self.final - self.held - self.reserved


# -- accounts, limits ---------------------------------------------------------------


def normalize_account(code: str) -> str:
    m_ = _USER.match(code)
    if m_ and m_.group(2).startswith("0x"):
        return f"user:{m_.group(1)}:{m_.group(2).lower()}"
    return code


ENTITLEMENT = "entitlement:"


def entitlement_recipient(code: str) -> str | None:
    """The one recipient an `entitlement:<distribution>:<recipient>` account pays (None: not one).
    Entitlements (settlement/distributions/entitlements.py) take no transfers: only their
    distribution's booking, its payouts to that recipient, claims and expiry move them."""
    if not code.startswith(ENTITLEMENT):
        return None
    parts = code.split(":")
    return parts[2] if len(parts) == 3 and parts[1] and parts[2] else None


def overdraft(settings: Settings, account: str) -> int | None:
    """How far below zero the account may go; None: unlimited."""
    if account.startswith("app:"):
        cfg = settings.ledger.app_account(account)
        return 0 if cfg is None else cfg.overdraft
    return 0


def check_account(settings: Settings, code: str, asset_chain: str, field: str, index: int | None = None) -> None:
    """A user account of the asset's chain, or an app account (configured, or creatable)."""
    mu = _USER.match(code)
    if mu:
        if mu.group(1) != asset_chain:
            raise TransferRefused(field, "asset_mismatch", f"{code} holds {mu.group(1)} assets, not {asset_chain}",
                                  account=code, index=index)
        return
    if _APP.match(code):
        return
    kind = code.split(":", 1)[0]
    raise TransferRefused(field, "account_kind",
                          f"{code}: only user:<chain>:<address> and app:<name> accounts take transfers"
                          + (f" (not {kind} accounts)" if ":" in code else ""), account=code, index=index)


class Accounts:
    """Account and asset lookups, cached per process and database (neither is ever deleted)."""

    def __init__(self) -> None:
        self._accounts: dict[tuple, dict[str, Account]] = {}
        self._assets: dict[tuple, dict[str, tuple[str, str]]] = {}

    @staticmethod
    def _database(conn: asyncpg.Connection) -> tuple:
        params = getattr(conn, "_params", None)
        return (str(getattr(conn, "_addr", "")), getattr(params, "database", None))

    async def asset(self, conn: asyncpg.Connection, asset: str, field: str, index: int | None = None) -> tuple[str, str]:
        """(chain, name) of an asset id."""
        assets = self._assets.setdefault(self._database(conn), {})
        if asset not in assets:
            for r in await conn.fetch(Q.find_assets, [asset]):
                assets[r["id"]] = (r["chain"], r["name"])
        if asset not in assets:
            raise TransferRefused(field, "unknown_asset", f"no asset {asset!r} (asset ids read '<chain>:<name>')",
                                  index=index)
        return assets[asset]

    async def resolve(self, conn: asyncpg.Connection, settings: Settings, codes: dict[str, tuple[str, int | None]],
                      strict: bool = True) -> dict[str, Account]:
        """codes: {code: (field, index)}. User accounts and configured (or, when allowed, any) app
        accounts are created on first use; an unknown app account is refused (`strict`) or left out."""
        cache = self._accounts.setdefault(self._database(conn), {})
        found = {c: cache[c] for c in codes if c in cache}
        missing = [c for c in codes if c not in found]
        if missing:
            create, labels = [], []
            for c in missing:
                cfg = settings.ledger.app_account(c) if c.startswith("app:") else None
                if c.startswith("user:") or cfg is not None or settings.ledger.create_app_accounts:
                    create.append(c)
                    labels.append(cfg.label if cfg is not None else None)
            for r in await conn.fetch(Q.resolve_accounts, missing, create, labels):
                found[r["code"]] = Account(r["id"], r["code"], r["kind"])
                if not r["created"]:  # one created here is cached once it committed (see its next use)
                    cache[r["code"]] = found[r["code"]]
        for c, (field, index) in codes.items():
            if strict and c not in found:
                raise TransferRefused(field, "unknown_account",
                                      f"{c} is not a configured app account ([[ledger.accounts]]) and "
                                      "ledger.create_app_accounts is off", account=c, index=index)
        return found


ACCOUNTS = Accounts()


async def lock_rooms(conn: asyncpg.Connection, pairs: Sequence[tuple[int, str]]) -> None:
    """Take the balance-row locks of (account id, asset id) pairs, creating missing rows."""
    ids = sorted(set(pairs))
    a, s = [p[0] for p in ids], [p[1] for p in ids]
    rows = await conn.fetch(Q.lock_balances, a, s)
    if len(rows) < len(ids):
        await conn.execute(Q.insert_balances, a, s)
        await conn.fetch(Q.lock_balances, a, s)


async def read_rooms(conn: asyncpg.Connection, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], Room]:
    """Availability of locked pairs, from one snapshot taken after the locks."""
    ids = sorted(set(pairs))
    rows = await conn.fetch(Q.availability, [p[0] for p in ids], [p[1] for p in ids])
    return {(r["account_id"], r["asset_id"]): Room(int(r["chain_final"]), int(r["posted"]), int(r["held"]),
                                                   int(r["reserved"])) for r in rows}


def refuse_exceeding(settings: Settings, account: Account, room: Room, amount: int, field: str,
                     index: int | None = None, what: str = "transfer") -> None:
    limit = overdraft(settings, account.code)
    if limit is not None and room.available - amount < -limit:
        raise TransferRefused(
            field, "exceeds_available",
            f"{account.code}: {what} of {amount} exceeds available {room.available} "
            f"(final {room.final}, held {room.held}, reserved for payouts {room.reserved}"
            + (f", overdraft {limit}" if limit else "") + ")", account=account.code, index=index)


async def retrying(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]], attempts: int = 20) -> T:
    """Run `work(conn)` in a transaction; a deadlock, serialization failure or
    duplicate-key race rolls it back whole and runs it again."""
    for attempt in range(attempts):
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return await work(conn)
            except RETRIED:
                if attempt == attempts - 1:
                    raise
                m.LEDGER_RETRIES.inc()
        await asyncio.sleep(0.001 * (attempt + 1))
    raise AssertionError("unreachable")


# -- transfers ----------------------------------------------------------------------


def check_transfer(t: Transfer, i: int) -> None:
    f = f"transfers[{i}]"
    if not _ID.match(t.id):
        raise TransferRefused(f"{f}.id", "invalid_id", "1-200 printable characters without spaces", index=i)
    if isinstance(t.amount, bool) or not isinstance(t.amount, int) or not 0 < t.amount <= MAX_AMOUNT:
        raise TransferRefused(f"{f}.amount", "invalid_amount", "a positive integer in base units", index=i)
    if t.debit_account == t.credit_account:
        raise TransferRefused(f"{f}.credit_account", "same_account", "debit and credit accounts must differ",
                              account=t.debit_account, index=i)
    if not 0 <= t.code < 2**31:
        raise TransferRefused(f"{f}.code", "invalid_code", "an integer 0..2147483647", index=i)


def _differs(stored: dict, body: dict) -> str | None:
    return next((k for k in FIELDS if stored.get(k) != body.get(k)), None)


def transfer_view(body: dict, transaction_id: int, created_at) -> dict:
    return {**body, "transaction_id": transaction_id,
            "created_at": created_at.isoformat() if hasattr(created_at, "isoformat") else created_at}


def _replay(stored: dict, transfers: Sequence[Transfer]) -> list[dict] | None:
    """The stored answer when every id was booked with the same body in one request; None when
    none was; a conflict otherwise."""
    ids = [t.id for t in transfers]
    if not any(i in stored for i in ids):
        return None
    out = []
    for i, t in enumerate(transfers):
        row = stored.get(t.id)
        if row is None or list(row["linked"]) != ids:
            raise TransferConflict(f"transfers[{i}].id", f"{t.id!r} was booked in a different linked request")
        field = _differs(row["body"], t.body())
        if field is not None:
            raise TransferConflict(f"transfers[{i}].{field}", f"{t.id!r} was already used with a different {field}")
        out.append(transfer_view(row["body"], row["transaction_id"], row["created_at"]))
    return out


def prepare(transfers: Sequence[Transfer]) -> list[Transfer]:
    """Checks that need no database; account codes normalized."""
    if not transfers:
        raise TransferRefused("transfers", "empty", "at least one transfer")
    if len(transfers) > MAX_LINKED:
        raise TransferRefused("transfers", "too_many", f"at most {MAX_LINKED} transfers per request")
    transfers = [Transfer(t.id, normalize_account(t.debit_account), normalize_account(t.credit_account), t.asset,
                          t.amount, t.code, t.memo) for t in transfers]
    ids = [t.id for t in transfers]
    if len(set(ids)) != len(ids):
        dup = next(i for i, x in enumerate(ids) if ids.index(x) != i)
        raise TransferRefused(f"transfers[{dup}].id", "duplicate_id", "ids must be unique within a request", index=dup)
    for i, t in enumerate(transfers):
        check_transfer(t, i)
    return transfers


@dataclass
class Request:
    """One linked request inside a booking transaction, and its outcome."""

    transfers: list[Transfer]
    actor: str
    result: tuple[list[dict], bool] | None = None
    error: Exception | None = None


async def _validate(conn: asyncpg.Connection, settings: Settings, r: Request) -> dict[str, tuple[str, int]]:
    codes: dict[str, tuple[str, int]] = {}
    chains: dict[str, str] = {}
    checked: set[tuple[str, str]] = set()
    for i, t in enumerate(r.transfers):
        if t.asset not in chains:
            chains[t.asset] = (await ACCOUNTS.asset(conn, t.asset, f"transfers[{i}].asset", i))[0]
        chain = chains[t.asset]
        for side, code in (("debit_account", t.debit_account), ("credit_account", t.credit_account)):
            if (code, chain) not in checked:
                check_account(settings, code, chain, f"transfers[{i}].{side}", i)
                checked.add((code, chain))
            codes.setdefault(code, (f"transfers[{i}].{side}", i))
    return codes


async def book_requests(conn: asyncpg.Connection, settings: Settings, reqs: Sequence[Request]) -> None:
    """Book independent linked requests in the caller's transaction, setting each one's
    result or error: each request all or nothing, in order, against the locked rooms.

    A refused request books nothing (when another request of the same
    transaction is booked, accounts it named may have been created: an
    account without entries; alone, `_book` rolls everything back)."""
    for r in reqs:
        r.result, r.error = None, None
    stored = {row["id"]: row for row in await conn.fetch(Q.find_transfers, [t.id for r in reqs for t in r.transfers])}
    todo: list[tuple[Request, dict]] = []
    for r in reqs:
        try:
            replay = _replay(stored, r.transfers)
            if replay is not None:
                r.result = (replay, False)
            else:
                todo.append((r, await _validate(conn, settings, r)))
        except (TransferConflict, TransferRefused) as exc:
            r.error = exc
    if not todo:
        return
    wanted = {}
    for _, codes in todo:
        wanted.update(codes)
    accounts = await ACCOUNTS.resolve(conn, settings, wanted, strict=False)
    valid = []
    for r, codes in todo:
        unknown = next((c for c in codes if c not in accounts), None)
        if unknown is None:
            valid.append(r)
        else:
            field, index = codes[unknown]
            r.error = TransferRefused(field, "unknown_account", f"{unknown} is not a configured app account "
                                      "([[ledger.accounts]]) and ledger.create_app_accounts is off",
                                      account=unknown, index=index)
    pairs = [(accounts[c].id, t.asset) for r in valid for t in r.transfers for c in (t.debit_account, t.credit_account)]
    if not pairs:
        return
    await lock_rooms(conn, pairs)
    # Frozen accounts (settlement/ledger/freeze.py) are debited by nothing new.
    frozen = await frozen_debits(conn, [t.debit_account for r in valid for t in r.transfers])
    if frozen:
        still = []
        for r in valid:
            hit = next(((i, t) for i, t in enumerate(r.transfers) if t.debit_account in frozen), None)
            if hit is None:
                still.append(r)
            else:
                i, t = hit
                r.error = TransferRefused(f"transfers[{i}].debit_account", "account_frozen",
                                          f"{t.debit_account} is frozen: nothing is debited from it until an "
                                          "operator unfreezes it", account=t.debit_account, index=i)
        valid = still
        if not valid:
            return
    # Availability of the debited pairs only: a pair that is only credited
    # needs its lock (its row is updated) but no check.
    rooms = await read_rooms(conn, [(accounts[t.debit_account].id, t.asset) for r in valid for t in r.transfers])
    accepted = []
    for r in valid:
        before: dict[tuple[int, str], int] = {}
        try:
            for i, t in enumerate(r.transfers):  # in order: a transfer may spend what an earlier one credited
                debit, credit = accounts[t.debit_account], accounts[t.credit_account]
                dk, ck = (debit.id, t.asset), (credit.id, t.asset)
                for k in (dk, ck):
                    if k in rooms:
                        before.setdefault(k, rooms[k].posted)
                refuse_exceeding(settings, debit, rooms[dk], t.amount, f"transfers[{i}].debit_account", i)
                rooms[dk].posted += t.amount
                if ck in rooms:
                    rooms[ck].posted -= t.amount
            accepted.append(r)
        except TransferRefused as exc:
            for k, posted in before.items():
                rooms[k].posted = posted
            r.error = exc
    if not accepted:
        return
    ts = [(r, t) for r in accepted for t in r.transfers]
    bodies = [t.body() for _, t in ts]
    rows = await conn.fetch(Q.book, [f"transfer:{t.id}" for _, t in ts], [t.id for _, t in ts],
                            [accounts[t.debit_account].id for _, t in ts],
                            [accounts[t.credit_account].id for _, t in ts], [t.asset for _, t in ts],
                            [t.amount for _, t in ts], bodies, [r.actor for r, _ in ts],
                            [linked for r in accepted for linked in [" ".join(x.id for x in r.transfers)] * len(r.transfers)])
    booked = {row["id"]: row for row in rows}
    views = iter(transfer_view(b, booked[b["id"]]["transaction_id"], booked[b["id"]]["created_at"]) for b in bodies)
    for r in accepted:
        r.result = ([next(views) for _ in r.transfers], True)
        m.LEDGER_TRANSFERS.labels("transfer").inc(len(r.transfers))


def _outcome(r: Request) -> tuple[list[dict], bool]:
    if r.error is not None:
        raise r.error
    assert r.result is not None
    return r.result


class _NothingBooked(Exception):
    """rolls back a booking transaction that booked nothing (accounts it created go too)"""


async def _book_or_roll_back(conn: asyncpg.Connection, settings: Settings, reqs: Sequence[Request]) -> None:
    await book_requests(conn, settings, reqs)
    if not any(r.result is not None and r.result[1] for r in reqs):
        raise _NothingBooked


async def _book(pool: asyncpg.Pool, settings: Settings, reqs: Sequence[Request]) -> None:
    try:
        await retrying(pool, lambda conn: _book_or_roll_back(conn, settings, reqs))
    except _NothingBooked:
        pass  # every outcome is set: replays, refusals


async def create_transfers(pool: asyncpg.Pool, settings: Settings, transfers: Sequence[Transfer],
                           actor: str) -> tuple[list[dict], bool]:
    """Book one linked request in a transaction of its own; return (the transfers as stored, created now).
    A refusal rolls the transaction back: it writes nothing at all."""
    r = Request(prepare(transfers), actor)
    await _book(pool, settings, [r])
    return _outcome(r)


class TransferBatcher:
    """Group commit for one process: the requests that arrive while a booking
    transaction runs share the next one (at most `max_transfers` transfers,
    `workers` transactions at a time), each request still all or nothing on
    its own. On a hot account every transaction waits for the one before
    it; sharing one turns that wait into throughput."""

    def __init__(self, workers: int = 2, max_transfers: int = 1000) -> None:
        self.workers, self.max_transfers = workers, max_transfers
        self._queue: collections.deque[tuple[Request, asyncio.Future]] = collections.deque()
        self._active = 0
        self._tasks: set[asyncio.Task] = set()  # held: the loop keeps only weak references

    async def submit(self, pool: asyncpg.Pool, settings: Settings, transfers: Sequence[Transfer],
                     actor: str) -> tuple[list[dict], bool]:
        r = Request(prepare(transfers), actor)
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((r, fut))
        if self._active < self.workers:
            self._active += 1
            task = asyncio.create_task(self._drain(pool, settings))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await fut
        return _outcome(r)

    def _take(self) -> list[tuple[Request, asyncio.Future]]:
        batch, ids, n = [], set(), 0
        while self._queue:
            r, fut = self._queue[0]
            mine = {t.id for t in r.transfers}
            if batch and (mine & ids or n + len(mine) > self.max_transfers):
                break  # a repeated id waits for the next transaction, which replays it
            self._queue.popleft()
            batch.append((r, fut))
            ids |= mine
            n += len(mine)
        return batch

    async def _drain(self, pool: asyncpg.Pool, settings: Settings) -> None:
        try:
            while self._queue:
                batch = self._take()
                reqs = [r for r, _ in batch]
                try:
                    await _book(pool, settings, reqs)
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self._active -= 1


async def frozen_debits(conn: asyncpg.Connection, accounts: Sequence[str]) -> set[str]:
    """The frozen ones among accounts about to be debited, their freeze locks taken shared."""
    from .freeze import frozen_among, lock_debits

    await lock_debits(conn, accounts)
    return await frozen_among(conn, accounts)


# -- reading --------------------------------------------------------------------------

DEBIT_KINDS = frozenset({"wallet", "fee", "adjustment"})


async def account_balances(conn: asyncpg.Connection, code: str, account_id: int | None = None,
                           kind: str | None = None) -> list[dict]:
    """Per asset, in the account's natural sign (integers): balance (every entry), final,
    held, reserved (open payouts from it), pending (held + reserved + unfinal chain value)
    and available (final - held - reserved)."""
    if account_id is None or kind is None:
        row = await conn.fetchrow(Q.account_by_code, code)
        if row is None:
            return []
        account_id, kind = row["id"], row["kind"]
    sign = 1 if kind in DEBIT_KINDS else -1
    out = []
    for r in await conn.fetch(Q.account_summary, account_id, code):
        total, final = sign * int(r["total"]), sign * (int(r["final_chain"]) + int(r["posted"]))
        held, reserved = int(r["held"]), int(r["reserved"])
        out.append({"asset_id": r["asset_id"], "chain": r["chain"], "symbol": r["symbol"], "decimals": r["decimals"],
                    "balance": total, "final": final, "held": held, "reserved": reserved,
                    "pending": held + reserved + (total - final), "available": final - held - reserved})
    return out


async def account_by_ref(conn: asyncpg.Connection, ref: str) -> asyncpg.Record | None:
    """An account by its code or its numeric id."""
    return await conn.fetchrow(Q.account_by_ref, ref, int(ref) if ref.isdigit() and len(ref) <= 18 else None)


def entry_view(r: asyncpg.Record) -> dict:
    return {"id": r["id"], "asset_id": r["asset_id"], "amount": str(int(r["amount"])),
            "transaction_id": r["transaction_id"], "cause": r["cause_kind"], "key": r["idempotency_key"],
            "detail": r["cause"], "chain": r["chain"], "block_number": r["block_number"], "tx_hash": r["tx_hash"],
            "created_at": r["created_at"].isoformat()}


async def entries_page(conn: asyncpg.Connection, account: str | asyncpg.Record, cursor: str = "0:0",
                       limit: int = 100, asset: str | None = None) -> dict | None:
    """One page of an account's postings (+ debit, - credit) with their cause, in commit order
    after `cursor` ('<tx>:<posting id>', the previous page's `next`); None when no such account.

    Only postings of transactions older than every one still running are
    shown, so a page never changes once read and no later commit lands
    before the cursor: paging is stable under concurrent writes."""
    if isinstance(account, str):
        account = await conn.fetchrow(Q.account_by_code, account)
        if account is None:
            return None
    tx, pid = cursor.split(":")
    # Through int: xid8's input reads a leading 0 as octal ('028258' is refused).
    rows = await conn.fetch(Q.entries_page, account["id"], str(int(tx)), int(pid), asset, limit + 1)
    page = rows[:limit]
    return {"account": {"id": account["id"], "code": account["code"], "kind": account["kind"]},
            "entries": [entry_view(r) for r in page],
            "next": f"{page[-1]['tx']}:{page[-1]['id']}" if page else cursor, "more": len(rows) > limit}
