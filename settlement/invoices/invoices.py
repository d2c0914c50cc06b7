"""Creating and reading invoices.

An invoice asks for `amount` base units of one asset of a chain, paid to a
configured wallet that the indexer watches for that asset, and says how a
payment is recognised (`match_method`):

- `destination_tag` (XRPL): a tag unique to this invoice on this wallet;
- `memo` (XRPL): a memo (MemoData text) unique to this invoice on this wallet;
- `payer` (EVM or XRPL): any transfer from this address (bind the payer
  first, e.g. through wallet sign-in);
- `amount`: a transfer of exactly this amount (± tolerance); the amount is
  unique among the wallet's waiting invoices of the asset.

Matching happens only in the follower's transaction (`hook.InvoiceHook`),
from indexed data; this module only validates and stores the request.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from config import Settings
from config.errors import FieldError
from db import Queries
from db.audit import audit
from db.values import amount_text
from indexer.chain_state import heights
from settlement.ledger.rules import asset_specs, norm_address

Q = Queries(Path(__file__).with_name("invoices.sql"))
METHODS = ("destination_tag", "memo", "payer", "amount")
STATES = ("new", "seen", "paid", "underpaid", "overpaid", "expired", "paid_late", "reverted", "invalid")
MAX_UNITS = 2**256 - 1


class InvoiceError(FieldError):
    """invoice refused"""


@dataclass(frozen=True)
class InvoiceRequest:
    chain: str
    asset: str
    amount: int
    wallet: str
    app_ref: str
    account: str
    match_method: str
    expires_in: int | None = None  # seconds from now; default from config
    tolerance: int = 0
    destination_tag: int | None = None
    memo: str | None = None
    payer: str | None = None


def _check_address(kind: str, value: str, field: str) -> str:
    if kind == "evm":
        if not (isinstance(value, str) and len(value) == 42 and value[:2] == "0x"
                and all(c in "0123456789abcdefABCDEF" for c in value[2:])):
            raise InvoiceError(field, "must be a 0x-prefixed 20-byte hex address")
        return value.lower()
    from xrpl.core.addresscodec import is_valid_classic_address

    if not is_valid_classic_address(value):
        raise InvoiceError(field, "must be a classic XRPL address (r...)")
    return value


def validate(settings: Settings, req: InvoiceRequest) -> dict:
    """The row to store, or InvoiceError naming the field."""
    names = [c.name for c in settings.chains]
    if req.chain not in names:
        raise InvoiceError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    chain = settings.chain(req.chain)
    wallet = _check_address(chain.kind, req.wallet, "wallet")
    configured = {norm_address(chain.kind, w.address): w for w in chain.wallets}
    w = configured.get(wallet)
    if w is None:
        raise InvoiceError("wallet", "not a configured wallet of the chain: only watched wallets' payments are indexed")
    if req.asset not in w.assets:
        raise InvoiceError("asset", f"the wallet is not watched for this asset (its assets: {', '.join(w.assets)})")
    spec = next((a for a in asset_specs(settings) if a.chain == req.chain and a.name == req.asset), None)
    if spec is None:
        raise InvoiceError("asset", "not a ledger asset of the chain (an XRPL currency needs [[ledger.assets]])")
    if spec.kind == "xrpl_iou" and spec.decimals is None:
        raise InvoiceError("asset", "the issued currency has no decimals configured")
    if not 0 < req.amount <= MAX_UNITS:
        raise InvoiceError("amount", "must be a positive integer in base units, below 2**256")
    if not 0 <= req.tolerance < req.amount:
        raise InvoiceError("tolerance", "must be a non-negative integer in base units, below the amount")
    if req.match_method not in METHODS:
        raise InvoiceError("match_method", f"must be one of {', '.join(METHODS)}")
    if req.match_method in ("destination_tag", "memo") and chain.kind != "xrpl":
        raise InvoiceError("match_method", "destination tags and memos exist only on XRPL; use payer or amount")
    if (req.destination_tag is not None) != (req.match_method == "destination_tag"):
        raise InvoiceError("destination_tag", "is required with match_method destination_tag, and only then")
    if req.destination_tag is not None and not 0 <= req.destination_tag <= 2**32 - 1:
        raise InvoiceError("destination_tag", "must be between 0 and 4294967295")
    if (req.memo is not None) != (req.match_method == "memo"):
        raise InvoiceError("memo", "is required with match_method memo, and only then")
    if req.memo is not None and not (0 < len(req.memo) <= 200 and req.memo.isprintable()):
        raise InvoiceError("memo", "must be 1-200 printable characters (matched against MemoData as UTF-8)")
    payer = None
    if req.payer is not None:
        payer = _check_address(chain.kind, req.payer, "payer")
    if req.match_method == "payer" and payer is None:
        raise InvoiceError("payer", "is required with match_method payer")
    if not req.account.startswith("user:") or len(req.account) > 200 or len(req.account) < 6:
        raise InvoiceError("account", "must be a ledger user account code, e.g. user:<app id>")
    cfg = settings.invoices
    expires_in = cfg.default_expiry_seconds if req.expires_in is None else req.expires_in
    if not 0 < expires_in <= cfg.max_expiry_seconds:
        raise InvoiceError("expires_in", f"must be between 1 and {cfg.max_expiry_seconds} seconds")
    if not 0 < len(req.app_ref) <= 200:
        raise InvoiceError("app_ref", "must be 1-200 characters")
    return {
        "chain": req.chain, "asset": req.asset, "asset_id": spec.id, "asset_kind": spec.kind,
        "contract": spec.contract, "currency": spec.currency, "issuer": spec.issuer, "decimals": spec.decimals,
        "amount": req.amount, "tolerance": req.tolerance, "wallet": wallet, "match_method": req.match_method,
        "destination_tag": req.destination_tag, "memo": req.memo, "payer": payer, "account": req.account,
        "expires_in": expires_in, "app_ref": req.app_ref,
    }


async def chain_head(cfg) -> int | None:
    """The chain's current head (EVM) or validated ledger (XRPL), asked from its RPC; None if it cannot say."""
    from indexer.errors import BadRpcResponse, RpcError

    try:
        if cfg.kind == "evm":
            from indexer.evm.rpc import EvmRpc

            rpc = EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=min(cfg.max_attempts, 3))
            try:
                return int(await rpc.call("eth_blockNumber", []), 16)
            finally:
                await rpc.close()
        from indexer.xrpl.client import XrplClient

        client = XrplClient(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout,
                            max_attempts=min(cfg.max_attempts, 3))
        try:
            res = await client.request("ledger", {"ledger_index": "validated"})
        finally:
            await client.close()
        return int(res["ledger_index"])
    except (RpcError, BadRpcResponse, OSError, KeyError, TypeError, ValueError):
        return None


