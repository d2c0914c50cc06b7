"""What a validated XRPL payment that did not pay does to its request.

Shared by the sender (a tec seen at submit) and the validation hook (a tec in a
validated ledger). Kept apart from the sender so the hook, which runs in every
follower's write transaction, does not pull xrpl-py into the indexer's
start-up (about a second of imports for `chainsettle index`).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from config.section_payouts import XrplPayoutChainConfig
from db import Queries

Q = Queries(Path(__file__).parents[1] / "payouts.sql")
XQ = Queries(Path(__file__).with_name("xrpl.sql"))

# tec results that another try may cure (funding, liquidity); the rest need a human.
RETRYABLE_TEC = {"tecUNFUNDED_PAYMENT", "tecPATH_DRY", "tecPATH_PARTIAL", "tecINSUF_RESERVE_LINE",
                 "tecINSUFFICIENT_RESERVE", "tecINSUF_RESERVE_OFFER"}


async def requeue_or_hold(conn: asyncpg.Connection, pc: XrplPayoutChainConfig, row, why: str) -> str:
    """A payment that did not pay: its request back to the queue, or to a human after max_attempts."""
    await conn.execute(XQ.set_item_outcome, row["batch_id"], row["request_id"], "failed")
    tries = int(await conn.fetchval(XQ.failed_attempts, row["request_id"]))
    if tries < pc.max_attempts:
        if await conn.fetchval(XQ.requeue_request, row["request_id"], pc.retry_wait_seconds) is not None:
            # It paid nothing and will be counted again by its next batch: its batch's day gets it back.
            day = await conn.fetchval(Q.batch_cap_day, row["batch_id"])
            await conn.execute(Q.give_back_daily_total, pc.chain, row["asset"], day, row["amount"])
        then = "requeued"
    else:
        await conn.execute(XQ.hold_request, row["request_id"], f"{why}; gave up after {tries} attempts")
        then = "held"
    await conn.execute(XQ.finish_batch, row["batch_id"], row["validated_ledger"] or row["last_ledger"])
    return then
