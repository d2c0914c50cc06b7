"""The signed-in wallet's own account (`auth="wallet"`), and the admin's freeze of an account.

Every `/v1/me` route reads the account of the token (`user:<chain>:<address>`,
api/scopes.py `user_account`), never one named in the request: a token
cannot read another account because no route takes one. The session the
token names must still be open (the wrapper checks Postgres).

`POST /v1/me/withdrawals` asks for a payout from that account to the
wallet's own address (or an address in
`[invoices.signin.withdrawals] allowed_addresses`), through the same
admission as an admin payout request (settlement/payouts/requests.py:
available balance, caps, the kill switch later in the pipeline), plus the
configured per-user limits checked under the payer's lock in the same
transaction: minimum, per request, per day (a rolling 24 hours, requests
not cancelled), a cooldown between two. The key is the wallet's own
(stored as `withdrawal:<account>:<key>`): the same key and body replays, a
different body is a 409. A refusal is a 4xx naming the field; a frozen
account is a 403 `account_frozen`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from config.section_invoices import WithdrawalSettings
from db import Queries
from db.values import units_text
from settlement.distributions.entitlements import owed_to
from settlement.invoices.invoices import invoice_view
from settlement.ledger.freeze import frozen_among, frozen_count, list_frozen, set_frozen
from settlement.ledger.transfers import account_balances, entries_page, normalize_account
from settlement.payouts.requests import PayoutError, request_payout

from .admin_routes import PayoutAssetBody, payout_refused
from .distribution_routes import DistId, Entitlements, entitlements_answer
from .http import RequestError, json_response
from .invoice_routes import Invoice
from .ledger_routes import EntriesCursor, EntriesPage
from .routing import ADDRESS_PATTERN, Ident, QueryInt, Routes, Text, Units, UnitsIn
from .scopes import Principal, principal, user_account
from .settlement_routes import PageLimit, PayoutRequest, page_limit, payout_view
from .settlement_routes import Q as READS
from .state import ADMIN_ACTOR, POOL, SETTINGS

Q = Queries(Path(__file__).with_name("wallet_queries.sql"))
routes = Routes("wallet", auth="wallet")
admin_routes = Routes("admin", auth="admin")
FROZEN = {403: "The account is frozen: `error` is account_frozen"}


def _me(request: web.Request) -> tuple[Principal, str]:
    who = principal(request)
    return who, user_account(who)


# -- reads -----------------------------------------------------------------------------------


class LinkedAccount(BaseModel):
    code: str
    exists: bool = Field(description="false until the ledger first books something for it")
    frozen: bool


class Me(BaseModel):
    address: str
    chain: str
    session: str | None
    accounts: list[LinkedAccount] = Field(description="the user accounts this wallet owns")


@routes.get("/v1/me", response=Me)
async def me(request: web.Request) -> web.Response:
    """Who the token is: address, chain, the user accounts it owns"""
    who, code = _me(request)
    async with request.app[POOL].acquire() as conn:
        exists = await conn.fetchval(Q.account_exists, code)
        frozen = bool(await frozen_among(conn, [code]))
    return json_response({"address": who.address, "chain": who.chain, "session": who.session,
                          "accounts": [{"code": code, "exists": bool(exists), "frozen": frozen}]})


class MyBalance(BaseModel):
    asset_id: str
    chain: str
    symbol: str | None
    decimals: int | None
    final: Units = Field(description="final chain data and posted transfers")
    pending: Units = Field(description="held + reserved + chain value not final yet")
    available: Units = Field(description="what a withdrawal may take now")
    units: dict[str, str | None] = Field(description="final, pending and available in asset units, with the "
                                                     "symbol (null where the decimals are unknown)")


class MyBalances(BaseModel):
    account: str
    frozen: bool
    balances: list[MyBalance]


@routes.get("/v1/me/balances", response=MyBalances)
async def my_balances(request: web.Request) -> web.Response:
    """The wallet's balances per asset: final, pending, available (base units, plus asset units)"""
    _, code = _me(request)
    async with request.app[POOL].acquire() as conn:
        rows = await account_balances(conn, code)
        frozen = bool(await frozen_among(conn, [code]))
    out = []
    for r in rows:
        amounts = {k: r[k] for k in ("final", "pending", "available")}
        out.append({"asset_id": r["asset_id"], "chain": r["chain"], "symbol": r["symbol"], "decimals": r["decimals"],
                    **{k: str(v) for k, v in amounts.items()},
                    "units": {k: units_text(v, r["decimals"], r["symbol"]) for k, v in amounts.items()}})
    return json_response({"account": code, "frozen": frozen, "balances": out})


