"""Verify one given transaction against an expectation: `POST /v1/verify-payment`.

The answer comes from the indexed data when the receiving wallet is a
watched one (what the follower stored, with its claims and finality), and
from the chain otherwise: EVM `eth_getTransactionReceipt` and its logs (plus
the transaction's own value for the native coin: internal calls are not
seen), XRPL `tx` with `meta.delivered_amount`, only once validated. For a
watched wallet whose transaction is not indexed yet, a good chain answer is
at most `pending`: money is decided from indexed data only.

Statuses: not_found, pending (with confirmations), paid_final, underpaid
(with the shortfall), wrong_asset, wrong_recipient (another account, or
another destination tag / memo), wrong_payer (the expectation binds a payer
and the transfer is someone else's), failed_tx, already_claimed (an
invoice other than the given one claimed the transfer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import asyncpg

from config import ChainConfig, Settings
from db import Queries
from db.values import amount_text
from settlement.invoices.invoices import InvoiceError
from settlement.ledger.rules import AssetSpec, asset_specs, norm_address

Q = Queries(Path(__file__).with_name("invoices.sql"))
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_EVM_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_XRPL_HASH = re.compile(r"^[0-9A-Fa-f]{64}$")


@dataclass(frozen=True)
class Expectation:
    chain: str
    tx_hash: str
    to: str | None = None
    asset: str | None = None
    min_amount: int | None = None
    destination_tag: int | None = None
    memo: str | None = None
    payer: str | None = None
    invoice: str | None = None  # invoice id: to/asset/amount/tag/memo/payer come from it, nothing else may
    claim_key: str | None = None  # without an invoice: a paid_final answer claims the transfer for this key


@dataclass
class Transfer:
    log_index: int
    asset_kind: str
    contract: str | None
    currency: str | None
    issuer: str | None
    recipient: str
    payer: str | None
    value: Any
    destination_tag: str | None = None
    memos: list | None = None
    claimed_by: str | None = None  # an invoice it was allocated to (the first)
    claim_key: str | None = None
    allocated_to: tuple = ()
    allocated_here: int | None = None  # the part allocated to the invoice asked about
    event_id: int | None = None
    block_number: int | None = None

    @property
    def claimed(self) -> bool:
        return bool(self.allocated_to) or self.claimed_by is not None or self.claim_key is not None

    def held_by(self, invoice: str | None, claim_key: str | None) -> bool:
        """Claimed for this invoice or this claim key."""
        return ((invoice is not None and (self.claimed_by == invoice or invoice in self.allocated_to))
                or (claim_key is not None and self.claim_key == claim_key))


def units(value: Any, spec: AssetSpec) -> int | None:
    try:
        if isinstance(value, dict):
            x = Decimal(str(value.get("value"))) * (Decimal(10) ** (spec.decimals or 0))
        else:
            x = Decimal(str(value))
    except InvalidOperation:
        return None
    return int(x) if x == x.to_integral_value() and x >= 0 else None


def _same_asset(t: Transfer, spec: AssetSpec) -> bool:
    if t.asset_kind != spec.kind:
        return False
    if spec.kind == "erc20":
        return t.contract == spec.contract
    if spec.kind == "xrpl_iou":
        return (t.currency, t.issuer) == (spec.currency, spec.issuer)
    return True


def narrow(transfers: list[Transfer], *, to: str, spec: AssetSpec, tag: int | None, memo: str | None,
           payer: str | None) -> list[Transfer] | dict[str, Any]:
    """The transfers that fit the recipient, asset, tag, memo and payer, or the verdict why none does (pure)."""
    if not transfers:
        return {"status": "not_found", "reason": "the transaction moves no transfer"}
    mine = [t for t in transfers if t.recipient == to]
    if not mine:
        return {"status": "wrong_recipient", "reason": "no transfer to the expected recipient"}
    mine = [t for t in mine if _same_asset(t, spec)]
    if not mine:
        return {"status": "wrong_asset", "reason": "the transfer to the recipient is of another asset"}
    if tag is not None:
        mine = [t for t in mine if t.destination_tag == str(tag)]
        if not mine:
            return {"status": "wrong_recipient", "reason": "another destination tag"}
    if memo is not None:
        mine = [t for t in mine if any(m.get("data") == memo for m in (t.memos or []))]
        if not mine:
            return {"status": "wrong_recipient", "reason": "another memo"}
    if payer is not None:
        mine = [t for t in mine if t.payer == payer]
        if not mine:
            return {"status": "wrong_payer", "reason": "the transfer is not from the expected payer"}
    return mine


def taken_verdict(mine: list[Transfer]) -> dict[str, Any]:
    t = mine[0]
    if t.claim_key is not None:
        return {"status": "already_claimed", "claimed_by": None, "claim_key": t.claim_key,
                "reason": "the transfer was claimed for another purpose (claim key)"}
    return {"status": "already_claimed", "claimed_by": t.claimed_by, "reason": "the transfer settles another invoice"}


def classify(transfers: list[Transfer], *, to: str, spec: AssetSpec, min_amount: int, tag: int | None,
             memo: str | None, payer: str | None, final: bool, confirmations: int,
             invoice: str | None = None, claim_key: str | None = None) -> dict[str, Any]:
    """The verdict over a transaction's incoming transfers (pure). verify-payment uses it for
    expectations without an invoice (an invoice's own rules are in verify_invoice)."""
    mine = narrow(transfers, to=to, spec=spec, tag=tag, memo=memo, payer=payer)
    if isinstance(mine, dict):
        return mine
    free = [t for t in mine if not t.claimed or t.held_by(invoice, claim_key)]
    if not free:
        return taken_verdict(mine)
    amounts = [a for a in (units(t.value, spec) for t in free) if a is not None]
    amount = sum(amounts)
    out: dict[str, Any] = {"amount": amount_text(amount), "payer": free[0].payer, "confirmations": confirmations,
                           "log_indexes": [t.log_index for t in free]}
    if not final:
        return {"status": "pending", **out}
    if amount < min_amount:
        return {"status": "underpaid", "shortfall": amount_text(min_amount - amount), **out}
    return {"status": "paid_final", **out}


INTERNAL_NOTE = ("native coin moved by a contract's internal calls is not seen (only top-level transaction "
                 "value and logs are read)")


def _note(out: dict[str, Any], cfg: ChainConfig, spec: AssetSpec) -> dict[str, Any]:
    if cfg.kind == "evm" and spec.kind == "native" and out["status"] in ("not_found", "wrong_recipient", "wrong_asset"):
        return {**out, "note": INTERNAL_NOTE}
    return out


def _predates(out: dict[str, Any], after_block: int | None, block: int | None) -> dict[str, Any]:
    """An invoice is paid only by transfers after it was made: an older one (a
    plain deposit, another order's payment) is not this invoice's payment."""
    if after_block is None or block is None or block > after_block:
        return out
    if out["status"] in ("paid_final", "underpaid", "pending"):
        return {"status": "not_found", "reason": "the transfer predates the invoice"}
    return out


def _norm_hash(cfg: ChainConfig, value: str) -> str:
    if cfg.kind == "evm":
        if not _EVM_HASH.match(value):
            raise InvoiceError("tx_hash", "must be 0x and 64 hex digits")
        return value.lower()
    if not _XRPL_HASH.match(value):
        raise InvoiceError("tx_hash", "must be 64 hex digits (an XRPL transaction hash)")
    return value.upper()


def transfer_of(r: asyncpg.Record) -> Transfer:
    allocated = tuple(r["allocated_to"] or ())
    return Transfer(r["log_index"], r["asset_kind"], r["contract"], r["currency"], r["issuer"], r["recipient"],
                    r["payer"], r["value"], r["destination_tag"], r["memos"], allocated[0] if allocated else None,
                    r["claim_key"], allocated, None if r["allocated_here"] is None else int(r["allocated_here"]),
                    r["event_id"], r["block_number"])


async def verify_payment(pool: asyncpg.Pool, settings: Settings, exp: Expectation) -> dict[str, Any]:
    names = [c.name for c in settings.chains]
    if exp.chain not in names:
        raise InvoiceError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    cfg = settings.chain(exp.chain)
    tx_hash = _norm_hash(cfg, exp.tx_hash)
    to, asset, min_amount, tag, memo, payer = (exp.to, exp.asset, exp.min_amount, exp.destination_tag, exp.memo,
                                               exp.payer)
    after_block = None
    inv = None
    if exp.invoice is not None:
        async with pool.acquire() as conn:
            inv = await conn.fetchrow(Q.invoice_by_ref, exp.invoice)
        # By id only: app references are guessable and this route is public.
        if inv is None or inv["id"] != exp.invoice:
            raise InvoiceError("invoice", "no invoice with this id", code="not_found")
        for field in ("to", "asset", "min_amount", "destination_tag", "memo", "payer", "claim_key"):
            if getattr(exp, field) is not None:
                raise InvoiceError(field, "is given by the invoice; send either an invoice or an expectation")
        if inv["chain"] != exp.chain:
            raise InvoiceError("chain", f"the invoice is on chain {inv['chain']}")
        to, asset, tag, memo = inv["wallet"], inv["asset"], inv["destination_tag"], inv["memo"]
        min_amount = int(inv["amount"] - inv["tolerance"])
        payer = inv["payer"]
        after_block = inv["after_block"]
    for field, value in (("to", to), ("asset", asset), ("min_amount", min_amount)):
        if value is None:
            raise InvoiceError(field, "is required (or give an invoice)")
    if min_amount < 1:
        raise InvoiceError("min_amount", "must be a positive integer in base units (0 would accept any transfer)")
    if exp.claim_key is not None and not 0 < len(exp.claim_key) <= 200:
        raise InvoiceError("claim_key", "must be 1-200 characters")
    to = norm_address(cfg.kind, to)
    payer = norm_address(cfg.kind, payer) if payer else None
    spec = next((a for a in asset_specs(settings) if a.chain == cfg.name and a.name == asset), None)
    if spec is None:
        raise InvoiceError("asset", "not an asset of the chain ('native', a contract name or a configured currency)")
    watched = any(norm_address(cfg.kind, w.address) == to and asset in w.assets for w in cfg.wallets)
    rules = dict(to=to, spec=spec, tag=tag, memo=memo, payer=payer)
    if watched:
        if inv is not None:
            from settlement.invoices.verify_invoice import for_invoice

            out = await for_invoice(pool, cfg, spec, inv["id"], tx_hash)
            if out is not None:
                return _note(out, cfg, spec)
        else:
            async with pool.acquire() as conn:
                rows = await conn.fetch(Q.transfers_of_tx, cfg.name, tx_hash, None)
            if rows:
                final_number = rows[0]["final_number"] if rows[0]["final_number"] is not None else -1
                top = rows[0]["cursor_number"] or 0
                block = max(r["block_number"] for r in rows)
                transfers = [transfer_of(r) for r in rows]
                out = classify(transfers, final=block <= final_number, confirmations=max(0, top - block + 1),
                               min_amount=min_amount, claim_key=exp.claim_key, **rules)
                out = await _claim_for_key(pool, cfg, exp.claim_key, tx_hash, transfers, out, spec)
                return _note({**out, "source": "index", "tx_hash": tx_hash, "block_number": block}, cfg, spec)
        async with pool.acquire() as conn:
            failed = await conn.fetchrow(Q.failed_xrpl_tx, cfg.name, tx_hash)
        if failed is not None:
            return {"status": "failed_tx", "reason": failed["result"], "source": "index", "tx_hash": tx_hash}
    if cfg.kind == "evm":
        transfers, final, confirmations, block, failure = await _evm_chain(cfg, tx_hash)
    else:
        transfers, final, confirmations, block, failure = await _xrpl_chain(cfg, tx_hash)
    if failure is not None:
        return _note({"status": failure[0], "reason": failure[1], "source": "chain", "tx_hash": tx_hash}, cfg, spec)
    if transfers:
        async with pool.acquire() as conn:
            claims = {r["log_index"]: r for r in await conn.fetch(Q.claims_of_tx, cfg.name, tx_hash)}
        for t in transfers:
            c = claims.get(t.log_index)
            if c is not None:
                t.allocated_to = tuple(c["allocated_to"] or ())
                t.claimed_by = t.allocated_to[0] if t.allocated_to else None
                t.claim_key = c["claim_key"]
            t.block_number = block
    # Money for an invoice or a watched wallet is decided from indexed data only.
    out = classify(transfers, final=final and not watched and inv is None, confirmations=confirmations,
                   min_amount=min_amount, invoice=exp.invoice, claim_key=exp.claim_key, **rules)
    out = _note(_predates(out, after_block, block), cfg, spec)
    if watched and out["status"] == "pending":
        out["reason"] = "on chain, not indexed yet"
    if inv is None:
        out = await _claim_for_key(pool, cfg, exp.claim_key, tx_hash, transfers, out, spec)
    return {**out, "source": "chain", "tx_hash": tx_hash, "block_number": block}


async def _claim_for_key(pool: asyncpg.Pool, cfg: ChainConfig, key: str | None, tx_hash: str,
                         transfers: list[Transfer], out: dict[str, Any], spec: AssetSpec) -> dict[str, Any]:
    """A paid_final answer for an expectation with a claim key claims its transfers for the key, in the
    same transaction as the answer; a transfer claimed meanwhile for anything else turns it into
    already_claimed. Replays with the same key answer paid_final again, with claim.new = false."""
    if key is None or out["status"] != "paid_final":
        return out
    used = [t for t in transfers if t.log_index in out["log_indexes"]]
    fresh = [t for t in used if not t.claimed and (units(t.value, spec) or 0) > 0]
    async with pool.acquire() as conn, conn.transaction():
        if fresh:
            await conn.fetch(
                Q.insert_claims, cfg.name, [tx_hash] * len(fresh), [t.log_index for t in fresh], [None] * len(fresh),
                [key] * len(fresh), [t.event_id for t in fresh], [t.block_number for t in fresh],
                [Decimal(units(t.value, spec) or 0) for t in fresh])
        now = {r["log_index"]: r for r in await conn.fetch(Q.claims_of_tx, cfg.name, tx_hash)}
    other = [now[t.log_index] for t in used if now[t.log_index]["claim_key"] != key]
    if other:
        c = other[0]
        return {"status": "already_claimed", "claimed_by": (c["allocated_to"] or [None])[0],
                "claim_key": c["claim_key"], "reason": "the transfer was claimed for something else meanwhile"}
    return {**out, "claim": {"key": key, "new": bool(fresh),
                             "claimed_at": min(now[t.log_index]["claimed_at"] for t in used).isoformat()}}


async def _evm_chain(cfg: ChainConfig, tx_hash: str):
    from indexer.evm.rpc import EvmRpc

    rpc = EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=min(cfg.max_attempts, 3))
    try:
        receipt = await rpc.call("eth_getTransactionReceipt", [tx_hash])
        tx = await rpc.call("eth_getTransactionByHash", [tx_hash])
        if receipt is None:
            if tx is None:
                return [], False, 0, None, ("not_found", "no such transaction on the chain")
            return [], False, 0, None, ("pending", "in the mempool, not mined")
        if receipt.get("status") != "0x1":
            return [], False, 0, int(receipt["blockNumber"], 16), ("failed_tx", "the transaction reverted")
        block = int(receipt["blockNumber"], 16)
        head = int(await rpc.call("eth_blockNumber", []), 16)
        if cfg.uses_finalized_tag:
            fin = await rpc.call("eth_getBlockByNumber", ["finalized", False])
            final_number = int(fin["number"], 16) if fin else -1
        else:
            final_number = head - cfg.effective_finality_depth + 1
    finally:
        await rpc.close()
    transfers = []
    for lg in receipt.get("logs") or []:
        topics = lg.get("topics") or []
        if len(topics) == 3 and topics[0].lower() == TRANSFER_TOPIC and lg.get("data", "0x") not in ("0x", ""):
            transfers.append(Transfer(int(lg["logIndex"], 16), "erc20", lg["address"].lower(), None, None,
                                      "0x" + topics[2][-40:].lower(), "0x" + topics[1][-40:].lower(),
                                      str(int(lg["data"], 16))))
    value = int(tx.get("value") or "0x0", 16) if tx else 0
    if value > 0 and tx.get("to"):
        transfers.append(Transfer(-1, "native", None, None, None, tx["to"].lower(), tx["from"].lower(), str(value)))
    return transfers, block <= final_number, max(0, head - block + 1), block, None


