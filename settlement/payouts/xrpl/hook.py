"""XRPL payout outcomes from validated ledgers, inside the follower's write transaction.

`XrplPayoutHook` is an `indexer.store.StoreHook`. The XRPL follower writes
one event row per transaction of a watched account (role 'sender' for the
hot wallet's own); validated ledgers are final, so each committed range is
final. For each of our stored transactions found there, in that same
transaction:
- tesSUCCESS: the payment is validated, its request paid, and one ledger
  transaction debits the recipient's user account and credits the hot
  wallet. The fee is NOT booked here: the default XRPL fee rule books the
  fee of every transaction the wallet sends (tec ones included); booking it
  here too would count it twice.
- tec*: failed in a validated ledger (fee burnt, Sequence used): the request
  goes back to the queue when another try may cure it (funding, liquidity)
  or to a human with the result code.
- a fill (AccountSet closing a Sequence hole) is just marked validated.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries, audit
from settlement.ledger.books import Posting, post_transaction, sync_ledger
from settlement.ledger.rules import asset_id, wallet_account
from settlement.payouts import metrics as pm
from settlement.payouts.requests import user_account
from settlement.payouts.xrpl.sender import RETRYABLE_TEC, requeue_or_hold

XQ = Queries(Path(__file__).with_name("xrpl.sql"))
log = get_logger("settlement.xrpl_payouts")
ACTOR = "payout-confirmation"


def xrpl_payout_ledger_key(request_id: int, tx_hash: str) -> str:
    return f"payout:xrpl:{request_id}:{tx_hash}"


class XrplPayoutHook:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.configs = {pc.chain: pc for pc in settings.payouts.chains if pc.kind == "xrpl"}
        self._synced: set[str] = set()

    async def on_range(self, conn: asyncpg.Connection, chain: str, from_block: int, to_block: int) -> None:
        pc = self.configs.get(chain)
        if pc is None:
            return
        rows = await conn.fetch(XQ.payments_in_range, chain, from_block, to_block)
        for row in rows:
            if chain not in self._synced:
                await sync_ledger(conn, self.settings, chain)  # accounts and assets before postings name them
                self._synced.add(chain)
            await self._settle(conn, pc, row)

    async def on_rollback(self, conn: asyncpg.Connection, chain: str, ancestor: int) -> None:
        return None  # validated ledgers never roll back

    async def _settle(self, conn: asyncpg.Connection, pc, row: asyncpg.Record) -> None:
        result, ledger = row["ledger_result"], row["block_number"]
        if row["state"] in ("dead", "refused"):
            # Proven absent yet here: the proof was wrong. Say so as loudly as we can.
            log.critical("payout.xrpl_dead_tx_validated", chain=row["chain"], tx=row["tx_hash"], request=row["request_id"])
        ok = result == "tesSUCCESS"
        await conn.execute(XQ.mark_validated, row["id"], "validated" if ok else "failed", result, ledger)
        if row["purpose"] != "payout":
            return
        if ok:
            await conn.execute(XQ.pay_request, row["request_id"])
            await conn.execute(XQ.set_item_outcome, row["batch_id"], row["request_id"], "sent")
            aid = asset_id(row["chain"], row["asset"])
            amount = int(row["amount"])
            await post_transaction(
                conn, key=xrpl_payout_ledger_key(row["request_id"], row["tx_hash"]), cause_kind="payout",
                cause={"request_id": row["request_id"], "batch_id": row["batch_id"], "tx_hash": row["tx_hash"],
                       "ledger": ledger, "sequence": row["sequence"]},
                chain=row["chain"], block_number=ledger,
                postings=[Posting(user_account(row["chain"], row["destination"]), aid, amount),
                          Posting(wallet_account(row["chain"], row["account"]), aid, -amount)],
                payout_id=f"xrpl:{row['request_id']}", tx_hash=row["tx_hash"],
            )
            await conn.execute(XQ.finish_batch, row["batch_id"], ledger)
            then = "paid"
        else:
            why = f"{result} in validated ledger {ledger} (fee burnt, Sequence {row['sequence']} used)"
            if result in RETRYABLE_TEC:
                then = await requeue_or_hold(conn, pc, {**dict(row), "validated_ledger": ledger}, why)
            else:
                # The destination or the request must change (a tag, an account, a trust line): a human decides.
                await conn.execute(XQ.hold_request, row["request_id"], why)
                await conn.execute(XQ.set_item_outcome, row["batch_id"], row["request_id"], "failed")
                await conn.execute(XQ.finish_batch, row["batch_id"], ledger)
                then = "held"
        await audit(conn, ACTOR, "payout.xrpl_validated", f"tx:{row['tx_hash']}", {
            "chain": row["chain"], "request": row["request_id"], "result": result, "ledger": ledger, "then": then})
        if ok:
            pm.XRPL_VALIDATED.labels(row["chain"]).inc()
        log.info("payout.xrpl_validated", chain=row["chain"], tx=row["tx_hash"], request=row["request_id"],
                 result=result, ledger=ledger, then=then)