class MyEntitlementsQuery(BaseModel):
    after: DistId | None = Field(
        None, description="the last distribution id of the previous page")
    limit: QueryInt(1, 1000) = 100


@routes.get("/v1/me/entitlements", params=MyEntitlementsQuery, response=Entitlements)
async def my_entitlements(request: web.Request, p: MyEntitlementsQuery) -> web.Response:
    """The wallet's shares in distributions of its chain, with what each still owes it"""
    who, _ = _me(request)
    async with request.app[POOL].acquire() as conn:
        return entitlements_answer(await owed_to(conn, who.address, p.after, p.limit, chain=who.chain))


class MyEntriesQuery(BaseModel):
    limit: PageLimit | None = Field(None, description="Page size")
    cursor: EntriesCursor | None = None
    asset: Ident | None = Field(None, description="Only this asset id")


@routes.get("/v1/me/entries", params=MyEntriesQuery, response=EntriesPage)
async def my_entries(request: web.Request, p: MyEntriesQuery) -> web.Response:
    """The wallet's postings with their cause, oldest first, in commit order (keyset pages)"""
    _, code = _me(request)
    limit = page_limit(p.limit, request.app[SETTINGS].api)
    async with request.app[POOL].acquire() as conn:
        page = await entries_page(conn, code, p.cursor or "0:0", limit, p.asset)
    if page is None:  # nothing booked for it yet: an empty first page
        page = {"account": {"id": 0, "code": code, "kind": "user"}, "entries": [], "next": p.cursor or "0:0",
                "more": False}
    return json_response(page)


class MyPage(BaseModel):
    limit: PageLimit | None = Field(None, description="Page size")
    cursor: QueryInt() | None = Field(None, description="The `next` value of the previous page")


class MyPayout(PayoutRequest):
    direction: Literal["withdrawal", "received"] = Field(
        description="withdrawal: paid from this account; received: paid to this address from another account")


class MyPayouts(BaseModel):
    account: str
    payouts: list[MyPayout]
    next: int | None


@routes.get("/v1/me/payouts", params=MyPage, response=MyPayouts)
async def my_payouts(request: web.Request, p: MyPage) -> web.Response:
    """Payouts from the wallet's account (its withdrawals) and to its address, newest first"""
    who, code = _me(request)
    limit = page_limit(p.limit, request.app[SETTINGS].api)
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(Q.my_payouts, who.chain, who.address, code, p.cursor, limit + 1)
    out = []
    for r in rows[:limit]:
        view = payout_view(r)
        view["from_account"] = r["from_account"]
        view["direction"] = "withdrawal" if r["from_account"] == code else "received"
        out.append(view)
    return json_response({"account": code, "payouts": out, "next": out[-1]["id"] if len(rows) > limit else None})


class MyInvoices(BaseModel):
    account: str
    invoices: list[Invoice]
    next: str | None = Field(description="pass as `cursor` for older invoices")


class MyInvoicesQuery(BaseModel):
    limit: PageLimit | None = Field(None, description="Page size")
    cursor: Ident | None = Field(None, description="The `next` value of the previous page")


