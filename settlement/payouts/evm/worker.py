"""The payout loop of one chain: batch, approve, sign, send, watch, expire.

Each `step` is one iteration:
1. kill switches (config, global and per chain, and the run-time ones in
   payout_controls) are read; while one is on nothing is signed, bumped or
   broadcast. Each signature re-checks them inside its own transaction, so a
   switch stops signing within one iteration even in the middle of a step.
2. in-flight transactions: receipts, rebroadcast of stored bytes, bumps,
   nonces used by someone else, gaps.
3. batches proven dead (a final block's timestamp past their expiry and
   `executed(id)` false at that block) give their requests back to the queue.
4. pending requests become batches (per asset, capped by count, amount,
   the day's cap and gas), above the approval threshold they wait for a human.
5. ready batches are signed (EIP-712), their transaction signed and stored
   with its nonce, then broadcast; in dry-run mode the signed payload is
   stored and nothing is sent.
Confirmation is not here: it comes from final events (payout_hook).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from config.section_payouts import PayoutChainConfig
from db import Queries, audit
from db.values import amount_text
from indexer.chain_state import final_height
from indexer.evm.rpc import EvmRpc
from settlement.ledger.pauses import is_paused, open_pauses
from settlement.ledger.rules import asset_id
from settlement.payouts import metrics as pm
from settlement.payouts.evm import batcher_abi
from settlement.payouts.evm.config import (
    AssetPlan,
    asset_plan,
    check_payout_config,
    load_key,
)
from settlement.payouts.evm.eip712 import (
    Batch,
    Domain,
    execute_batch_calldata,
    sign_batch,
)
from settlement.payouts.evm.fees import max_recipients_for_gas
from settlement.payouts.evm.sender import ACTOR, EvmTxSender
from settlement.payouts.loop import (
    batch_state,
    choose_requests,
    record_batch,
    run_steps,
)
from settlement.payouts.requests import kill_switch_on, refresh_gauges

Q = Queries(Path(__file__).with_name("evm.sql"))
PQ = Queries(Path(__file__).parents[1] / "payouts.sql")
log = get_logger("settlement.payouts")
MAX_BATCHES_PER_STEP = 20
GAP_CHECK_EVERY = 10  # steps


class EvmPayoutWorker:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, pc: PayoutChainConfig, *, rpc: EvmRpc | None = None) -> None:
        check_payout_config(settings)
        i = settings.payouts.chains.index(pc)
        self.settings = settings
        self.ps = settings.payouts
        self.pc = pc
        self.pool = pool
        self.chain = pc.chain
        cfg = settings.chain(pc.chain)
        self.chain_id = cfg.effective_chain_id
        self.rpc = rpc or EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=cfg.max_attempts)
        self.signer = load_key(pc.signer, f"payouts.chains[{i}].signer")
        sender = load_key(pc.sender, f"payouts.chains[{i}].sender")
        self.sender = EvmTxSender(pool, self.rpc, chain_id=self.chain_id, sender=sender, pc=pc, ps=self.ps)
        self.assets: list[AssetPlan] = [asset_plan(settings, pc, a.name) for a in pc.assets]  # type: ignore[misc]
        self.steps = 0
        # More work for the same sender, run after each tracking pass (the composition root adds the
        # ClaimDistributor owner calls: settlement/distributions/owner_send.py); same nonces, same tracking.
        self.after_track: list[Callable[..., Awaitable[None]]] = []

    async def close(self) -> None:
        await self.rpc.close()

    def config_killed(self) -> bool:
        return self.ps.kill_switch or self.pc.kill_switch

    async def killed(self, conn: asyncpg.Connection) -> bool:
        return self.config_killed() or await kill_switch_on(conn, self.chain)

    async def step(self) -> None:
        async with self.pool.acquire() as conn:
            killed = await self.killed(conn)
            held = frozenset(r["batch_id"] for r in await conn.fetch(Q.held_batches, self.chain,
                                                                    await self.paused_assets(conn)))
        pm.KILLED.labels(self.chain).set(1 if killed else 0)
        await self.sender.track(killed=killed, held_batches=held)
        for work in self.after_track:
            await work(killed=killed, dry_run=self.ps.dry_run)
        if not killed and self.steps % GAP_CHECK_EVERY == 0:
            await self.sender.fill_gaps()
        await self.expire_dead()
        await self.make_batches()
        if not killed:
            await self.sign_ready()
        async with self.pool.acquire() as conn:
            await refresh_gauges(conn, [self.chain])
        self.steps += 1

    async def run(self, stop: asyncio.Event) -> None:
        log.info("payout.worker_started", chain=self.chain, signer=self.signer.address,
                 sender=self.sender.address, dry_run=self.ps.dry_run)
        await run_steps(self.step, stop, chain=self.chain, poll_interval=self.ps.poll_interval, log=log)

    # -- batching -------------------------------------------------------------------

    async def make_batches(self) -> int:
        made = 0
        latest = None
        for plan in self.assets:
            async with self.pool.acquire() as conn:
                if await is_paused(conn, asset_id(self.chain, plan.name)):
                    continue
            while made < MAX_BATCHES_PER_STEP:
                if latest is None:
                    latest = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
                cut, more = await self._make_batch(plan, int(latest["gasLimit"], 16), int(latest["timestamp"], 16))
                if not cut:
                    break
                made += 1
                if not more:
                    break
        return made

    async def _make_batch(self, plan: AssetPlan, block_gas_limit: int, chain_time: int) -> tuple[bool, bool]:
        """(a batch was cut, more requests were queued behind it when it was read).

        A batch that took the whole queue as it read it ends the asset's
        batching for this step: what arrives while the step runs waits for the
        next one instead of going out in batches of one or two, each paying the
        batch's base gas and two signatures (under a steady stream of requests
        that is most batches)."""
        treasury = plan.source == 1
        limit = min(self.ps.max_recipients, max_recipients_for_gas(
            native=plan.native, treasury=treasury, block_gas_limit=block_gas_limit, gas_share=self.ps.gas_share,
            cap=self.ps.max_recipients))
        if limit == 0:
            log.error("payout.gas_share_too_small", chain=self.chain, asset=plan.name, block_gas_limit=block_gas_limit)
            return False, False
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(PQ.pending_requests, self.chain, plan.name, limit)
            if not rows:
                return False, False
            chosen = await choose_requests(conn, rows, chain=self.chain, asset=plan.name, cfg=plan.cfg,
                                           max_recipients=limit, wait_seconds=self.ps.batch_wait_seconds)
            if not chosen:
                return False, False
            batch_id = "0x" + os.urandom(32).hex()
            total = sum(p.amount for p in chosen)
            state = batch_state(plan.cfg, total)
            gas = batcher_abi.gas_limit(plan.native, len(chosen), treasury=treasury)
            expiry = chain_time + self.ps.batch_expiry_seconds
            await conn.execute(PQ.insert_batch, batch_id, self.chain, plan.name, plan.token, int(plan.source),
                               plan.treasury, self.pc.batcher, len(chosen), total, gas, expiry, state, None)
            await record_batch(conn, batch_id, chosen, chain=self.chain, asset=plan.name, total=total, state=state,
                               actor=ACTOR, details={"expiry": expiry})
        pm.BATCH_SIZE.labels(self.chain).observe(len(chosen))
        log.info("payout.batch_created", chain=self.chain, batch=batch_id, asset=plan.name, items=len(chosen),
                 total=amount_text(total), state=state)
        # LIMIT `limit` may have hidden more rows; fewer chosen than read means a cap ended the batch.
        return True, len(rows) == limit or len(chosen) < len(rows)

    # -- signing ----------------------------------------------------------------------

    async def sign_ready(self) -> int:
        signed = 0
        while True:
            prep = None if self.ps.dry_run else await self.sender.prepare()
            latest = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
            # Expiry counts from the signature, not from the batch's creation:
            # an approval the next morning signs a batch with a full window.
            expiry = int(latest["timestamp"], 16) + self.ps.batch_expiry_seconds
            stored = None
            async with self.pool.acquire() as conn, conn.transaction():
                if await self.killed(conn):
                    return signed
                paused = await self.paused_assets(conn)
                b = await conn.fetchrow(PQ.claim_ready_batch, self.chain, paused)
                if b is None:
                    return signed
                # A batch is bound to the contract it is signed for: until now
                # no signature of it exists, so it takes the configured batcher;
                # from here on signing, `to`, expiry proofs and confirmation use
                # the stored one, whatever the configuration says later.
                batcher = self.pc.batcher.lower()
                if b["batcher"].lower() != batcher:
                    await audit(conn, ACTOR, "payout.batch_rebound", f"batch:{b['batch_id']}",
                                {"from": b["batcher"], "to": batcher})
                items = await conn.fetch(PQ.batch_items, b["batch_id"])
                batch = Batch(
                    batch_id=bytes.fromhex(b["batch_id"][2:]), asset=b["token"], source=b["source"],
                    treasury=b["treasury"], recipients=tuple(i["recipient"] for i in items),
                    amounts=tuple(int(i["amount"]) for i in items), expiry=expiry,
                )
                signature = sign_batch(batch, Domain(self.chain_id, batcher), self.signer)
                calldata = execute_batch_calldata(batch, signature)
                state = "dry_run" if self.ps.dry_run else "signed"
                if prep is not None:
                    stored = await self.sender.store_tx(conn, purpose="batch", batch_id=b["batch_id"],
                                                        to=batcher, data=calldata, gas=b["gas_limit"],
                                                        fees=prep.fees, nonce_floor=prep.nonce_floor)
                await conn.execute(PQ.set_batch_signed, b["batch_id"], state, self.signer.address.lower(),
                                   "0x" + signature.hex(), batcher, expiry)
                details = {"signer": self.signer.address, "batcher": batcher, "expiry": expiry,
                           "calldata_bytes": len(calldata)}
                if stored is not None:
                    details.update(nonce=stored.nonce, tx=stored.signed.tx_hash)
                await audit(conn, ACTOR, f"payout.batch_{state}", f"batch:{b['batch_id']}", details)
            signed += 1
            if stored is None:
                # Never the calldata or the signature: whoever reads the log could submit it.
                log.info("payout.dry_run", chain=self.chain, batch=b["batch_id"], items=len(items),
                         calldata_bytes=len(calldata), batcher=batcher, expiry=expiry)
                continue
            log.info("payout.signed", chain=self.chain, batch=b["batch_id"], nonce=stored.nonce,
                     tx=stored.signed.tx_hash)
            await self.sender.broadcast(stored.id, stored.signed.raw, stored.signed.tx_hash)

    async def paused_assets(self, conn: asyncpg.Connection) -> list[str]:
        """Assets of this chain paused (reconciliation, fail closed): nothing of theirs is signed or sent."""
        prefix = f"{self.chain}:"
        return [p["asset_id"][len(prefix):] for p in await open_pauses(conn) if p["asset_id"].startswith(prefix)]

    # -- proving batches dead -----------------------------------------------------------

    async def expire_dead(self) -> int:
        """Batches past expiry at a final block that their OWN contract did not execute give their requests back.

        The proof is `executed(id)` on the batch's stored batcher (its signature
        is valid there and nowhere else), read at the final block by hash with
        requireCanonical (EIP-1898), and the same block's timestamp is past the
        expiry. A batch executed on a contract that is no longer indexed would
        never be confirmed: it is held for a human instead of waiting forever.
        """
        async with self.pool.acquire() as conn:
            final = await final_height(conn, self.chain)
        if final is None:
            return 0
        block = await self.rpc.call("eth_getBlockByNumber", [hex(final), False])
        if not block:
            return 0
        final_time, final_hash = int(block["timestamp"], 16), block["hash"]
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.expirable_batches, self.chain, final_time)
        indexed = {c.address.lower() for c in self.settings.chain(self.chain).contracts}
        expired = 0
        for r in rows:
            batcher = r["batcher"].lower()
            out = await self.rpc.call("eth_call", [
                {"to": batcher, "data": "0x" + batcher_abi.executed_calldata(bytes.fromhex(r["batch_id"][2:])).hex()},
                {"blockHash": final_hash, "requireCanonical": True}])
            if int(out, 16) != 0:
                if batcher not in indexed:
                    await self._hold_unindexed(r, batcher, final)
                continue  # executed: the confirmation hook books it when its events are final
            reason = (f"expired: final block {final} ({final_hash}, time {final_time}) is past expiry {r['expiry']} "
                      f"and executed() is false on its batcher {batcher}")
            async with self.pool.acquire() as conn, conn.transaction():
                if await conn.fetchval(Q.expire_batch, r["batch_id"], reason) is None:
                    continue
                rows_back = await conn.fetch(Q.requeue_items, r["batch_id"])
                requeued = [x["id"] for x in rows_back]
                # Nothing of a dead batch was paid: the day's cap gets back what
                # goes back to the queue (held requests give theirs back when an
                # operator releases or cancels them: each amount once).
                back = sum(int(x["amount"]) for x in rows_back)
                await conn.execute(PQ.give_back_daily_total, self.chain, r["asset"], r["cap_day"], back)
                await audit(conn, ACTOR, "payout.batch_expired", f"batch:{r['batch_id']}",
                            {"reason": reason, "requeued": requeued, "was": r["state"], "batcher": batcher,
                             "cap_given_back": str(back)})
            expired += 1
            pm.EXPIRED.labels(self.chain).inc()
            log.warning("payout.batch_expired", chain=self.chain, batch=r["batch_id"], requeued=len(requeued))
        return expired

    async def _hold_unindexed(self, r: asyncpg.Record, batcher: str, final: int) -> None:
        why = (f"executed at or below final block {final} on batcher {batcher}, which is not an indexed contract "
               f"of {self.chain}: index it (chains.contracts) to confirm, or check by hand")
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.execute(Q.hold_batch_items, r["batch_id"], why) == "UPDATE 0":
                return
            await audit(conn, ACTOR, "payout.batch_held", f"batch:{r['batch_id']}", {"reason": why})
        log.error("payout.batch_held", chain=self.chain, batch=r["batch_id"], reason=why)
