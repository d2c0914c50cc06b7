"""Sending signed transactions for one (chain, sending address), crash-safe.

The rules, after Chainlink's txmgr broadcaster:
- a nonce is claimed in the database, in the same transaction that stores
  the signed raw transaction and its hash; broadcasting happens only after
  that commit. A crash between the two leaves bytes that the next pass
  broadcasts as they are; nothing is ever re-signed at a new nonce unless
  the old nonce is proven used by someone else (a final block's nonce count
  passed it and none of our attempts has a receipt).
- every attempt at a nonce stays watched: a replacement does not cancel
  the original in nodes that never saw the replacement, so whichever of
  them gets mined is the one that counts.
- replacements raise both fee fields by at least `bump_percent` and never
  pass the configured fee cap; when the next bump would, the transaction is
  flagged `stuck_fee_cap` (metric, error log, audit row) and left as it is.
- "already known" means a node has our bytes; "nonce too low" after our own
  broadcast means one of our attempts (or a foreign transaction) used the
  nonce: receipts decide which, never a blind retry at a new nonce.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from config.logs import get_logger
from config.section_payouts import PayoutChainConfig, PayoutSettings
from db import Queries, audit
from indexer.chain_state import final_height
from indexer.errors import RpcError, RpcErrorKind
from indexer.evm.rpc import EvmRpc
from settlement.payouts import metrics as pm
from settlement.payouts.evm import batcher_abi
from settlement.payouts.evm.broadcast import send_raw_everywhere
from settlement.payouts.evm.fees import Fees, bumped_fees, initial_fees
from settlement.payouts.evm.signer import Signer
from settlement.payouts.evm.tx import SignedTx, sign_tx
from settlement.payouts.requests import json_rows

Q = Queries(Path(__file__).with_name("evm.sql"))
PQ = Queries(Path(__file__).parents[1] / "payouts.sql")
log = get_logger("settlement.payouts")
K = RpcErrorKind
ACTOR = "payout-worker"
OPEN = ("signed", "broadcast", "stuck_fee_cap")
GAP_FILL_GAS = 21_000
_HEX = re.compile(r"0x[0-9a-fA-F]{8,}")


@dataclass(frozen=True)
class Prepared:
    """What a new transaction needs from the chain, read before any DB transaction opens."""

    fees: Fees
    nonce_floor: int  # the chain's `latest` nonce count of the sender


@dataclass(frozen=True)
class StoredTx:
    id: int
    nonce: int
    signed: SignedTx


def _calldata(raw: str) -> bytes:
    """The data field of one of our stored raw transactions (replacements keep it)."""
    return bytes(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["data"])


def _value(raw: str) -> int:
    """The value of one of our stored raw transactions (an owner's native fundEpoch carries one)."""
    return int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["value"])


def _to(raw: str) -> str:
    """The `to` of one of our stored raw transactions: the batcher the batch was
    signed for (replacements and resends keep it, whatever is configured now)."""
    return "0x" + bytes(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["to"]).hex()


def _int(v) -> int:
    return int(v, 16) if isinstance(v, str) else int(v)


