"""The payout loop of one XRPL chain: batch, approve, release, check, sign, submit.

Each `step`:
1. kill switches (config and run-time) are read; while one is on nothing is
   signed or submitted (dead transactions are still recognised).
2. in flight: stored blobs submitted (again) while their window is open;
   past LastLedgerSequence, absence proven, then requeued (xrpl_payout_sender).
3. Sequence holes left by dead transactions are filled.
4. pending requests become batches exactly as on EVM (count, amount and
   day caps; above the approval threshold they wait for a human). XRPL has
   no enabled batch transaction: a released batch is paid one Payment per request.
5. each request of a released batch is checked against the ledger before
   signing (RequireDest without a tag, a new account below the reserve, our
   own reserve, IOU trust lines), then signed with a Sequence claimed in the
   database and stored with its hash BEFORE it is submitted.
Outcomes come from validated ledgers only (xrpl_payout_hook).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
from xrpl.models.amounts import IssuedCurrencyAmount
from xrpl.models.transactions import Memo, Payment

from config import Settings
from config.logs import get_logger
from config.section_payouts import XrplPayoutChainConfig
from db import Queries, audit
from db.values import amount_text
from indexer.xrpl.client import XrplClient
from settlement.ledger.pauses import is_paused, open_pauses
from settlement.ledger.rules import asset_id
from settlement.payouts.loop import (
    batch_state,
    choose_requests,
    record_batch,
    run_steps,
)
from settlement.payouts.requests import kill_switch_on, refresh_gauges
from settlement.payouts.xrpl.config import (
    HotWallet,
    XrplAsset,
    check_xrpl_payout_config,
    xrpl_assets,
)
from settlement.payouts.xrpl.sender import (
    ACTOR,
    XrplSender,
    network_id_field,
    sign_blob,
)

Q = Queries(Path(__file__).parents[1] / "payouts.sql")
XQ = Queries(Path(__file__).with_name("xrpl.sql"))
log = get_logger("settlement.xrpl_payouts")
MAX_BATCHES_PER_STEP = 20
MEMO_TYPE = "chainsettle/payout".encode().hex().upper()


def memo_for(request_id: int) -> Memo:
    return Memo(memo_type=MEMO_TYPE, memo_data=f"payout:{request_id}".encode().hex().upper())


def refusal(asset: XrplAsset, amount: int, tag: int | None, dest: dict | None, line: dict | None,
            reserve_base: int) -> str | None:
    """Why the ledger would refuse this payment (a human must look), or None. Pure."""
    if dest is None:
        if not asset.native:
            return "destination account does not exist, so it cannot hold an issued currency"
        if amount < reserve_base:
            return (f"destination account does not exist and {amount} drops is below the base reserve "
                    f"{reserve_base}: it would fail with tecNO_DST_INSUF_XRP")
        return None
    if tag is None and (dest["flags"].get("requireDestinationTag") or int(dest.get("Flags", 0)) & 0x00020000):
        return "destination requires a destination tag (RequireDest) and the request has none"
    if not asset.native:
        if line is None:
            return f"destination has no trust line for {asset.currency} issued by {asset.issuer}"
        room = asset.units(line["limit"]) - asset.units(line["balance"])
        if room < amount:
            return f"destination trust line has room for {room} base units, the payout is {amount}"
    return None


class XrplPayoutWorker:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, pc: XrplPayoutChainConfig, *,
                 client: XrplClient | None = None) -> None:
        i = settings.payouts.chains.index(pc)
        check_xrpl_payout_config(settings, pc)
        self.hot = HotWallet(pc.seed, f"payouts.chains[{i}].seed")
        check_xrpl_payout_config(settings, pc, self.hot.address)
        self.settings, self.ps, self.pc, self.pool, self.chain = settings, settings.payouts, pc, pool, pc.chain
        cfg = settings.chain(pc.chain)
        self.client = client or XrplClient(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout,
                                           max_attempts=cfg.max_attempts)
        self.assets = xrpl_assets(settings, pc)
        self.sender = XrplSender(pool, self.client, pc, self.hot)
        self._network_checked = False

    async def close(self) -> None:
        await self.client.close()

    async def killed(self, conn: asyncpg.Connection) -> bool:
        return self.ps.kill_switch or self.pc.kill_switch or await kill_switch_on(conn, self.chain)

    async def step(self) -> None:
        if not self._network_checked:
            # The follower's rule for the payout client too: never sign for a server of another network.
            await self.sender.check_network(self.settings.chain(self.chain).effective_chain_id)
            self._network_checked = True
        async with self.pool.acquire() as conn:
            killed = await self.killed(conn)
            paused = frozenset(p["asset_id"].split(":", 1)[1] for p in await open_pauses(conn)
                               if p["asset_id"].startswith(f"{self.chain}:"))
        await self.sender.track(killed=killed, paused_assets=paused)
        await self.make_batches()
        if not killed and not self.ps.dry_run:
            state = await self.sender.server_state()
            await self.sender.fill_holes(state)
            await self.release_ready()
            await self.sign_items(state)
        async with self.pool.acquire() as conn:
            await refresh_gauges(conn, [self.chain])

    async def run(self, stop: asyncio.Event) -> None:
        log.info("payout.worker_started", chain=self.chain, sender=self.hot.address, dry_run=self.ps.dry_run)
        await run_steps(self.step, stop, chain=self.chain, poll_interval=self.ps.poll_interval, log=log)

    # -- batching (the pipeline's caps and approvals) ---------------------------------

    async def make_batches(self) -> int:
        made = 0
        for asset in self.assets.values():
            async with self.pool.acquire() as conn:
                if await is_paused(conn, asset_id(self.chain, asset.name)):
                    continue
            while made < MAX_BATCHES_PER_STEP and await self._make_batch(asset):
                made += 1
        return made

    async def _make_batch(self, asset: XrplAsset) -> bool:
        cfg = self.pc.asset(asset.name)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(Q.pending_requests, self.chain, asset.name, self.ps.max_recipients)
            if not rows:
                return False
            chosen = await choose_requests(conn, rows, chain=self.chain, asset=asset.name, cfg=cfg,
                                           max_recipients=self.ps.max_recipients,
                                           wait_seconds=self.ps.batch_wait_seconds)
            if not chosen:
                return False
            batch_id = "0x" + os.urandom(32).hex()
            total = sum(p.amount for p in chosen)
            state = batch_state(cfg, total)
            # gas_limit / expiry / source / treasury / batcher mean nothing on XRPL: neutral values.
            await conn.execute(Q.insert_batch, batch_id, self.chain, asset.name, asset.token, 0, self.hot.address,
                               self.hot.address, len(chosen), total, 1, 0, state, None)
            await record_batch(conn, batch_id, chosen, chain=self.chain, asset=asset.name, total=total, state=state,
                               actor=ACTOR)
        log.info("payout.batch_created", chain=self.chain, batch=batch_id, asset=asset.name, items=len(chosen),
                 total=amount_text(total), state=state)
        return True

    async def release_ready(self) -> int:
        """Ready (approved) batches become 'signed': their requests are paid one Payment each."""
        released = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                if await self.killed(conn):
                    return released
                paused = [p["asset_id"].split(":", 1)[1] for p in await open_pauses(conn)
                          if p["asset_id"].startswith(f"{self.chain}:")]
                b = await conn.fetchrow(Q.claim_ready_batch, self.chain, paused)
                if b is None:
                    return released
                await conn.execute(Q.set_batch_signed, b["batch_id"], "signed", self.hot.address,
                                   "xrpl:one-payment-per-request", self.hot.address, 0)
                await audit(conn, ACTOR, "payout.batch_released", f"batch:{b['batch_id']}",
                            {"chain": self.chain, "items": b["item_count"], "sender": self.hot.address})
            released += 1

    # -- signing ------------------------------------------------------------------------

    async def sign_items(self, state: dict) -> int:
        signed = 0
        while True:
            async with self.pool.acquire() as conn:
                open_n = sum(int(r["n"]) for r in await conn.fetch(XQ.in_flight, self.chain, self.hot.address))
                item = None
                if open_n < self.pc.max_in_flight:
                    async with conn.transaction():
                        item = await conn.fetchrow(XQ.item_to_sign, self.chain)
            if item is None:
                return signed
            outcome = await self._sign_one(item, state)
            if outcome == "wait":
                return signed
            signed += outcome == "signed"

    async def _sign_one(self, item: asyncpg.Record, state: dict) -> str:
        asset = self.assets[item["asset"]]
        amount, tag = int(item["amount"]), item["destination_tag"]
        # Chain reads first, never inside a DB transaction.
        dest = await self.sender.account(item["recipient"])
        line = None
        if dest is not None and not asset.native:
            line = await self.sender.trust_line(item["recipient"], asset.currency, asset.issuer)  # type: ignore[arg-type]
        hot = await self.sender.account(self.hot.address)
        hot_line = None
        if not asset.native:
            hot_line = await self.sender.trust_line(self.hot.address, asset.currency, asset.issuer)  # type: ignore[arg-type]
        why = refusal(asset, amount, tag, dest, line, state["reserve_base"])
        if hot is None:
            why = why or f"the hot wallet {self.hot.address} does not exist on the ledger"
        fee = await self.sender.fee_drops()
        # LastLedgerSequence counts from the validated ledger now, not when the step began.
        state = {**state, **await self.sender.server_state()}
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(XQ.request_still_batched, item["id"], item["batch_id"]):
                return "skipped"
            if await self.killed(conn):
                return "wait"
            if await is_paused(conn, asset_id(self.chain, item["asset"])):
                # A released batch's remaining items wait too while their asset is paused.
                return "wait"
            await conn.execute(XQ.ensure_sequence, self.chain, self.hot.address, int(hot["Sequence"]) if hot else 1)
            await conn.fetchval(XQ.lock_sequence, self.chain, self.hot.address)  # serialises the spend check
            if why is None:
                flight = {r["asset"]: r for r in await conn.fetch(XQ.in_flight, self.chain, self.hot.address)}
                fees = sum(int(r["fees"]) for r in flight.values())
                reserve = state["reserve_base"] + int(hot["OwnerCount"]) * state["reserve_inc"]
                spendable = int(hot["Balance"]) - reserve - fees - fee
                if asset.native:
                    spendable -= int(flight["native"]["amount"]) if "native" in flight else 0
                    enough = amount <= spendable
                    free = int(hot["Balance"]) - reserve - fee
                else:
                    held = asset.units(hot_line["balance"]) if hot_line else 0
                    enough = spendable >= 0 and amount <= held - (int(flight[asset.name]["amount"]) if asset.name in flight else 0)
                    free = held if spendable >= 0 else -1
                if not enough:
                    if flight:
                        return "wait"  # what is in flight may settle (or fail) first: decide then
                    why = (f"paying {amount} would dip into the hot wallet's reserve or past its funds "
                           f"(spendable {max(free, 0)} after reserve {reserve} and fee)")
            if why is not None:
                await conn.execute(XQ.hold_request, item["id"], why)
                await conn.execute(XQ.set_item_outcome, item["batch_id"], item["id"], "failed")
                await conn.execute(XQ.finish_batch, item["batch_id"], state["validated"])
                await audit(conn, ACTOR, "payout.xrpl_refused_before_signing", f"payout:{item['id']}",
                            {"chain": self.chain, "to": item["recipient"], "reason": why})
                log.warning("payout.xrpl_refused_before_signing", chain=self.chain, request=item["id"], reason=why)
                return "refused"
            seq = await conn.fetchval(XQ.claim_sequence, self.chain, self.hot.address, int(hot["Sequence"]))
            last = state["validated"] + self.pc.last_ledger_offset
            xrpl_amount = asset.amount(amount)
            tx = Payment(
                account=self.hot.address, destination=item["recipient"],
                amount=xrpl_amount if asset.native else IssuedCurrencyAmount(**xrpl_amount),  # type: ignore[arg-type]
                destination_tag=tag, sequence=seq, fee=str(fee), last_ledger_sequence=last, flags=0,
                memos=[memo_for(item["id"])], network_id=network_id_field(state),
            )
            blob, tx_hash = sign_blob(tx, self.hot)
            pid = await conn.fetchval(XQ.insert_payment, self.chain, self.hot.address, seq, "payout", item["id"],
                                      item["batch_id"], item["recipient"], tag, amount, fee, state["validated"],
                                      last, blob, tx_hash)
            await audit(conn, ACTOR, "payout.xrpl_signed", f"tx:{tx_hash}", {
                "chain": self.chain, "request": item["id"], "batch": item["batch_id"], "sequence": seq,
                "last_ledger": last, "to": item["recipient"], "tag": tag, "amount": amount_text(amount)})
        log.info("payout.signed", chain=self.chain, request=item["id"], sequence=seq, tx=tx_hash, last_ledger=last)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(XQ.payment_row, pid)
        await self.sender.submit(row)
        return "signed"
