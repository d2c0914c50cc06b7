"""Submitting stored XRPL transactions of one hot wallet, and deciding the fate
of those that never validated. After the XRPL reliable-submission guide and
Chainlink's txmgr:

- a Sequence is claimed in the database in the transaction that stores the
  signed blob and its hash (xrpl_payout_worker); submission happens only
  after that commit. On restart stored blobs are submitted again as they are
  while their LastLedgerSequence is still ahead: the same bytes can apply at
  most once, so resubmitting is always safe.
- the preliminary `submit` answer decides nothing but `tem` (see
  `submit_action`): outcomes come from validated ledgers, through the XRPL
  follower and `XrplPayoutHook`.
- a transaction is dead only when the follower has committed a validated
  ledger past its LastLedgerSequence without it AND a server proves it absent
  from every ledger it could be in (`tx` with min/max_ledger answering
  txnNotFound with searched_all, or complete_ledgers covering the window).
  Then the request is given back to the queue (a new Sequence is claimed for
  it) and the dead Sequence, never used, becomes a hole that `fill_holes`
  closes with a no-op AccountSet, because every later Sequence waits for it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
from xrpl.models.requests import GenericRequest
from xrpl.models.transactions import AccountSet
from xrpl.transaction import sign

from config import ConfigError
from config.logs import get_logger
from config.section_payouts import XrplPayoutChainConfig
from db import Queries, audit
from indexer.chain_state import final_height
from indexer.errors import BadRpcResponse
from indexer.xrpl.client import XrplClient, XrplRpcError
from settlement.payouts.requests import json_rows
from settlement.payouts.xrpl.outcomes import RETRYABLE_TEC, requeue_or_hold  # noqa: F401 (re-exported)

Q = Queries(Path(__file__).parents[1] / "payouts.sql")
XQ = Queries(Path(__file__).with_name("xrpl.sql"))
log = get_logger("settlement.xrpl_payouts")
ACTOR = "xrpl-payout-worker"
RESUBMIT_SECONDS = 4.0
# Answers that mean "pay more": the stored bytes keep their fee (resubmitting
# them stays safe); signatures made from now on carry a higher one, and a
# payment that never applies is proven dead after LastLedgerSequence and
# signed again at the higher fee.
ESCALATE_ON = {"telINSUF_FEE_P", "terQUEUED"}
MAX_ESCALATION = 1024


def submit_action(engine_result: str) -> str:
    """'refused' (never applies anywhere) or 'pending' (wait for validated ledgers).

    - tes / tec: applied to the server's open ledger; provisional until a
      validated ledger holds it (a tec there burns the fee and uses the Sequence).
    - ter (terPRE_SEQ, terQUEUED, ...): held or queued by the server; it may
      still apply; resubmitting the same bytes is harmless.
    - tel (telINSUF_FEE_P, telCAN_NOT_QUEUE, ...): this server would not relay
      it now; a later submission (or another server) may take it.
    - tef: not applied to this server's open ledger, but not proof of anything:
      tefPAST_SEQ may mean this very transaction is already in a ledger (a
      resubmission after a crash), tefMAX_LEDGER that its window closed. Both
      resolve through the validated ledgers: found -> its result; past
      LastLedgerSequence and proven absent -> dead, requeued.
    - tem: malformed; no server or ledger will ever apply these bytes, so the
      request goes to a human (it is a bug or bad input) and the Sequence is free.
    """
    if engine_result.startswith("tem"):
        return "refused"
    return "pending"


def sign_blob(tx: Any, hot) -> tuple[str, str]:
    """(blob, hash) of a fully specified transaction model; nothing is autofilled."""
    signed = sign(tx, hot.wallet)
    return signed.blob(), signed.get_hash()


class XrplSender:
    def __init__(self, pool: asyncpg.Pool, client: XrplClient, pc: XrplPayoutChainConfig, hot) -> None:
        self.pool = pool
        self.client = client
        self.pc = pc
        self.chain = pc.chain
        self.hot = hot
        self.address = hot.address
        self._seen: set[int] = set()  # payment ids this process has submitted
        self.escalation = 1  # doubles on each telINSUF_FEE_P / terQUEUED answer, back to 1 once one applies

    # -- server reads (never inside a DB transaction) -------------------------------

    async def server_state(self) -> dict:
        """validated index, network id and reserves (drops) from server_info."""
        info = (await self.client.request("server_info", {})).get("info")
        v = info.get("validated_ledger") if isinstance(info, dict) else None
        if not isinstance(v, dict) or not isinstance(v.get("seq"), int):
            raise BadRpcResponse("server_info: validated_ledger.seq missing")
        return {
            "validated": v["seq"],
            "network_id": info.get("network_id"),
            "reserve_base": int(round(float(v.get("reserve_base_xrp", 1)) * 1_000_000)),
            "reserve_inc": int(round(float(v.get("reserve_inc_xrp", 0.2)) * 1_000_000)),
            "complete": info.get("complete_ledgers"),
        }

    async def account(self, address: str) -> dict | None:
        """Validated AccountRoot fields, or None when the account does not exist."""
        try:
            res = await self.client.request("account_info", {"account": address, "ledger_index": "validated"})
        except XrplRpcError as exc:
            if exc.token == "actNotFound":
                return None
            raise
        data = res.get("account_data")
        if not isinstance(data, dict):
            raise BadRpcResponse(f"account_info {address}: account_data missing")
        return {**data, "flags": res.get("account_flags") or {}}

    async def trust_line(self, address: str, currency: str, issuer: str) -> dict | None:
        try:
            res = await self.client.request("account_lines", {"account": address, "peer": issuer,
                                                             "ledger_index": "validated"})
        except XrplRpcError as exc:
            if exc.token == "actNotFound":
                return None
            raise
        return next((ln for ln in res.get("lines") or [] if ln.get("currency") == currency), None)

    # -- submission -----------------------------------------------------------------

    async def submit(self, row: asyncpg.Record) -> str:
        try:
            res = await self.client.request("submit", {"tx_blob": row["tx_blob"]})
            result, error = str(res.get("engine_result")), None
        except XrplRpcError as exc:
            # Transport or server trouble: the bytes are stored, the next pass submits them again.
            result, error = None, str(exc.args[0])[:300]
        self._seen.add(row["id"])
        self._note_fee_answer(result)
        action = submit_action(result) if result else "pending"
        async with self.pool.acquire() as conn, conn.transaction():
            if action == "refused":
                await self._refuse(conn, row, result)
            else:
                await conn.execute(XQ.mark_submitted, row["id"], result, error)
                await audit(conn, ACTOR, "payout.xrpl_submitted", f"tx:{row['tx_hash']}",
                            {"chain": self.chain, "sequence": row["sequence"], "result": result, "error": error})
        log.info("payout.xrpl_submitted", chain=self.chain, tx=row["tx_hash"], sequence=row["sequence"],
                 result=result, error=error)
        return action

    async def _refuse(self, conn: asyncpg.Connection, row: asyncpg.Record, result: str) -> None:
        why = f"{result}: the server refused the signed payment as malformed; it can never apply"
        if await conn.fetchval(XQ.close_payment, row["id"], "refused", why) is None:
            return
        if row["purpose"] == "payout":
            await conn.execute(XQ.hold_request, row["request_id"], why)
            await conn.execute(XQ.set_item_outcome, row["batch_id"], row["request_id"], "failed")
            await conn.execute(XQ.finish_batch, row["batch_id"], row["min_ledger"])
        await audit(conn, ACTOR, "payout.xrpl_refused", f"tx:{row['tx_hash']}",
                    {"chain": self.chain, "request": row["request_id"], "reason": why})
        log.error("payout.xrpl_refused", chain=self.chain, tx=row["tx_hash"], result=result)

    # -- what is in flight ------------------------------------------------------------

    async def track(self, *, killed: bool, paused_assets: frozenset[str] = frozenset()) -> None:
        """Decide closed windows; submit again what is open, unless killed or its asset is paused."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(XQ.open_payments, self.chain, self.address)
            final = await final_height(conn, self.chain)
        if not rows:
            return
        validated = (await self.server_state())["validated"]
        now = dt.datetime.now(dt.timezone.utc)
        for row in rows:
            if validated > row["last_ledger"]:
                # Its window is closed: it is in a validated ledger (the hook books it
                # once the follower commits that ledger) or it never will be.
                if final is not None and final >= row["last_ledger"]:
                    await self._decide_expired(row)
                continue
            if killed or row["asset"] in paused_assets:
                continue
            last = row["last_submit_at"]
            if row["id"] not in self._seen or last is None or (now - last).total_seconds() >= RESUBMIT_SECONDS:
                await self.submit(row)

    async def prove_absent(self, tx_hash: str, lo: int, hi: int) -> bool:
        """True only when one server shows `tx_hash` in none of ledgers lo..hi.

        That server's complete_ledgers must cover lo..hi both before and after
        its `tx` answer: a server that was still filling (or had just pruned)
        part of the window when it answered txnNotFound proves nothing, even
        with searched_all, so the window is read on each side of the lookup.
        """
        for conn in self.client.usable():
            try:
                before = await self.client.server_info(conn)
                c = await conn.get()
                res = (await c.request(GenericRequest(method="tx", transaction=tx_hash, min_ledger=lo,
                                                      max_ledger=hi))).result
                after = await self.client.server_info(conn)
            except Exception as exc:  # noqa: BLE001 - a failed proof is no proof; try the next server
                log.info("payout.xrpl_proof_unavailable", chain=self.chain, endpoint=conn.ep.label,
                         error=f"{exc.__class__.__name__}: {exc}"[:200])
                continue
            if res.get("error") != "txnNotFound":
                return False  # found (validated or not): never dead
            gaps = [str(i.complete.missing(lo, hi)) for i in (before, after) if i.complete.missing(lo, hi).runs]
            if gaps:
                log.info("payout.xrpl_proof_incomplete", chain=self.chain, endpoint=conn.ep.label,
                         window=f"{lo}-{hi}", missing=gaps)
                continue
            if res.get("searched_all") is False:
                continue
            return True
        return False

    async def check_network(self, expected: int) -> None:
        """Exclude servers of another network, as the follower does; none left is a config error."""
        for conn in self.client.usable():
            try:
                info = await self.client.server_info(conn)
            except (XrplRpcError, BadRpcResponse) as exc:
                log.warning("payout.xrpl_server_info_failed", chain=self.chain, endpoint=conn.ep.label,
                            error=str(exc)[:200])
                continue
            if info.network_id is not None and info.network_id != expected:
                self.client.exclude(conn, f"network id {info.network_id}, expected {expected}")
        if not self.client.usable():
            raise ConfigError(f"chains.{self.chain}.rpc: no endpoint serves network id {expected}")

    async def fee_drops(self) -> int:
        """The Fee of the next signature: the server's open-ledger fee (escalated
        while servers answer telINSUF_FEE_P / terQUEUED), never below
        `fee_drops` and never above `max_fee_drops`."""
        open_fee = self.pc.fee_drops
        try:
            drops = (await self.client.request("fee", {})).get("drops") or {}
            open_fee = int(drops.get("open_ledger_fee") or drops.get("base_fee") or self.pc.fee_drops)
        except (XrplRpcError, BadRpcResponse, ValueError, TypeError) as exc:
            log.warning("payout.xrpl_fee_unavailable", chain=self.chain, error=str(exc)[:200])
        fee = max(self.pc.fee_drops, open_fee) * self.escalation
        if fee > self.pc.max_fee_drops:
            log.warning("payout.xrpl_fee_capped", chain=self.chain, wanted=fee, cap=self.pc.max_fee_drops)
        return min(fee, self.pc.max_fee_drops)

    def _note_fee_answer(self, result: str | None) -> None:
        if result in ESCALATE_ON:
            self.escalation = min(self.escalation * 2, MAX_ESCALATION)
        elif result is not None and (result.startswith("tes") or result.startswith("tec")):
            self.escalation = 1

    async def _decide_expired(self, row: asyncpg.Record) -> None:
        lo, hi = row["min_ledger"], row["last_ledger"]
        if not await self.prove_absent(row["tx_hash"], lo, hi):
            log.warning("payout.xrpl_absence_unproven", chain=self.chain, tx=row["tx_hash"], window=f"{lo}-{hi}")
            return
        why = (f"not in validated ledgers {lo}-{hi} (LastLedgerSequence {hi} passed, "
               f"absence proven); Sequence {row['sequence']} never used")
        async with self.pool.acquire() as conn, conn.transaction():
            # Rechecked under the row lock: the hook may have booked it meanwhile.
            if await conn.fetchval(XQ.close_payment, row["id"], "dead", why) is None:
                return
            outcome = None
            if row["purpose"] == "payout":
                outcome = await requeue_or_hold(conn, self.pc, row, why)
            await audit(conn, ACTOR, "payout.xrpl_dead", f"tx:{row['tx_hash']}",
                        {"chain": self.chain, "sequence": row["sequence"], "request": row["request_id"],
                         "reason": why, "then": outcome})
        log.warning("payout.xrpl_dead", chain=self.chain, tx=row["tx_hash"], sequence=row["sequence"],
                    request=row["request_id"], then=outcome)

    # -- holes ------------------------------------------------------------------------

    async def fill_holes(self, state: dict) -> int:
        """Close Sequences below our next one that no live transaction holds
        (a dead or refused one, a restored database) with a no-op AccountSet:
        every later Sequence waits for them."""
        acct = await self.account(self.address)
        if acct is None:
            return 0
        async with self.pool.acquire() as conn:
            holes = [r["sequence"] for r in await conn.fetch(XQ.holes, self.chain, self.address, int(acct["Sequence"]))]
        if not holes:
            return 0
        last = state["validated"] + self.pc.last_ledger_offset
        fee = await self.fee_drops()
        stored = []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.fetchval(XQ.lock_sequence, self.chain, self.address)
            still = {r["sequence"] for r in await conn.fetch(XQ.holes, self.chain, self.address, int(acct["Sequence"]))}
            for seq in holes:
                if seq not in still:
                    continue
                tx = AccountSet(account=self.address, sequence=seq, fee=str(fee),
                                last_ledger_sequence=last, network_id=network_id_field(state))
                blob, h = sign_blob(tx, self.hot)
                pid = await conn.fetchval(XQ.insert_payment, self.chain, self.address, seq, "fill", None, None, None,
                                          None, None, fee, state["validated"], last, blob, h)
                stored.append(pid)
            if stored:
                await audit(conn, ACTOR, "payout.xrpl_holes_filled", f"account:{self.chain}:{self.address}",
                            {"sequences": sorted(still & set(holes))})
        if stored:
            log.warning("payout.xrpl_sequence_holes", chain=self.chain, sequences=holes)
        async with self.pool.acquire() as conn:
            rows = [r for r in await conn.fetch(XQ.open_payments, self.chain, self.address) if r["id"] in stored]
        for r in rows:
            await self.submit(r)
        return len(stored)


def network_id_field(state: dict) -> int | None:
    # rippled requires NetworkID above 1024 and refuses it at or below (telNETWORK_ID_MAKES_TX_NON_CANONICAL).
    net = state.get("network_id")
    return net if isinstance(net, int) and net > 1024 else None


async def list_payments(conn: asyncpg.Connection, chain: str | None = None, limit: int = 1000) -> list[dict]:
    """XRPL payout payments without their signed blobs, newest first."""
    return json_rows(await conn.fetch(XQ.list_payments, chain, limit))