class EvmTxSender:
    def __init__(self, pool: asyncpg.Pool, rpc: EvmRpc, *, chain_id: int, sender: Signer,
                 pc: PayoutChainConfig, ps: PayoutSettings) -> None:
        self.pool = pool
        self.rpc = rpc
        self.chain = pc.chain
        self.chain_id = chain_id
        self.sender = sender
        self.address = sender.address.lower()
        self.pc = pc
        self.ps = ps
        self.rebroadcast_seconds = min(ps.bump_interval_seconds / 2, 10.0)
        self._seen: set[int] = set()  # tx ids this process has broadcast at least once

    # -- chain reads (never inside a DB transaction) -------------------------------

    async def fee_market(self) -> tuple[int, int]:
        block = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        base = _int(block.get("baseFeePerGas") or "0x0")
        try:
            priority = _int(await self.rpc.call("eth_maxPriorityFeePerGas", []))
        except RpcError as exc:
            if exc.kind is not K.UNSUPPORTED:
                raise
            priority = self.pc.max_priority_fee_per_gas
        return base, priority

    async def nonce_count(self, block: str = "latest", ep=None) -> int:
        params = [self.address, block]
        if ep is not None:
            return _int(await self.rpc.call_on(ep, "eth_getTransactionCount", params))
        return _int(await self.rpc.call("eth_getTransactionCount", params))

    def _endpoint(self):
        """The endpoint a tracking pass reads everything from: a healthy one, the first configured first."""
        return next((e for e in self.rpc.endpoints if e.healthy), self.rpc.endpoints[0])

    async def prepare(self) -> Prepared:
        base, priority = await self.fee_market()
        fees = initial_fees(base_fee=base, suggested_priority=priority, cap=self.pc.max_fee_per_gas,
                            max_priority=self.pc.max_priority_fee_per_gas)
        return Prepared(fees, await self.nonce_count())

    # -- store, then broadcast -----------------------------------------------------

    async def store_tx(self, conn: asyncpg.Connection, *, purpose: str, batch_id: str | None, to: str, data: bytes,
                       gas: int, fees: Fees, nonce_floor: int | None = None, nonce: int | None = None,
                       attempt: int = 1, value: int = 0, owner_call_id: str | None = None) -> StoredTx:
        """Claim a nonce (unless given), sign and store; runs in the caller's transaction.

        `owner_call_id`: the ClaimDistributor owner call (purpose 'owner_call') the transaction sends."""
        if nonce is None:
            await conn.execute(Q.ensure_nonce, self.chain, self.address, nonce_floor or 0)
            nonce = await conn.fetchval(Q.claim_nonce, self.chain, self.address, nonce_floor or 0)
        signed = sign_tx(self.sender, chain_id=self.chain_id, nonce=nonce, to=to, data=data, gas=gas, fees=fees,
                         value=value)
        tx_id = await conn.fetchval(Q.insert_tx, self.chain, self.address, nonce, attempt, purpose, batch_id,
                                    signed.raw, signed.tx_hash, gas, fees.max_fee_per_gas,
                                    fees.max_priority_fee_per_gas, owner_call_id)
        log.info("payout.tx_signed", chain=self.chain, nonce=nonce, attempt=attempt, tx=signed.tx_hash,
                 purpose=purpose, batch=batch_id, max_fee=fees.max_fee_per_gas,
                 priority_fee=fees.max_priority_fee_per_gas)
        return StoredTx(tx_id, nonce, signed)

    async def broadcast(self, tx_id: int, raw: str, tx_hash: str) -> None:
        results = await send_raw_everywhere(self.rpc, raw)
        accepted = False
        problems = []
        for label, res in results:
            if not isinstance(res, RpcError):
                accepted = True
                pm.TX_BROADCASTS.labels(self.chain, "ok").inc()
                continue
            pm.TX_BROADCASTS.labels(self.chain, res.kind.value).inc()
            # Our own bytes already in the pool, or our nonce already used
            # (by this or an earlier attempt, or by someone else: receipts decide).
            if res.kind in (K.ALREADY_KNOWN, K.NONCE_TOO_LOW):
                accepted = accepted or res.kind is K.ALREADY_KNOWN
            problems.append(f"{label}: {res.kind.value}: {str(res.args[0])[:160]}")
        self._seen.add(tx_id)
        last_error = None if accepted or not problems else "; ".join(problems)[:1000]
        async with self.pool.acquire() as conn:
            n = await conn.fetchval(Q.mark_broadcast, tx_id, last_error)
            if n == 1:
                await audit(conn, ACTOR, "payout.tx_broadcast", f"tx:{tx_hash}",
                            {"chain": self.chain, "endpoints": len(results), "accepted": accepted,
                             "errors": problems[:5]})
        log.info("payout.broadcast", chain=self.chain, tx=tx_hash, endpoints=len(results), accepted=accepted,
                 errors=problems[:3] or None)

    # -- watching what is in flight ------------------------------------------------

    async def track(self, *, killed: bool, held_batches: frozenset[str] = frozenset()) -> None:
        """Receipts, rebroadcasts, bumps and foreign-used nonces of every open nonce.

        While `killed`, or for a batch in `held_batches` (its asset is paused),
        receipts are still read but nothing is bumped or sent again."""
        async with self.pool.acquire() as conn:
            nonces = [r["nonce"] for r in await conn.fetch(Q.open_nonces, self.chain, self.address)]
            final = await final_height(conn, self.chain)
        if not nonces:
            return
        # One endpoint for the whole pass: its receipts and its nonce counts
        # agree with each other; a lagging second node's "no receipt" next
        # to the first node's count would read as a nonce used elsewhere.
        ep = self._endpoint()
        # Read before the receipts: a nonce used at or below a final block by
        # one of our attempts would show that attempt's receipt.
        final_count = await self.nonce_count(hex(final), ep) if final is not None else 0
        latest_count = await self.nonce_count("latest", ep)
        market: tuple[int, int] | None = None
        for nonce in nonces:
            async with self.pool.acquire() as conn:
                attempts = await conn.fetch(Q.nonce_attempts, self.chain, self.address, nonce)
            receipts = [await self.rpc.call_on(ep, "eth_getTransactionReceipt", [a["tx_hash"]]) for a in attempts]
            mined = next(((a, r) for a, r in zip(attempts, receipts) if r), None)
            was = next((a for a in attempts if a["state"] == "mined"), None)
            if was is not None and (mined is None or mined[0]["id"] != was["id"]
                                    or mined[1]["blockHash"] != was["mined_block_hash"]):
                await self._on_reorged(was, resend=mined is None and not killed
                                       and was["batch_id"] not in held_batches)
                if mined is None:
                    continue
            if mined is not None:
                tx, receipt = mined
                if was is None or was["id"] != tx["id"] or receipt["blockHash"] != was["mined_block_hash"]:
                    await self._on_mined(tx, receipt)
                await self._finalize(ep, tx, receipt, final)
                continue
            if nonce < final_count:
                await self._on_nonce_used_elsewhere(nonce, attempts)
                continue
            latest = attempts[-1]
            if killed or latest["state"] not in OPEN or latest["batch_id"] in held_batches:
                continue
            age = (dt.datetime.now(dt.timezone.utc) - latest["created_at"]).total_seconds()
            # Only the next nonce in line can be mined: bumping one queued
            # behind a pending lower nonce would only burn the fee budget.
            # A stuck_fee_cap attempt is tried again every pass: once the cap is
            # raised (reload or restart) the bump goes through.
            if age >= self.ps.bump_interval_seconds and nonce == latest_count:
                market = market or await self.fee_market()
                if await self._bump(latest, market):
                    continue
            last = latest["last_broadcast_at"]
            stale = last is None or (dt.datetime.now(dt.timezone.utc) - last).total_seconds() >= self.rebroadcast_seconds
            if stale or latest["id"] not in self._seen:
                await self.broadcast(latest["id"], latest["raw"], latest["tx_hash"])

    async def _on_mined(self, tx: asyncpg.Record, receipt: dict) -> None:
        block, status = _int(receipt["blockNumber"]), _int(receipt["status"])
        reason = None
        if tx["purpose"] == "batch" and status == 0:
            reason = await self._revert_reason(tx, block)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q.mark_mined, tx["id"], block, status, receipt["blockHash"])
            await conn.execute(Q.supersede_nonce, self.chain, self.address, tx["nonce"], tx["id"])
            await audit(conn, ACTOR, "payout.tx_mined", f"tx:{tx['tx_hash']}",
                        {"chain": self.chain, "block": block, "status": status, "nonce": tx["nonce"],
                         "attempt": tx["attempt"], "batch": tx["batch_id"]})
            if reason is not None and reason.split("(")[0] not in ("BatchAlreadyExecuted", "BatchExpired"):
                # The batch did not run; its signature stays valid until expiry,
                # so it cannot be re-signed: a human looks, expiry then frees it.
                text = f"batch transaction {tx['tx_hash']} reverted: {reason}"
                if await conn.execute(Q.revert_batch, tx["batch_id"], text) != "UPDATE 0":
                    await conn.execute(Q.hold_batch_items, tx["batch_id"], text)
                    await audit(conn, ACTOR, "payout.batch_reverted", f"batch:{tx['batch_id']}", {"reason": text})
                    log.error("payout.batch_reverted", chain=self.chain, batch=tx["batch_id"], reason=reason)
        log.info("payout.tx_mined", chain=self.chain, tx=tx["tx_hash"], block=block, status=status,
                 attempt=tx["attempt"])

    async def _finalize(self, ep, tx: asyncpg.Record, receipt: dict, final: int | None) -> None:
        """Stop watching once the receipt's block is final (the follower's rule) and canonical on `ep`."""
        block = _int(receipt["blockNumber"])
        if final is None or block > final:
            return
        header = await self.rpc.call_on(ep, "eth_getBlockByNumber", [hex(block), False])
        if header and header.get("hash") == receipt["blockHash"]:
            async with self.pool.acquire() as conn:
                await conn.execute(Q.mark_final, tx["id"], receipt["blockHash"])

    async def _on_reorged(self, tx: asyncpg.Record, *, resend: bool) -> None:
        """Mined, then not (or elsewhere): the block was reorged out before it was final."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(Q.unmine, tx["id"]) is None:
                return
            await audit(conn, ACTOR, "payout.tx_reorged", f"tx:{tx['tx_hash']}", {
                "chain": self.chain, "nonce": tx["nonce"], "block": tx["mined_block"],
                "block_hash": tx["mined_block_hash"], "batch": tx["batch_id"], "resend": resend})
        pm.REORGED.labels(self.chain).inc()
        log.warning("payout.tx_reorged", chain=self.chain, tx=tx["tx_hash"], nonce=tx["nonce"],
                    block=tx["mined_block"], resend=resend)
        if resend:
            await self.broadcast(tx["id"], tx["raw"], tx["tx_hash"])  # the same bytes: same nonce, same hash

    async def _revert_reason(self, tx: asyncpg.Record, block: int) -> str:
        data = _calldata(tx["raw"])
        call = {"from": self.address, "to": _to(tx["raw"]), "data": "0x" + data.hex(),
                "gas": hex(tx["gas_limit"])}
        try:
            await self.rpc.call("eth_call", [call, hex(max(block - 1, 0))])
        except RpcError as exc:
            found = _HEX.search(str(exc.args[0]))
            if found:
                return str(batcher_abi.decode_revert(found.group(0)))
            return f"reverted ({str(exc.args[0])[:120]})"
        return "reverted (out of gas or state changed in its block)"

    async def _on_nonce_used_elsewhere(self, nonce: int, attempts: list) -> None:
        why = f"nonce {nonce} used by a transaction that is not ours (final nonce count passed it, no receipt)"
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q.drop_nonce, self.chain, self.address, nonce, why)
            await audit(conn, ACTOR, "payout.nonce_lost", f"nonce:{self.chain}:{self.address}:{nonce}",
                        {"reason": why, "txs": [a["tx_hash"] for a in attempts]})
        log.error("payout.nonce_lost", chain=self.chain, nonce=nonce)
        for batch_id in {a["batch_id"] for a in attempts if a["batch_id"]}:
            await self.resend_batch(batch_id, attempts[-1])

    async def resend_batch(self, batch_id: str, old: asyncpg.Record) -> None:
        """The same signed batch (same id: the contract runs it at most once) at a new nonce."""
        data = _calldata(old["raw"])
        prep = await self.prepare()
        async with self.pool.acquire() as conn, conn.transaction():
            # Under the batch row's lock: two workers that both saw the nonce
            # lost store one resend between them, never two.
            if (await conn.fetchval(Q.lock_batch, batch_id)) != "signed" or await conn.fetchval(Q.batch_has_live_tx, batch_id):
                return
            stored = await self.store_tx(conn, purpose="batch", batch_id=batch_id, to=_to(old["raw"]),
                                         data=data, gas=old["gas_limit"], fees=prep.fees,
                                         nonce_floor=prep.nonce_floor)
            await audit(conn, ACTOR, "payout.batch_resent", f"batch:{batch_id}", {"nonce": stored.nonce,
                                                                                 "tx": stored.signed.tx_hash})
        await self.broadcast(stored.id, stored.signed.raw, stored.signed.tx_hash)

    async def _bump(self, tx: asyncpg.Record, market: tuple[int, int]) -> bool:
        """Replace `tx` with higher fees; False (and flagged) when the cap forbids it."""
        old = Fees(int(tx["max_fee_per_gas"]), int(tx["max_priority_fee_per_gas"]))
        base, priority = market
        new = bumped_fees(old, base_fee=base, suggested_priority=priority, percent=self.ps.bump_percent,
                          cap=self.pc.max_fee_per_gas, max_priority=self.pc.max_priority_fee_per_gas)
        if new is None:
            if tx["state"] == "stuck_fee_cap":
                return False  # flagged already; stays as it is until the cap allows a bump
            why = (f"a replacement needs max fee >= {old.max_fee_per_gas} + {self.ps.bump_percent}%, "
                   f"above the cap {self.pc.max_fee_per_gas} (base fee now {base})")
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(Q.set_tx_state, tx["id"], "stuck_fee_cap", why)
                await audit(conn, ACTOR, "payout.stuck_fee_cap", f"tx:{tx['tx_hash']}",
                            {"chain": self.chain, "nonce": tx["nonce"], "batch": tx["batch_id"], "reason": why})
            pm.FEE_CAP_HIT.labels(self.chain).inc()
            log.error("payout.fee_cap_hit", chain=self.chain, tx=tx["tx_hash"], nonce=tx["nonce"],
                      max_fee=old.max_fee_per_gas, cap=self.pc.max_fee_per_gas, base_fee=base)
            return False
        data = _calldata(tx["raw"])
        to = _to(tx["raw"])
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await self.store_tx(conn, purpose=tx["purpose"], batch_id=tx["batch_id"], to=to,
                                         data=data, gas=tx["gas_limit"], fees=new,
                                         nonce=tx["nonce"], attempt=tx["attempt"] + 1, value=_value(tx["raw"]),
                                         owner_call_id=tx["owner_call_id"])
            await conn.execute(Q.supersede_nonce, self.chain, self.address, tx["nonce"], stored.id)
            await audit(conn, ACTOR, "payout.tx_bumped", f"tx:{stored.signed.tx_hash}",
                        {"chain": self.chain, "nonce": tx["nonce"], "attempt": tx["attempt"] + 1,
                         "replaces": tx["tx_hash"], "max_fee": str(new.max_fee_per_gas),
                         "priority_fee": str(new.max_priority_fee_per_gas)})
        pm.FEE_BUMPS.labels(self.chain).inc()
        log.warning("payout.fee_bumped", chain=self.chain, nonce=tx["nonce"], attempt=tx["attempt"] + 1,
                    max_fee=new.max_fee_per_gas, priority_fee=new.max_priority_fee_per_gas, base_fee=base)
        await self.broadcast(stored.id, stored.signed.raw, stored.signed.tx_hash)
        return True

    # -- nonce gaps ------------------------------------------------------------------

    async def fill_gaps(self) -> int:
        """Nonces between the chain's count and our next nonce that no stored
        transaction holds (a lost claim, a restored database) block every
        later one: fill each with a zero-value transfer to ourselves."""
        latest = await self.nonce_count()
        async with self.pool.acquire() as conn:
            nxt = await conn.fetchval(Q.next_nonce, self.chain, self.address)
            if nxt is None or nxt <= latest:
                return 0
            stored = {r["nonce"] for r in await conn.fetch(Q.stored_nonces_from, self.chain, self.address, latest)}
        gaps = [n for n in range(latest, nxt) if n not in stored]
        if not gaps:
            return 0
        base, priority = await self.fee_market()
        fees = initial_fees(base_fee=base, suggested_priority=priority, cap=self.pc.max_fee_per_gas,
                            max_priority=self.pc.max_priority_fee_per_gas)
        filled = []
        async with self.pool.acquire() as conn, conn.transaction():
            for n in gaps:
                attempt = 1 + await conn.fetchval(Q.max_attempt, self.chain, self.address, n)
                filled.append(await self.store_tx(conn, purpose="gap_fill", batch_id=None, to=self.address, data=b"",
                                                  gas=GAP_FILL_GAS, fees=fees, nonce=n, attempt=attempt))
            await audit(conn, ACTOR, "payout.nonce_gaps_filled", f"sender:{self.chain}:{self.address}",
                        {"nonces": gaps})
        pm.NONCE_GAPS.labels(self.chain).inc(len(gaps))
        log.warning("payout.nonce_gap", chain=self.chain, nonces=gaps, chain_count=latest, next_nonce=nxt)
        for s in filled:
            await self.broadcast(s.id, s.signed.raw, s.signed.tx_hash)
        return len(gaps)


async def list_transactions(conn: asyncpg.Connection, chain: str | None = None, limit: int = 1000) -> list[dict]:
    """Signed payout transactions without their raw bytes, newest first."""
    return json_rows(await conn.fetch(Q.list_txs, chain, limit))


async def stuck_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Per chain, transactions that stopped bumping at the fee cap and are not mined yet."""
    return {r["chain"]: int(r["n"]) for r in await conn.fetch(Q.stuck_counts)}
