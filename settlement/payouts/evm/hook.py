"""Payout confirmation from the indexer's final data, inside its write transaction.

`PayoutHook` is an `indexer.store.StoreHook`. For each committed range it
looks at the batcher's BatchExecuted events that are final (at or below
chain_state.final_number, which the store moves before calling hooks) and,
in that same transaction: marks the batch confirmed, each item sent or
failed from PayoutSent / PayoutFailed, the requests paid (or held for a
human when the recipient refused a native transfer), and books one ledger
transaction per batch: debit the account each item is paid from (the
recipient's user account unless the request named another), credit the
wallet that paid (the batcher, or the treasury for treasury-funded tokens).
The gas fee is the sender's NativeFee event, booked by the ledger's default
fee rule when the sender is a configured wallet: booking it here too would
count it twice.

Events above finality are never acted on, so a reorg has nothing of ours
to undo and `on_rollback` does nothing.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries, audit
from indexer.chain_state import final_height
from settlement.ledger.books import Posting, post_transaction, sync_ledger
from settlement.ledger.rules import asset_id, wallet_account
from settlement.payouts import metrics as pm
from settlement.payouts.failclosed import fail_closed, negative_users
from settlement.payouts.requests import lock_payers

Q = Queries(Path(__file__).with_name("evm.sql"))
log = get_logger("settlement.payouts")
ACTOR = "payout-confirmation"
FAILED_REASON = "recipient refused the native transfer (PayoutFailed); the amount stays in the batcher"


def payout_ledger_key(batch_id: str) -> str:
    return f"payout:{batch_id}"


class PayoutHook:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.chains = {pc.chain for pc in settings.payouts.chains}
        self._synced: set[str] = set()

    async def on_range(self, conn: asyncpg.Connection, chain: str, from_block: int, to_block: int) -> None:
        if chain not in self.chains:
            return
        final = await final_height(conn, chain)
        if final is None or final < from_block:
            return
        rows = await conn.fetch(Q.executed_batches_in_range, chain, from_block, min(to_block, final))
        for row in rows:
            if chain not in self._synced:
                # Assets and wallet accounts must exist before postings name them.
                await sync_ledger(conn, self.settings, chain)
                self._synced.add(chain)
            await self._confirm(conn, chain, row)

    async def on_rollback(self, conn: asyncpg.Connection, chain: str, ancestor: int) -> None:
        return None

    async def _confirm(self, conn: asyncpg.Connection, chain: str, row: asyncpg.Record) -> None:
        batch_id = row["batch_id"]
        args = row["args"]
        outcomes = await conn.fetch(Q.batch_outcomes, chain, row["block_number"], row["tx_hash"], row["batcher"], batch_id)
        idx = [o["idx"] for o in outcomes]
        kinds = ["sent" if o["event"] == "PayoutSent" else "failed" for o in outcomes]
        items = await conn.fetch(Q.batch_request_states, batch_id)
        # Serialised with admission (settlement/payouts/requests.py): "paid"
        # and the debit commit together under the paying accounts' locks.
        await lock_payers(conn, chain, row["asset"], [i["from_account"] for i in items])
        impossible: list[tuple[str, dict]] = []
        if row["state"] == "expired":
            # Proven dead at a final block, executed anyway: its items may have
            # been requeued and paid again.
            impossible.append(("expired_batch_executed", {"batch": batch_id, "tx": row["tx_hash"],
                                                          "block": row["block_number"]}))
        twice = [i["request_id"] for i in items if i["state"] == "paid" and i["batch_id"] != batch_id]
        if twice:
            impossible.append(("paid_twice", {"batch": batch_id, "tx": row["tx_hash"], "requests": twice}))
        await conn.execute(Q.confirm_batch, batch_id, row["block_number"], row["tx_hash"],
                           int(args.get("failedCount", 0)), int(args.get("failedAmount", 0)))
        await conn.execute(Q.set_item_outcomes, batch_id, idx, kinds)
        settled = await conn.fetch(Q.settle_requests, batch_id, FAILED_REASON)
        sent = await conn.fetch(Q.sent_items, batch_id)
        if sent:
            aid = asset_id(chain, row["asset"])
            payer = row["treasury"] if row["source"] == 1 else row["batcher"]
            total = sum(int(s["amount"]) for s in sent)
            postings = [Posting(s["from_account"], aid, int(s["amount"])) for s in sent]
            postings.append(Posting(wallet_account(chain, payer), aid, -total))
            await post_transaction(
                conn, key=payout_ledger_key(batch_id), cause_kind="payout",
                cause={"batch_id": batch_id, "tx_hash": row["tx_hash"], "block_number": row["block_number"],
                       "items": len(sent)},
                chain=chain, block_number=row["block_number"], postings=postings, payout_id=batch_id,
                tx_hash=row["tx_hash"],
            )
        if sent and self.settings.payouts.require_balance:
            negative = await negative_users(conn, chain, row["asset"],
                                            sorted({s["from_account"] for s in sent}))
            if negative:
                impossible.append(("negative_balance", {"batch": batch_id, "tx": row["tx_hash"],
                                                        "accounts": negative}))
        for kind, evidence in impossible:
            await fail_closed(conn, chain=chain, asset=row["asset"], kind=kind, evidence=evidence)
        failed = [s for s in settled if s["state"] == "held"]
        await audit(conn, ACTOR, "payout.batch_confirmed", f"batch:{batch_id}", {
            "chain": chain, "block": row["block_number"], "tx": row["tx_hash"], "sent": len(sent),
            "failed": len(failed), "failed_requests": [f["id"] for f in failed]})
        pm.CONFIRMED.labels(chain).inc()
        log.info("payout.batch_confirmed", chain=chain, batch=batch_id, block=row["block_number"], sent=len(sent),
                 failed=len(failed))
