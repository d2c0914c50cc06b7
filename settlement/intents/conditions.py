"""The conditions checked before each attempt of an occurrence.

Each attempt records every input it read and the first failing condition's
reason code (or 'ok'), so the API can show why an occurrence waits:

| code                  | condition                                                       |
|-----------------------|-----------------------------------------------------------------|
| kill_switch_on        | a payout kill switch (config or run-time) covers the chain      |
| reconciliation_paused | reconciliation paused payouts of the asset                      |
| outside_window        | the intent's clock is outside its window (its own time zone)    |
| fee_unknown           | a gas cap is set and the chain's current fee could not be read  |
| fee_above_cap         | the chain's current fee is above the intent's gas cap           |
| nothing_above_floor   | above_floor: the source holds nothing above the floor           |
| insufficient_balance  | final balance - reserved < amount + buffer                      |
| period_cap_reached    | requested in the current period + amount > the cap              |

"Reserved" is what pending payouts and other occurrences drawing on the same
source already hold (see `source_funds`); callers evaluate under the
source's advisory lock, so two schedulers cannot both spend one balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from config import Settings
from db import Queries
from db.values import amount_text
from settlement.ledger.pauses import is_paused
from settlement.ledger.rules import asset_id
from settlement.payouts.requests import kill_switch_on

from .schedule import to_instant, to_wall, zone
from .spec import IntentSpec

Q = Queries(Path(__file__).with_name("intents.sql"))


@dataclass
class Verdict:
    ok: bool
    reason: str
    amount: int | None
    inputs: dict = field(default_factory=dict)
    low_buffer: bool = False


def period_bounds(spec: IntentSpec, at: datetime) -> tuple[datetime, datetime]:
    """The cap period (day, ISO week, month, year of the intent's zone) containing `at`."""
    tz = zone(spec.timezone)
    w = to_wall(at, tz)
    if spec.cap_period == "day":
        lo = w.replace(hour=0, minute=0, second=0, microsecond=0)
        hi = lo + timedelta(days=1)
    elif spec.cap_period == "week":
        lo = (w - timedelta(days=w.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        hi = lo + timedelta(days=7)
    elif spec.cap_period == "month":
        lo = w.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        hi = lo.replace(year=lo.year + 1, month=1) if lo.month == 12 else lo.replace(month=lo.month + 1)
    else:
        lo = w.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        hi = lo.replace(year=lo.year + 1)
    return to_instant(lo, tz), to_instant(hi, tz)


def in_window(spec: IntentSpec, now: datetime) -> bool:
    win = spec.window()
    if win is None:
        return True
    t = to_wall(now, zone(spec.timezone)).time()
    start, end = win
    return start <= t < end if start <= end else (t >= start or t < end)  # a window over midnight


class Controls:
    """Kill switches and pauses, read at most once per `ttl` seconds per chain / asset.

    A scheduler round evaluates many occurrences; re-reading two rows for each
    would double its round trips. A switch set during a round is seen within
    `ttl` (and the payout workers check it again before every signature).
    """

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._seen: dict[tuple[str, str], tuple[float, bool]] = {}

    async def _get(self, key: tuple[str, str], read) -> bool:
        import time

        now = time.monotonic()
        hit = self._seen.get(key)
        if hit is None or now - hit[0] > self.ttl:
            hit = self._seen[key] = (now, bool(await read()))
        return hit[1]

    async def killed(self, conn, settings: Settings, chain: str) -> bool:
        return await self._get(("kill", chain), lambda: killed(conn, settings, chain))

    async def paused(self, conn, aid: str) -> bool:
        return await self._get(("pause", aid), lambda: is_paused(conn, aid))


class _Fresh(Controls):
    """No caching: every call reads (previews, tests of one attempt)."""

    def __init__(self) -> None:
        super().__init__(ttl=-1.0)


async def killed(conn: asyncpg.Connection, settings: Settings, chain: str) -> bool:
    pc = settings.payouts.chain(chain)
    if settings.payouts.kill_switch or (pc is not None and pc.kill_switch):
        return True
    return await kill_switch_on(conn, chain)


async def evaluate(conn: asyncpg.Connection, settings: Settings, spec: IntentSpec, *, occurrence_id: str,
                   intent_id: int, scheduled_at: datetime, now: datetime, fee: int | None,
                   controls: Controls | None = None, funds: tuple[int, int] | None = None,
                   period_pending: int = 0) -> Verdict:
    """Every condition, in order; the first false one names the verdict. Reads only.

    `funds`: (final balance, reserved) of the source when the caller read them already;
    `period_pending`: what this intent is requesting in the same round, not yet written.
    """
    controls = controls or _Fresh()
    inputs: dict = {"now": now.isoformat()}
    failed: list[str] = []
    inputs["kill_switch"] = await controls.killed(conn, settings, spec.chain)
    if inputs["kill_switch"]:
        failed.append("kill_switch_on")
    aid = asset_id(spec.chain, spec.asset)
    inputs["paused"] = await controls.paused(conn, aid)
    if inputs["paused"]:
        failed.append("reconciliation_paused")
    if spec.window_start is not None:
        inputs["window"] = [spec.window_start, spec.window_end, spec.timezone]
        if not in_window(spec, now):
            failed.append("outside_window")
    if spec.gas_cap is not None:
        inputs["fee"] = None if fee is None else str(fee)
        inputs["gas_cap"] = str(spec.gas_cap)
        if fee is None:
            failed.append("fee_unknown")
        elif fee > spec.gas_cap:
            failed.append("fee_above_cap")
    if funds is None:
        row = await conn.fetchrow(Q.source_funds, spec.chain, spec.asset, spec.source, aid)
        funds = (int(row["balance"]), int(row["reserved"]))
    balance, reserved = funds
    buffer = int(spec.buffer)
    available = balance - reserved
    inputs.update(source=spec.source, balance=amount_text(balance), reserved=amount_text(reserved), buffer=amount_text(buffer))
    if spec.amount_mode == "fixed":
        amount = int(spec.amount)
    else:
        amount = available - int(spec.floor) - buffer
        inputs["floor"] = spec.floor
        if amount <= 0:
            failed.append("nothing_above_floor")
            amount = None
    inputs["amount"] = None if amount is None else amount_text(amount)
    if amount is not None and available < amount + buffer:
        failed.append("insufficient_balance")
    if spec.cap_per_period is not None and amount is not None:
        lo, hi = period_bounds(spec, now)
        total = int(await conn.fetchval(Q.period_total, intent_id, lo, hi, occurrence_id)) + period_pending
        inputs.update(period=[lo.isoformat(), hi.isoformat()], period_total=amount_text(total), cap=spec.cap_per_period)
        if total + amount > int(spec.cap_per_period):
            failed.append("period_cap_reached")
    low = (spec.low_buffer_below is not None and amount is not None
           and available - amount < int(spec.low_buffer_below))
    inputs["failed"] = failed
    return Verdict(not failed, failed[0] if failed else "ok", amount, inputs, low)
