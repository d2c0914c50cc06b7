"""XRPL payout outcomes from validated ledgers, inside the follower's write transaction.

`XrplPayoutHook` is an `indexer.store.StoreHook`. The XRPL follower writes
one event row per transaction of a watched account (role 'sender' for the
hot wallet's own); validated ledgers are final, so each committed range is
final. For each of our stored transactions found there, in that same
transaction:
- tesSUCCESS: the payment is validated, its request paid, and one ledger
  transaction debits the account it is paid from (the recipient's user
  account unless the request named another) and credits the hot
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
from settlement.payouts.failclosed import fail_closed, negative_users
from settlement.payouts.requests import lock_payers
from settlement.payouts.xrpl.outcomes import RETRYABLE_TEC, requeue_or_hold

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
        ok = result == "tesSUCCESS"
        if row["state"] in ("dead", "refused"):
            await self._validated_anyway(conn, row, result, ledger, ok)
            return
        await conn.execute(XQ.mark_validated, row["id"], "validated" if ok else "failed", result, ledger)
        if row["purpose"] != "payout":
            return
        if ok:
            await lock_payers(conn, row["chain"], row["asset"], [row["from_account"]])
            await conn.execute(XQ.pay_request, row["request_id"])
            await conn.execute(XQ.set_item_outcome, row["batch_id"], row["request_id"], "sent")
            aid = asset_id(row["chain"], row["asset"])
            amount = int(row["amount"])
            await post_transaction(
                conn, key=xrpl_payout_ledger_key(row["request_id"], row["tx_hash"]), cause_kind="payout",
                cause={"request_id": row["request_id"], "batch_id": row["batch_id"], "tx_hash": row["tx_hash"],
                       "ledger": ledger, "sequence": row["sequence"]},
                chain=row["chain"], block_number=ledger,
                postings=[Posting(row["from_account"], aid, amount),
                          Posting(wallet_account(row["chain"], row["account"]), aid, -amount)],
                payout_id=f"xrpl:{row['request_id']}", tx_hash=row["tx_hash"],
            )
            await conn.execute(XQ.finish_batch, row["batch_id"], ledger)
            then = "paid"
            if self.settings.payouts.require_balance:
                negative = await negative_users(conn, row["chain"], row["asset"],
                                                [row["from_account"]])
                if negative:
                    await fail_closed(conn, chain=row["chain"], asset=row["asset"], kind="negative_balance",
                                      evidence={"tx": row["tx_hash"], "request": row["request_id"],
                                                "ledger": ledger, "accounts": negative})
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

    async def _validated_anyway(self, conn: asyncpg.Connection, row: asyncpg.Record, result: str, ledger: int,
                                ok: bool) -> None:
        """A payment proven dead (or refused) found in a validated ledger: the proof was wrong.

        Its row keeps its state (moving it back to live could collide with the
        payment that replaced it, and a unique violation here would make the
        follower retry this range forever); the evidence goes to last_error
        and the audit row, what the chain did is booked, and the chain fails
        closed, all in the follower's transaction.
        """
        chain = row["chain"]
        kind = "dead_payment_validated" if row["state"] == "dead" else "refused_payment_validated"
        evidence = {"tx": row["tx_hash"], "request": row["request_id"], "sequence": row["sequence"],
                    "result": result, "ledger": ledger, "was": row["state"]}
        await conn.execute(XQ.note_validated_anyway, row["id"], result,
                           f"validated anyway: {result} in ledger {ledger} after it was {row['state']}")
        if row["purpose"] == "payout" and ok:
            await lock_payers(conn, chain, row["asset"], [row["from_account"]])
            await conn.execute(XQ.pay_request, row["request_id"])
            aid = asset_id(chain, row["asset"])
            amount = int(row["amount"])
            await post_transaction(
                conn, key=xrpl_payout_ledger_key(row["request_id"], row["tx_hash"]), cause_kind="payout",
                cause={"request_id": row["request_id"], "batch_id": row["batch_id"], "tx_hash": row["tx_hash"],
                       "ledger": ledger, "sequence": row["sequence"], "validated_after": row["state"]},
                chain=chain, block_number=ledger,
                postings=[Posting(row["from_account"], aid, amount),
                          Posting(wallet_account(chain, row["account"]), aid, -amount)],
                payout_id=f"xrpl:{row['request_id']}", tx_hash=row["tx_hash"],
            )
        asset = row["asset"] or "native"  # a fill has no request: the coin it burnt is XRP
        await fail_closed(conn, chain=chain, asset=asset, kind=kind, evidence=evidence)