@routes.get("/v1/me/invoices", params=MyInvoicesQuery, response=MyInvoices)
async def my_invoices(request: web.Request, p: MyInvoicesQuery) -> web.Response:
    """Invoices booked to the wallet's account, newest first"""
    _, code = _me(request)
    limit = page_limit(p.limit, request.app[SETTINGS].api)
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(Q.my_invoices, code, p.cursor, limit + 1)
    out = [invoice_view(r) for r in rows[:limit]]
    return json_response({"account": code, "invoices": out, "next": out[-1]["id"] if len(rows) > limit else None})


# -- withdrawals -----------------------------------------------------------------------------


class WithdrawalBody(PayoutAssetBody):
    """`chain`: the one the wallet signed in on."""

    amount: UnitsIn(1)
    to: StrictStr | None = Field(None, max_length=128, json_schema_extra={"pattern": ADDRESS_PATTERN},
                                 description="Default: the wallet's own address; else one of the allowed addresses")
    key: Text(r"^[!-~]{1,120}$", "1-120 printable characters without spaces") = Field(
        description="Idempotency key (the wallet's own): the same key and body returns the stored request")


class WithdrawalCreated(BaseModel):
    payout: MyPayout
    created: bool = Field(description="false: the key's stored request")


def _withdrawal_settings(request: web.Request) -> WithdrawalSettings:
    cfg = request.app[SETTINGS].invoices.signin
    if cfg is None or cfg.withdrawals is None:
        raise RequestError(None, "withdrawals are not offered ([invoices.signin.withdrawals])", status=404,
                           code="not_found")
    return cfg.withdrawals


@routes.post("/v1/me/withdrawals", body=WithdrawalBody, response=WithdrawalCreated, status=201,
             responses={200: (WithdrawalCreated, "The key's stored request for this same withdrawal")},
             errors={404: "Withdrawals are not offered", 409: "The key was used for a different withdrawal",
                     **FROZEN})
async def withdraw(request: web.Request, body: WithdrawalBody) -> web.Response:
    """Withdraw from the wallet's account to its own address, idempotent by `key` (audited)

    The same admission as an admin payout request (available balance, caps), plus the
    per-user limits of `[invoices.signin.withdrawals]`: minimum, per request, per day,
    cooldown. A refusal names the field (`amount`, `to`, `asset`, `chain`, `key`).
    """
    who, code = _me(request)
    cfg = _withdrawal_settings(request)
    if body.chain != who.chain:
        raise RequestError("chain", f"this token's account is on {who.chain}; a withdrawal is paid on that chain")
    limit = cfg.limit(body.chain, body.asset)
    if limit is None:
        raise RequestError("asset", f"{body.asset!r} cannot be withdrawn on {body.chain} (no "
                                    "[[invoices.signin.withdrawals.limits]] entry)")
    assert who.address is not None
    to = who.address if body.to is None else (body.to.lower() if body.to.startswith("0x") else body.to)
    if to != who.address and to not in cfg.allowed_addresses:
        raise RequestError("to", "a withdrawal goes to the wallet's own address or an allowed address")
    key = f"withdrawal:{code}:{body.key}"
    amount = body.amount
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        stored = await conn.fetchrow(READS.payout_by_ref, key, None)
    if stored is None:
        if amount < limit.min:
            raise RequestError("amount", f"below the minimum withdrawal {limit.min}")
        if amount > limit.per_request:
            raise RequestError("amount", f"above the per-request limit {limit.per_request}")

    async def admission(conn: asyncpg.Connection, payer: str) -> None:
        # Under the payer's lock, in the admitting transaction: concurrent withdrawals serialize here.
        row = await conn.fetchrow(Q.withdrawn_recently, body.chain, body.asset, payer, "withdrawal:%")
        if row["last_at"] is not None and cfg.cooldown_seconds:
            wait = row["last_at"] + dt.timedelta(seconds=cfg.cooldown_seconds) - row["now"]
            if wait.total_seconds() > 0:
                raise PayoutError("key", f"one withdrawal per {cfg.cooldown_seconds}s; retry in "
                                         f"{max(1, int(wait.total_seconds() + 0.999))}s", code="cooldown")
        if int(row["day_total"]) + amount > limit.per_day:
            raise PayoutError("amount", f"{amount} would exceed the per-day limit {limit.per_day} "
                                        f"({row['day_total']} withdrawn in the last 24 hours)")

    try:
        out, created = await request_payout(pool, request.app[SETTINGS], chain=body.chain, asset=body.asset, to=to,
                                            amount=amount, key=key, actor=f"wallet:{who.chain}:{who.address}",
                                            from_account=code, admission=admission)
    except PayoutError as exc:
        if exc.code == "cooldown":
            raise RequestError(exc.field, exc.reason, status=429, code="cooldown",
                               headers={"Retry-After": str(cfg.cooldown_seconds or 1)}) from None
        err = payout_refused(exc, set(WithdrawalBody.model_fields) | {"from_account"})
        if err.field == "from_account":
            err.field = None
        raise err from None
    async with pool.acquire() as conn:
        row = await conn.fetchrow(READS.payout_by_ref, None, out["id"])
    view = payout_view(row)
    view["from_account"] = row["from_account"]
    view["direction"] = "withdrawal"
    return json_response({"payout": view, "created": created}, status=201 if created else 200)


