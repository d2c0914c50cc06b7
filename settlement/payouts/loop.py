"""What the EVM and XRPL payout workers share: the step loop and the batching of requests.

Both chains cut batches from the same queue under the same caps (count,
amount, the day's cap) and approval threshold, and both loops survive the
same faults, so they use one implementation of each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from config import ChainsettleError
from db import Queries, audit
from db.values import amount_text
from indexer.errors import BadRpcResponse, RpcError
from settlement.payouts.plan import Pending, next_batch

Q = Queries(Path(__file__).with_name("payouts.sql"))


class AssetLimits(Protocol):
    approval_threshold: int | None
    max_batch_total: int | None
    daily_cap: int | None


async def run_steps(step: Callable[[], Awaitable[None]], stop: asyncio.Event, *, chain: str,
                    poll_interval: float, log: Any) -> None:
    """Call `step` every `poll_interval` seconds until `stop`; a failed step is logged and retried."""
    while not stop.is_set():
        try:
            await step()
        except (RpcError, BadRpcResponse) as exc:
            log.warning("payout.rpc_error", chain=chain, error=str(exc)[:300])
        except (asyncpg.PostgresError, OSError) as exc:
            log.error("payout.db_error", chain=chain, error=f"{exc.__class__.__name__}: {exc}"[:300])
        except ChainsettleError as exc:  # a refused signature, a batch that does not encode
            log.error("payout.step_failed", chain=chain, error=f"{exc.__class__.__name__}: {exc}"[:300])
        try:
            await asyncio.wait_for(stop.wait(), poll_interval)
        except asyncio.TimeoutError:
            pass


async def choose_requests(conn: asyncpg.Connection, rows: list[asyncpg.Record], *, chain: str, asset: str,
                          cfg: AssetLimits, max_recipients: int, wait_seconds: float) -> list[Pending]:
    """The pending requests (`rows`, oldest first) the next batch takes, within the asset's caps."""
    daily_left = None
    if cfg.daily_cap is not None:
        # Read-then-write of the day's total: one batch maker at a time per
        # asset, whatever process it runs in (released at commit).
        await conn.execute(Q.lock_name, f"daily:{chain}:{asset}")
        daily_left = cfg.daily_cap - int(await conn.fetchval(Q.daily_total, chain, asset))
    threshold = cfg.approval_threshold
    if threshold is not None and len(rows) >= max_recipients:
        above = {int(r["amount"]) > threshold for r in rows}
        if len(above) == 1:
            # The fetched head is all one lane (plan.next_batch): read the other lane's head too,
            # so small requests queued behind a page of large ones are not held back by them.
            rows = sorted([*rows, *await conn.fetch(Q.pending_lane, chain, asset, max_recipients, threshold,
                                                    not above.pop())], key=lambda r: r["id"])
    pending = [Pending(r["id"], r["recipient"], int(r["amount"]), r["age"]) for r in rows]
    return next_batch(pending, max_recipients=max_recipients, max_total=cfg.max_batch_total,
                      daily_left=daily_left, wait_seconds=wait_seconds, approval_threshold=threshold)


def batch_state(cfg: AssetLimits, total: int) -> str:
    threshold = cfg.approval_threshold
    return "awaiting_approval" if threshold is not None and total > threshold else "ready"


async def record_batch(conn: asyncpg.Connection, batch_id: str, chosen: list[Pending], *, chain: str, asset: str,
                       total: int, state: str, actor: str, details: dict[str, Any] | None = None) -> None:
    """Items, request states, the day's total and the audit row of a batch inserted in this transaction."""
    await conn.execute(Q.insert_items, batch_id, [p.id for p in chosen], [p.recipient for p in chosen],
                       [p.amount for p in chosen])
    await conn.execute(Q.mark_batched, batch_id, [p.id for p in chosen])
    await conn.execute(Q.add_daily_total, chain, asset, total)
    await audit(conn, actor, "payout.batch_created", f"batch:{batch_id}", {
        "chain": chain, "asset": asset, "items": len(chosen), "total": amount_text(total), "state": state,
        **(details or {}), "requests": [p.id for p in chosen]})