def _same(stored: asyncpg.Record, row: dict) -> bool:
    keys = ("chain", "asset", "amount", "tolerance", "wallet", "match_method", "destination_tag", "memo", "payer",
            "account")
    return all(stored[k] == row[k] for k in keys)


async def create_invoice(pool: asyncpg.Pool, settings: Settings, req: InvoiceRequest, *,
                         actor: str = "cli") -> tuple[dict, bool]:
    """(invoice, created). The same app_ref for the same invoice returns the stored one;
    for a different one it is refused (code conflict)."""
    row = validate(settings, req)
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=row["expires_in"])
    inv_id = "inv_" + secrets.token_hex(12)
    async with pool.acquire() as conn:
        h = await heights(conn, row["chain"])
        seen_head = await conn.fetchval(Q.head_number, row["chain"])
    # Only transfers after the invoice pay it: after_block is the chain's
    # final height. With none indexed yet (a new chain, a first backfill
    # still running), a head the follower saw, else the chain's head now;
    # with no answer either, the hook binds it to the indexed head before
    # matching (hook.InvoiceHook). Never unbounded: history would pay it.
    after = h.final if h is not None and h.final is not None else seen_head
    if after is None:
        after = await chain_head(settings.chain(row["chain"]))
    async with pool.acquire() as conn, conn.transaction():
        try:
            stored = await conn.fetchrow(
                Q.insert_invoice, inv_id, row["app_ref"], row["chain"], row["asset"], row["asset_id"],
                row["asset_kind"], row["contract"], row["currency"], row["issuer"], row["decimals"], row["amount"],
                row["tolerance"], row["wallet"], row["match_method"], row["destination_tag"], row["memo"],
                row["payer"], row["account"], expires_at, actor, after)
        except asyncpg.UniqueViolationError as exc:
            field = {"invoices_tag": "destination_tag", "invoices_memo": "memo",
                     "invoices_unique_amount": "amount"}.get(exc.constraint_name or "", "app_ref")
            raise InvoiceError(field, "already used by another invoice of this wallet", code="conflict") from None
        if stored is None:
            existing = await conn.fetchrow(Q.invoice_by_ref, row["app_ref"])
            if existing is not None and _same(existing, row):
                return invoice_view(existing), False
            raise InvoiceError("app_ref", "already used for a different invoice", code="conflict")
        await audit(conn, actor, "invoice.created", stored["id"],
                           {"app_ref": row["app_ref"], "chain": row["chain"], "asset": row["asset"],
                            "amount": amount_text(row["amount"]), "match_method": row["match_method"]})
        full = await conn.fetchrow(Q.invoice_by_ref, stored["id"])
    return invoice_view(full), True


async def get_invoice(pool: asyncpg.Pool, ref: str) -> dict | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(Q.invoice_by_ref, ref)
    return invoice_view(row) if row else None


async def list_invoices(pool: asyncpg.Pool, chain: str | None = None, state: str | None = None,
                        limit: int = 100) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.list_invoices, chain, state, limit)
    return [invoice_view(r) for r in rows]


async def cancel_invoice(pool: asyncpg.Pool, ref: str, reason: str, actor: str) -> dict | None:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.cancel_invoice, ref, reason)
        if row is None:
            return None
        await audit(conn, actor, "invoice.cancelled", row["id"], {"reason": reason})
        full = await conn.fetchrow(Q.invoice_by_ref, row["id"])
    return invoice_view(full)


def invoice_view(row: asyncpg.Record) -> dict:
    out = {
        "id": row["id"], "app_ref": row["app_ref"], "chain": row["chain"], "asset": row["asset"],
        "asset_id": row["asset_id"], "amount": amount_text(row["amount"]), "tolerance": amount_text(row["tolerance"]),
        "wallet": row["wallet"], "match_method": row["match_method"], "destination_tag": row["destination_tag"],
        "memo": row["memo"], "payer": row["payer"], "account": row["account"], "state": row["state"],
        "received": amount_text(row["received"]), "shortfall": amount_text(row["shortfall"]), "excess": amount_text(row["excess"]),
        "reason": row["reason"], "after_block": row["after_block"], "expires_at": row["expires_at"].isoformat(),
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
        "settled_at": row["settled_at"].isoformat() if row["settled_at"] else None,
    }
    if "payments" in row.keys():
        out["payments"] = row["payments"]
    return out
