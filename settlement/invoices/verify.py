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
    claimed_by: str | None = None


def _units(value: Any, spec: AssetSpec) -> int | None:
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


def classify(transfers: list[Transfer], *, to: str, spec: AssetSpec, min_amount: int, tag: int | None,
             memo: str | None, payer: str | None, invoice: str | None, final: bool,
             confirmations: int) -> dict[str, Any]:
    """The verdict over a transaction's incoming transfers (pure)."""
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
    free = [t for t in mine if t.claimed_by is None or t.claimed_by == invoice]
    if not free:
        return {"status": "already_claimed", "claimed_by": mine[0].claimed_by,
                "reason": "the transfer settles another invoice"}
    amounts = [a for a in (_units(t.value, spec) for t in free) if a is not None]
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


async def verify_payment(pool: asyncpg.Pool, settings: Settings, exp: Expectation) -> dict[str, Any]:
    names = [c.name for c in settings.chains]
    if exp.chain not in names:
        raise InvoiceError("chain", f"not a configured chain (configured: {', '.join(names) or 'none'})")
    cfg = settings.chain(exp.chain)
    tx_hash = _norm_hash(cfg, exp.tx_hash)
    to, asset, min_amount, tag, memo, payer = (exp.to, exp.asset, exp.min_amount, exp.destination_tag, exp.memo,
                                               exp.payer)
    after_block = None
    if exp.invoice is not None:
        async with pool.acquire() as conn:
            inv = await conn.fetchrow(Q.invoice_by_ref, exp.invoice)
        # By id only: app references are guessable and this route is public.
        if inv is None or inv["id"] != exp.invoice:
            raise InvoiceError("invoice", "no invoice with this id", code="not_found")
        for field in ("to", "asset", "min_amount", "destination_tag", "memo", "payer"):
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
    to = norm_address(cfg.kind, to)
    payer = norm_address(cfg.kind, payer) if payer else None
    spec = next((a for a in asset_specs(settings) if a.chain == cfg.name and a.name == asset), None)
    if spec is None:
        raise InvoiceError("asset", "not an asset of the chain ('native', a contract name or a configured currency)")
    watched = any(norm_address(cfg.kind, w.address) == to and asset in w.assets for w in cfg.wallets)
    rules = dict(to=to, spec=spec, min_amount=min_amount, tag=tag, memo=memo, payer=payer, invoice=exp.invoice)
    if watched:
        async with pool.acquire() as conn:
            rows = await conn.fetch(Q.transfers_of_tx, cfg.name, tx_hash)
            failed = await conn.fetchrow(Q.failed_xrpl_tx, cfg.name, tx_hash) if not rows else None
        if failed is not None:
            return {"status": "failed_tx", "reason": failed["result"], "source": "index", "tx_hash": tx_hash}
        if rows:
            final_number = rows[0]["final_number"] if rows[0]["final_number"] is not None else -1
            top = rows[0]["cursor_number"] or 0
            block = max(r["block_number"] for r in rows)
            transfers = [Transfer(r["log_index"], r["asset_kind"], r["contract"], r["currency"], r["issuer"],
                                  r["recipient"], r["payer"], r["value"], r["destination_tag"], r["memos"],
                                  r["claimed_by"]) for r in rows]
            out = classify(transfers, final=block <= final_number, confirmations=max(0, top - block + 1), **rules)
            out = _note(_predates(out, after_block, block), cfg, spec)
            return {**out, "source": "index", "tx_hash": tx_hash, "block_number": block}
    if cfg.kind == "evm":
        transfers, final, confirmations, block, failure = await _evm_chain(cfg, tx_hash)
    else:
        transfers, final, confirmations, block, failure = await _xrpl_chain(cfg, tx_hash)
    if failure is not None:
        return _note({"status": failure[0], "reason": failure[1], "source": "chain", "tx_hash": tx_hash}, cfg, spec)
    with_claims = []
    if transfers:
        async with pool.acquire() as conn:
            claims = {r["log_index"]: r["invoice_id"] for r in await conn.fetch(Q.claims_of_tx, cfg.name, tx_hash)}
        for t in transfers:
            t.claimed_by = claims.get(t.log_index)
            with_claims.append(t)
    out = classify(with_claims, final=final and not watched, confirmations=confirmations, **rules)
    out = _note(_predates(out, after_block, block), cfg, spec)
    if watched and out["status"] == "pending":
        out["reason"] = "on chain, not indexed yet"
    return {**out, "source": "chain", "tx_hash": tx_hash, "block_number": block}


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
