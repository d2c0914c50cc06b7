"""Failing closed when the impossible is observed, in the caller's transaction.

An expired batch executed anyway, a payment proven dead found validated, two
of our transactions paying one request, a payout debit that leaves a user's
balance negative: each means a proof or a rule we rely on was wrong. Then,
in ONE transaction (the follower's, when a hook sees it): the chain's kill
switch goes on, the asset is paused, an audit row keeps the evidence, a
metric counts it and an error is logged. Nothing here raises: the hook goes
on booking what the chain did (the ledger must match the chain) and the
follower keeps indexing; signing and sending stop until a human looks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from config.logs import get_logger
from db import Queries, audit
from settlement.ledger.pauses import pause_asset
from settlement.ledger.rules import asset_id
from settlement.payouts import metrics as pm

Q = Queries(Path(__file__).with_name("payouts.sql"))
log = get_logger("settlement.payouts")
ACTOR = "payout-fail-closed"


async def fail_closed(conn: asyncpg.Connection, *, chain: str, asset: str, kind: str, evidence: dict[str, Any]) -> None:
    """Kill switch for `chain`, pause of `chain:asset`, audit, metric, log; in `conn`'s transaction.

    `evidence` goes to the audit row and the log: hashes, ids, amounts, never
    signed bytes or signatures.
    """
    reason = f"fail closed: {kind}"
    await conn.execute(Q.set_control, chain, True, reason, ACTOR)
    await audit(conn, ACTOR, "payout.kill_switch", f"payouts:{chain}", {"killed": True, "reason": reason})
    await pause_asset(conn, asset_id(chain, asset), reason, ACTOR)
    await audit(conn, ACTOR, "payout.fail_closed", f"payouts:{chain}", {"kind": kind, "asset": asset, **evidence})
    pm.FAIL_CLOSED.labels(chain, kind).inc()
    pm.KILLED.labels(chain).set(1)
    log.error("payout.fail_closed", chain=chain, asset=asset, kind=kind, **evidence)


async def negative_users(conn: asyncpg.Connection, chain: str, asset: str, accounts: list[str]) -> list[dict]:
    """User accounts among `accounts` the ledger now owes less than nothing (app accounts
    may go below zero by their configured overdraft: admission checked that)."""
    users = [a for a in accounts if a.startswith("user:")]
    if not users:
        return []
    rows = await conn.fetch(Q.negative_user_balances, users, asset_id(chain, asset))
    return [{"account": r["code"], "balance": str(r["owed"])} for r in rows]