# -- admin: freeze -----------------------------------------------------------------------------


class UserRef(BaseModel):
    account: Text(r"^user:[A-Za-z0-9_.:@+=-]{1,195}$", "a user account code, user:<chain>:<address>")


class FreezeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The pattern, not only a validator: the document says which text is refused.
    reason: Text(r"^[^\x00-\x08\x0b-\x1f\x7f]{1,500}$", "1-500 characters, no control characters")


class Freeze(BaseModel):
    account: str
    frozen: bool
    changed: bool = Field(description="false: it already was")
    reason: str | None
    actor: str | None
    frozen_at: str | None = Field(json_schema_extra={"format": "date-time"})


class FrozenAccount(BaseModel):
    account: str
    reason: str
    actor: str
    frozen_at: str = Field(json_schema_extra={"format": "date-time"})


class FrozenList(BaseModel):
    accounts: list[FrozenAccount]


async def _set(request: web.Request, account: str, frozen: bool, reason: str) -> web.Response:
    code = normalize_account(account)
    row, changed = await set_frozen(request.app[POOL], code, frozen, reason, request.app[ADMIN_ACTOR])
    return json_response({"account": code, "frozen": frozen, "changed": changed,
                          **{k: (row or {}).get(k) for k in ("reason", "actor", "frozen_at")}})


@admin_routes.post("/v1/admin/users/{account}/freeze", params=UserRef, body=FreezeBody, response=Freeze)
async def freeze(request: web.Request, p: UserRef, body: FreezeBody) -> web.Response:
    """Freeze a user account: no withdrawal, transfer, hold or payout debits it (audited, with the reason)"""
    return await _set(request, p.account, True, body.reason)


@admin_routes.post("/v1/admin/users/{account}/unfreeze", params=UserRef, body=FreezeBody, response=Freeze)
async def unfreeze(request: web.Request, p: UserRef, body: FreezeBody) -> web.Response:
    """Unfreeze a user account (audited, with the reason)"""
    return await _set(request, p.account, False, body.reason)


@admin_routes.get("/v1/admin/users/frozen", response=FrozenList)
async def frozen(request: web.Request) -> web.Response:
    """The frozen accounts, oldest freeze first"""
    async with request.app[POOL].acquire() as conn:
        rows = await list_frozen(conn)
        await frozen_count(conn)
    return json_response({"accounts": rows})


def register(app: web.Application, *, admin: bool, wallet: bool) -> None:
    if wallet:
        app.add_routes(routes)
    if admin:
        app.add_routes(admin_routes)