async def _xrpl_chain(cfg: ChainConfig, tx_hash: str):
    from indexer.xrpl.client import XrplClient, XrplRpcError
    from indexer.xrpl.decode import decode_args, normalize_entry

    client = XrplClient(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=min(cfg.max_attempts, 3))
    try:
        try:
            res = await client.request("tx", {"transaction": tx_hash})
        except XrplRpcError as exc:
            if exc.token == "txnNotFound":
                return [], False, 0, None, ("not_found", "no such transaction in the server's history")
            raise
    finally:
        await client.close()
    if not res.get("validated"):
        return [], False, 0, None, ("pending", "not in a validated ledger yet")
    raw = normalize_entry(res)
    if raw.result != "tesSUCCESS":
        return [], True, 1, raw.ledger_index, ("failed_tx", raw.result)
    if raw.tx["TransactionType"] != "Payment":
        return [], True, 1, raw.ledger_index, None
    dst = raw.tx.get("Destination")
    args = decode_args(raw, dst)
    delivered = args.get("delivered_amount")
    if delivered in (None, "unavailable"):
        return [], True, 1, raw.ledger_index, ("not_found", "the delivered amount is unknown")
    kind = "xrpl_iou" if isinstance(delivered, dict) else "native"
    t = Transfer(0, kind, None, delivered.get("currency") if kind == "xrpl_iou" else None,
                 delivered.get("issuer") if kind == "xrpl_iou" else None, dst, args["account"], delivered,
                 args.get("destination_tag"), args.get("memos"))
    return [t], True, 1, raw.ledger_index, None
