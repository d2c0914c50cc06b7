"""The double-entry ledger: assets, accounts, balanced transactions, pauses.

Amounts are integers in base units; a posting is positive for a debit and
negative for a credit, and every transaction sums to zero per asset (the
database refuses anything else, see 0002_ledger.sql). Every transaction has
an idempotency key and names its cause: an event (booked by the rules in
ledger.hook), a payout, a manual adjustment (author and reason) or an
opening balance read from the chain.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from config import ChainsettleError, ConfigError, Settings
from config.logs import get_logger
from db import Queries, audit
from db.values import amount_text
from indexer.chain_state import final_height
from settlement.ledger import metrics as m
from settlement.ledger.rules import (
    asset_specs,
    check_ledger_config,
    fee_account,
    opening_account,
    wallet_account,
    wallet_specs,
)

if TYPE_CHECKING:  # pragma: no cover
    from .balances import BalanceReader

Q = Queries(Path(__file__).with_name("ledger.sql"))
log = get_logger("settlement.ledger.books")
CAUSES = ("event", "payout", "manual", "opening")
# Debit-natured accounts hold what the chain holds (wallets), or what was
# spent (fees) or written off (adjustment); every other kind (user, app,
# equity, external) carries a credit balance: what is owed. Shown balances
# are positive in both cases: what is held, or what is owed (0002_ledger.sql).
DEBIT_KINDS = frozenset({"wallet", "fee", "adjustment"})


def account_kind(code: str) -> str:
    return code.split(":", 1)[0]


def shown_balance(kind: str, posted_sum: int):
    """The balance as the API and the CLI show it: held or owed, positive (posted_sum is debit-positive)."""
    return posted_sum if kind in DEBIT_KINDS else -posted_sum


class LedgerError(ChainsettleError):
    """ledger error"""


class UnbalancedTransaction(LedgerError):
    """a ledger transaction does not balance"""


class NoOpenPause(LedgerError):
    """the asset has no open pause"""


@dataclass(frozen=True)
class Posting:
    account: str  # account code, e.g. wallet:anvil:0xab..
    asset_id: str
    amount: int  # base units; + debit, - credit


# -- configuration into rows ----------------------------------------------------


async def sync_ledger(conn: asyncpg.Connection, settings: Settings, chain: str | None = None) -> None:
    """Upsert assets, the fixed accounts and the configured wallets (one chain or all).

    Runs inside the caller's transaction when there is one (the ledger hook
    calls it within a range commit). The chain row is locked while wallets
    are written, so a wallet's start height and the ranges booked for it
    cannot interleave.
    """
    check_ledger_config(settings)
    chains = [c for c in settings.chains if chain is None or c.name == chain]
    names = {c.name for c in chains}
    async with conn.transaction():
        # Chain rows first, in name order: the same order as range commits,
        # which lock their chain row before anything else.
        cursors = {}
        for c in sorted(chains, key=lambda c: c.name):
            locked = await conn.fetchrow(Q.lock_chain, c.name)
            cursors[c.name] = locked["cursor_number"] if locked else None
        for a in asset_specs(settings):
            if a.chain not in names:
                continue
            row = await conn.fetchrow(Q.upsert_asset, a.id, a.chain, a.name, a.kind, a.contract, a.currency,
                                      a.issuer, a.symbol, a.decimals)
            if (row["kind"], row["contract"], row["currency"], row["issuer"]) != (a.kind, a.contract, a.currency, a.issuer):
                raise ConfigError(
                    f"asset {a.id} is stored as {row['kind']} {row['contract'] or ''}{row['currency'] or ''} "
                    f"{row['issuer'] or ''}, but configured differently; an asset's identity cannot change"
                )
        for c in chains:
            await conn.execute(Q.upsert_account, fee_account(c.name), "fee", f"{c.name} fees")
            await conn.execute(Q.upsert_account, opening_account(c.name), "equity", f"{c.name} opening balances")
            wallets = [w for w in wallet_specs(settings) if w.chain == c.name]
            for w in wallets:
                account_id = await conn.fetchval(Q.upsert_account, w.account_code, "wallet", w.name)
                await conn.execute(Q.upsert_wallet, c.name, w.address, w.name, account_id, list(w.asset_ids),
                                   cursors[c.name])
            await conn.execute(Q.deactivate_wallets, c.name, [w.address for w in wallets])
            for account in sorted({f.account for f in settings.ledger.funders if f.chain == c.name}):
                await conn.execute(Q.upsert_account, account, "app", None)


# -- posting --------------------------------------------------------------------


def check_balanced(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise UnbalancedTransaction("a ledger transaction needs at least two postings")
    sums: dict[str, int] = defaultdict(int)
    for p in postings:
        if not isinstance(p.amount, int) or isinstance(p.amount, bool):
            raise UnbalancedTransaction(f"posting to {p.account}: amount must be an integer in base units")
        sums[p.asset_id] += p.amount
    off = {a: s for a, s in sums.items() if s}
    if off:
        raise UnbalancedTransaction(f"postings do not sum to zero per asset: {off}")


async def post_transaction(
    conn: asyncpg.Connection,
    *,
    key: str,
    cause_kind: str,
    cause: dict,
    chain: str,
    block_number: int,
    postings: Sequence[Posting],
    event_id: int | None = None,
    payout_id: str | None = None,
    author: str | None = None,
    reason: str | None = None,
    tx_hash: str | None = None,
) -> int | None:
    """Book one balanced transaction; None when `key` was booked before (idempotent)."""
    if cause_kind not in CAUSES:
        raise LedgerError(f"cause_kind must be one of {', '.join(CAUSES)}")
    check_balanced(postings)
    async with conn.transaction():
        await conn.execute(Q.upsert_accounts, [p.account for p in postings])
        tx_id = await conn.fetchval(Q.insert_transaction, key, cause_kind, cause, event_id, payout_id, author,
                                    reason, chain, block_number, tx_hash)
        if tx_id is None:
            return None
        status = await conn.execute(Q.insert_postings, tx_id, [p.account for p in postings],
                                    [p.asset_id for p in postings], [p.amount for p in postings])
        if int(status.rsplit(" ", 1)[1]) != len(postings):
            raise LedgerError(f"transaction {key}: an asset of its postings is unknown")
    m.LEDGER_TRANSACTIONS.labels(chain, cause_kind).inc()
    return tx_id


async def book_adjustment(pool: asyncpg.Pool, **kw) -> int | None:
    """`book_adjustment_in` on a connection of `pool`; the keywords are its."""
    async with pool.acquire() as conn:
        return await book_adjustment_in(conn, **kw)


async def book_adjustment_in(
    conn: asyncpg.Connection,
    *,
    chain: str,
    postings: Sequence[Posting],
    author: str,
    reason: str,
    block_number: int | None = None,
    tx_hash: str | None = None,
    key: str | None = None,
    via: str | None = None,
) -> int | None:
    """A manual correction, effective at `block_number` (default: the chain's final height).

    The usual one explains a movement the rules do not book, e.g. a transfer
    out of a wallet made outside the daemon: credit the wallet, debit an
    external or adjustment account, citing the transaction hash. The entry
    and its audit row commit together; None when `key` was booked before
    (nothing is written then). `via` names the channel in the audit row
    (the CLI, an admin token's label). settlement/ledger/adjust.py checks an
    operator's input before calling this.
    """
    if not author or not reason or not reason.strip():
        raise LedgerError("a manual adjustment needs an author and a reason")
    if block_number is None:
        block_number = await final_height(conn, chain)
        if block_number is None:
            raise LedgerError(f"chain {chain!r} has no final height yet; give the block explicitly")
    key = key or f"manual:{uuid.uuid4()}"
    cause = {"author": author, "reason": reason, "tx_hash": tx_hash}
    async with conn.transaction():
        tx_id = await post_transaction(conn, key=key, cause_kind="manual", cause=cause, chain=chain,
                                       block_number=block_number, postings=postings, author=author,
                                       reason=reason, tx_hash=tx_hash)
        if tx_id is None:
            return None
        await audit(conn, author, "ledger.adjustment", key, {
            "chain": chain, "block_number": block_number, "reason": reason, "tx_hash": tx_hash,
            "transaction_id": tx_id, "via": via,
            "postings": [{"account": p.account, "asset": p.asset_id, "amount": amount_text(p.amount)} for p in postings],
        })
    log.info("ledger.adjustment", chain=chain, key=key, author=author, block_number=block_number)
    return tx_id


def opening_key(chain: str, address: str, asset_id: str) -> str:
    return f"opening:{chain}:{address}:{asset_id}"


async def post_opening(conn: asyncpg.Connection, chain: str, address: str, asset_id: str, height: int, amount: int) -> int | None:
    """The balance a wallet already held when the books started for it."""
    return await post_transaction(
        conn, key=opening_key(chain, address, asset_id), cause_kind="opening",
        cause={"wallet": address, "asset": asset_id, "height": height, "amount": amount_text(amount)},
        chain=chain, block_number=height,
        postings=[Posting(wallet_account(chain, address), asset_id, amount),
                  Posting(opening_account(chain), asset_id, -amount)],
    )


async def ensure_openings(pool: asyncpg.Pool, chain: str, reader: "BalanceReader") -> int:
    """Read and book missing opening balances of one chain; return how many were booked.

    Safe to call any time and from several processes: the balance is read
    at the wallet's fixed start height and the key makes it book once.
    """
    from .balances import BalanceQuery

    async with pool.acquire() as conn:
        missing = await conn.fetch(Q.missing_openings, chain)
        assets = {r["id"]: r for r in await conn.fetch(Q.assets_of_chain, chain)}
    booked = 0
    by_height: dict[int, list] = defaultdict(list)
    for r in missing:
        by_height[r["tracked_from"]].append(r)
    for height, rows in sorted(by_height.items()):
        queries = [BalanceQuery(r["address"], assets[r["asset_id"]]) for r in rows]
        floor = getattr(reader, "first_state", 0)
        if height >= 1 or (floor is not None and height >= floor - 1):
            values = await reader.balances(max(height, floor or 0), queries)
        else:
            values = [0] * len(rows)
        async with pool.acquire() as conn:
            for r, value in zip(rows, values):
                if await post_opening(conn, chain, r["address"], r["asset_id"], height, value) is not None:
                    booked += 1
                    log.info("ledger.opening_balance", chain=chain, wallet=r["name"], asset=r["asset_id"],
                             height=height, amount=amount_text(value))
    return booked


async def fill_decimals(pool: asyncpg.Pool, chain: str, reader: "BalanceReader") -> None:
    """ERC-20 decimals not set in the config, read once from the contract."""
    async with pool.acquire() as conn:
        rows = [r for r in await conn.fetch(Q.assets_of_chain, chain) if r["decimals"] is None]
    for r in rows:
        value = await reader.decimals(r)
        if value is not None:
            async with pool.acquire() as conn:
                await conn.execute(Q.set_decimals, r["id"], value)


# -- reading ----------------------------------------------------------------------


async def balances_as_of(conn: asyncpg.Connection, chain: str, height: int) -> dict[tuple[str, str], int]:
    """{(account code, asset id): balance} from the entries effective at or below `height`."""
    rows = await conn.fetch(Q.balances_as_of, chain, height)
    return {(r["account"], r["asset_id"]): int(r["balance"]) for r in rows}


async def wallet_balances_as_of(conn: asyncpg.Connection, chain: str, height: int) -> list[asyncpg.Record]:
    """Each active wallet and the assets it reconciles, with the ledger balance as of `height`."""
    return await conn.fetch(Q.wallet_balances_as_of, chain, height)


async def assets_of_chain(conn: asyncpg.Connection, chain: str) -> dict[str, asyncpg.Record]:
    return {r["id"]: r for r in await conn.fetch(Q.assets_of_chain, chain)}
