"""Signed claim vouchers: single claims outside a tree (ERC-3009 style).

A voucher is an EIP-712 `Voucher(nonce, recipient, asset, amount,
validAfter, validBefore)` signed by the ClaimDistributor's `voucherSigner`;
the recipient (or anyone) submits it to the contract, which pays it once per
random 32-byte nonce.

Issuing one (idempotent on the client's id: the same body returns the same
nonce and signature) is ONE transaction: under the pool account's
balance-row lock, the pool's outstanding vouchers plus this one must stay
within its `voucher_cap` ([[ledger.accounts]]), and the transfer
`voucher:<id>` moves the amount from the pool to `app:vouchers.<pool name>`,
checked against the pool's available balance like any transfer. The
signature is made before that transaction (a refusal leaves only an unused
signature in memory, never on the wire: it is returned only after commit).

A voucher then leaves 'issued' exactly once (a conditional UPDATE in the
same transaction as its booking), from final data only (`settle`):
- used: a final `VoucherRedeemed` of its nonce: books debit the voucher
  account / credit the contract's account (its wallet account when it is a
  configured wallet, else `external:<chain>:<contract>`), keyed to the event;
- revoked: a final `VoucherRevoked` (the owner's `revokeVoucher`, calldata
  from `request_revoke`): transfer `voucher:<id>:release` back to the pool;
- expired: a final block at or past `valid_before` (the contract refuses it
  from then on, and any earlier redeem is already final): the same release.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries, audit
from db.values import amount_text
from settlement.distributions import claim_abi
from settlement.distributions.allocate import MAX_AMOUNT
from settlement.distributions.book import book_linked, contract_account
from settlement.distributions.snapshots import NotFound, SnapshotConflict, SnapshotRefused, check_id
from settlement.distributions.snapshots import Q as DQ
from settlement.ledger.books import Posting, post_transaction
from settlement.ledger.transfers import (
    ACCOUNTS,
    Transfer,
    TransferRefused,
    lock_rooms,
    normalize_account,
    retrying,
)
from settlement.payouts.evm.config import load_key
from settlement.payouts.evm.signer import Signer, SignerError

Q = Queries(Path(__file__).with_name("vouchers.sql"))
log = get_logger("settlement.distributions.vouchers")
_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")


class VoucherRefused(SnapshotRefused):
    """voucher refused"""


class VoucherConflict(SnapshotConflict):
    """the id was used for a different voucher"""


@dataclass(frozen=True)
class VoucherRequest:
    id: str
    pool_account: str
    asset: str  # asset id '<chain>:<name>'
    recipient: str
    amount: int
    valid_after: int
    valid_before: int
    contract: str

    def body(self) -> dict:
        return {"id": self.id, "pool_account": self.pool_account, "asset": self.asset, "recipient": self.recipient,
                "amount": str(self.amount), "valid_after": self.valid_after, "valid_before": self.valid_before,
                "contract": self.contract}


def voucher_account(pool_account: str) -> str:
    return "app:vouchers." + pool_account.split(":", 1)[1]


def voucher_view(row) -> dict:
    return {"id": row["id"], "nonce": row["nonce"], "chain": row["chain"], "contract": row["contract"],
            "pool_account": row["pool_account"], "asset": row["asset_id"], "recipient": row["recipient"],
            "amount": amount_text(row["amount"]), "valid_after": row["valid_after"],
            "valid_before": row["valid_before"], "signature": row["signature"], "state": row["state"],
            "revoke_requested": row["revoke_requested"], "created_at": row["created_at"].isoformat(),
            "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None}


def check_request(req: VoucherRequest) -> VoucherRequest:
    """Checks that need no database or key; addresses normalized."""
    check_id(req.id)
    pool_account = normalize_account(req.pool_account)
    if not pool_account.startswith("app:") or len(voucher_account(pool_account)) > 67:
        raise VoucherRefused("pool_account", "an app account (app:<name>, name up to 54 characters)")
    for name, v in (("recipient", req.recipient), ("contract", req.contract)):
        if not isinstance(v, str) or not _ADDR.match(v):
            raise VoucherRefused(name, "a 0x-prefixed 20-byte hex address")
    if isinstance(req.amount, bool) or not isinstance(req.amount, int) or not 0 < req.amount <= MAX_AMOUNT:
        raise VoucherRefused("amount", "a positive integer in base units")
    for name, v in (("valid_after", req.valid_after), ("valid_before", req.valid_before)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
            raise VoucherRefused(name, "unix seconds")
    if req.valid_before <= req.valid_after:
        raise VoucherRefused("valid_before", "must be after valid_after")
    return VoucherRequest(req.id, pool_account, req.asset, req.recipient.lower(), req.amount, req.valid_after,
                          req.valid_before, req.contract.lower())


async def voucher_signer(pool: asyncpg.Pool, settings: Settings, chain: str) -> tuple[Signer, int]:
    """The key that signs vouchers on `chain` (its payout signer: the contract's voucherSigner) and the
    chain id; refused (field `asset`) when the chain has none usable or is not followed yet."""
    pc = next((c for c in settings.payouts.chains if c.chain == chain), None)
    if pc is None:
        raise VoucherRefused("asset", f"{chain} has no payout signer configured ([[payouts.chains]])")
    try:
        signer = load_key(pc.signer, f"payouts.chains[{chain}].signer")
    except SignerError as exc:
        raise VoucherRefused("asset", f"the payout signer of {chain} is not usable: {exc}") from None
    async with pool.acquire() as conn:
        chain_id = await conn.fetchval("SELECT chain_id FROM chain_state WHERE chain = $1", chain)
    if chain_id is None:
        raise VoucherRefused("asset", f"{chain} is not followed yet")
    return signer, chain_id


def _asset_address(settings: Settings, chain: str, name: str) -> str:
    if name == "native":
        return claim_abi.NATIVE
    for c in settings.chain(chain).contracts:
        if c.name == name:
            return c.address.lower()
    raise VoucherRefused("asset", f"{chain}:{name} is not a configured token contract")


async def issue_voucher(pool: asyncpg.Pool, settings: Settings, signer: Signer, req: VoucherRequest, *,
                        chain_id: int, actor: str) -> tuple[dict, bool]:
    req = check_request(req)
    body = req.body()
    async with pool.acquire() as conn:
        stored = await conn.fetchrow(Q.find_voucher, req.id)
        if stored is None:
            chain, name = await ACCOUNTS.asset(conn, req.asset, "asset")
            # the voucher account exists before the booking (see book.py)
            await conn.execute(DQ.ensure_app_account, voucher_account(req.pool_account),
                               f"claim vouchers of {req.pool_account}")
    if stored is not None:
        return _replay(stored, body)
    nonce = os.urandom(32)
    voucher = claim_abi.Voucher(nonce, req.recipient, _asset_address(settings, chain, name), req.amount,
                                req.valid_after, req.valid_before)
    signature = "0x" + claim_abi.sign_voucher(voucher, chain_id, req.contract, signer).hex()
    cfg = settings.ledger.app_account(req.pool_account)
    cap = None if cfg is None else cfg.voucher_cap
    account = voucher_account(req.pool_account)

    async def work(conn: asyncpg.Connection) -> tuple[dict, bool]:
        stored = await conn.fetchrow(Q.find_voucher, req.id)
        if stored is not None:
            return _replay(stored, body)
        pool_id = (await ACCOUNTS.resolve(conn, settings, {req.pool_account: ("pool_account", None)}))[
            req.pool_account].id
        await lock_rooms(conn, [(pool_id, req.asset)])
        if cap is not None:
            outstanding = int(await conn.fetchval(Q.outstanding, req.pool_account, req.asset))
            if outstanding + req.amount > cap:
                raise VoucherRefused("amount", f"{req.pool_account}: outstanding vouchers {outstanding} + "
                                               f"{req.amount} exceed its voucher_cap {cap}")
        await book_linked(conn, settings, [Transfer(f"voucher:{req.id}", req.pool_account, account, req.asset,
                                                    req.amount, memo=f"voucher {req.id} to {req.recipient}")], actor)
        row = await conn.fetchrow(Q.insert_voucher, req.id, "0x" + nonce.hex(), chain, req.contract,
                                  req.pool_account, account, req.asset, req.recipient, req.amount, req.valid_after,
                                  req.valid_before, signature, body, actor)
        await audit(conn, actor, "voucher.issued", f"voucher:{req.id}",
                    {"nonce": row["nonce"], "amount": str(req.amount), "recipient": req.recipient})
        return voucher_view(row), True

    try:
        return await retrying(pool, work)
    except TransferRefused as exc:
        raise VoucherRefused("pool_account" if exc.result == "exceeds_available" else exc.field,
                             exc.reason) from exc


def _replay(stored, body: dict) -> tuple[dict, bool]:
    diff = next((k for k in body if stored["body"].get(k) != body[k]), None)
    if diff is not None:
        raise VoucherConflict(diff, f"{body['id']!r} was already used for a different voucher ({diff})")
    return voucher_view(stored), False


async def request_revoke(pool: asyncpg.Pool, voucher_id: str, actor: str) -> dict:
    """Mark a voucher for revocation and return the owner's `revokeVoucher` calldata; the
    reservation is released when the revocation (or the expiry) is final."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.request_revoke, voucher_id)
        if row is None:
            raise NotFound("id", f"no voucher {voucher_id!r}")
        await audit(conn, actor, "voucher.revoke_requested", f"voucher:{voucher_id}", {"nonce": row["nonce"]})
    return {**voucher_view(row),
            "revoke_calldata": "0x" + claim_abi.revoke_voucher(bytes.fromhex(row["nonce"][2:])).hex()}


async def settle(pool: asyncpg.Pool, settings: Settings, chain: str, actor: str = "vouchers") -> dict:
    """Resolve issued vouchers of a chain from final data; each exactly once."""

    async def work(conn: asyncpg.Connection) -> dict:
        rows = await conn.fetch(Q.open_vouchers, chain)
        out = {"used": [], "revoked": [], "expired": []}
        if not rows:
            return out
        events = {(e["address"], e["nonce"]): e for e in await conn.fetch(
            Q.final_voucher_events, chain, sorted({r["contract"] for r in rows}), [r["nonce"] for r in rows])}
        final_time = await conn.fetchval(DQ.final_block_time, chain)
        for v in rows:
            e = events.get((v["contract"], v["nonce"]))
            amount = int(v["amount"])
            if e is not None and e["event"] == "VoucherRedeemed":
                await conn.fetchval(Q.resolve_voucher, v["id"], "used", e["id"])
                counter = await contract_account(conn, chain, v["contract"])
                await post_transaction(
                    conn, key=f"voucher:{v['id']}:used:{e['id']}", cause_kind="event",
                    cause={"voucher": v["id"], "nonce": v["nonce"]}, chain=chain, block_number=e["block_number"],
                    event_id=e["id"], tx_hash=e["tx_hash"],
                    postings=[Posting(v["account"], v["asset_id"], amount), Posting(counter, v["asset_id"], -amount)])
                out["used"].append(v["id"])
                continue
            if e is not None:
                state = "revoked"
            elif final_time is not None and final_time >= v["valid_before"]:
                state = "expired"
            else:
                continue
            await conn.fetchval(Q.resolve_voucher, v["id"], state, None if e is None else e["id"])
            await book_linked(conn, settings, [Transfer(f"voucher:{v['id']}:release", v["account"],
                                                        v["pool_account"], v["asset_id"], amount,
                                                        memo=f"voucher {v['id']} {state}")], actor)
            out[state].append(v["id"])
        for state, ids in out.items():
            for i in ids:
                await audit(conn, actor, f"voucher.{state}", f"voucher:{i}", {})
        return out

    out = await retrying(pool, work)
    if any(out.values()):
        log.info("vouchers.settled", chain=chain, **{k: len(v) for k, v in out.items()})
    return out
