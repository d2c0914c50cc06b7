"""The intent scheduler: materialise occurrences, attempt them, follow their payouts.

All its state is in Postgres; the daemon runs it under an advisory-lock
leader (daemon/intents.py), and every step is safe to run twice anyway:

1. `materialise`: for each active intent whose cursor (`next_at`) is due,
   the scheduled times up to now become occurrence rows, unique per
   (intent, time), and the cursor moves past now - one transaction. Times
   later than their grace window are runs missed while the scheduler was
   down: the intent's policy keeps none (`skip`), the most recent one
   (`latest`) or the most recent `max_catch_up` (`all`) as catch-ups; the
   rest are stored as `skipped`. A catch-up above `catch_up_approval_above`
   waits for an approval.
2. `attempt_due`: each due occurrence is locked, its source account is
   locked (advisory), the conditions are evaluated and stored; false ->
   `delayed` with exponential backoff and jitter until the deadline, then
   `missed`; true -> a payout request whose idempotency key is the
   occurrence id, so a crash after the request and before the state change
   finds the request at the next attempt instead of making another.
3. `sync`: occurrences follow their payouts; `executed` only when the
   payout is `paid`, which the pipeline sets from final chain data.

The clock is injected (a function returning aware datetimes): tests run
months of schedule in seconds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries
from settlement.ledger.rules import asset_id
from settlement.payouts.requests import IdempotencyConflict, PayoutError, request_payout

from .conditions import Controls, evaluate
from .spec import IntentSpec

Q = Queries(Path(__file__).with_name("intents.sql"))
log = get_logger("settlement.intents")
Clock = Callable[[], datetime]
FeeReader = Callable[[str], Awaitable[int | None]]
MAX_TIMES_PER_TICK = 5000  # scheduled times one intent materialises per round (a long outage takes several)


async def _none():
    return None


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def occurrence_id(intent_id: int, at: datetime) -> str:
    return f"intent-{intent_id}-{at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def backoff(spec: IntentSpec, attempt: int, rng: random.Random) -> float:
    """Seconds before the next attempt: base * 2^(attempt-1), capped, plus up to 25% jitter."""
    base = min(float(spec.retry_max_seconds), spec.retry_base_seconds * 2.0 ** min(attempt - 1, 30))
    return base * (1.0 + rng.uniform(0.0, 0.25))


def feed_payload(event: str, occ_id: str, intent_id: int, chain: str, **extra) -> str:
    return json.dumps({"event": event, "occurrence_id": occ_id, "intent_id": intent_id, "chain": chain,
                       **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in extra.items()}})


def plan_times(spec: IntentSpec, times: list[datetime], now: datetime,
               more: bool = False) -> list[tuple[datetime, str, bool, datetime, str | None]]:
    """(time, state, catch_up, deadline, reason) per scheduled time, by the missed-run policy.

    `more`: later scheduled times are due too (a long outage, taken in rounds)."""
    grace = timedelta(seconds=spec.grace_seconds)
    late = [t for t in times if now > t + grace]
    on_time = {t for t in times if now <= t + grace}
    keep: set[datetime] = set()
    if more:
        pass
    elif spec.missed_run_policy == "latest" and late and not on_time:
        keep = {late[-1]}
    elif spec.missed_run_policy == "all":
        keep = set(late[-spec.max_catch_up:])
    out = []
    deadline_of = timedelta(seconds=spec.deadline_seconds)
    for t in times:
        if t in on_time:
            out.append((t, "due", False, t + deadline_of, None))
        elif t in keep:
            needs = spec.catch_up_approval_above is not None and (
                spec.amount_mode != "fixed" or int(spec.amount) > int(spec.catch_up_approval_above))
            out.append((t, "awaiting_approval" if needs else "due", True, now + deadline_of,
                        "catch_up_needs_approval" if needs else "catch_up"))
        else:
            reason = "missed_run_beyond_bound" if spec.missed_run_policy == "all" else f"missed_run_{spec.missed_run_policy}"
            out.append((t, "skipped", False, t + deadline_of, reason))
    return out


class IntentScheduler:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, *, clock: Clock = utc_now,
                 fees: FeeReader | None = None, rng: random.Random | None = None, concurrency: int = 4,
                 batch: int = 1000, group: int = 200, controls_ttl: float = 1.0) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.fees = fees
        self.rng = rng or random.Random()
        self.concurrency = concurrency
        self.batch = batch
        self.group = group
        self._specs: dict[tuple[int, int], tuple[IntentSpec, object]] = {}
        self.controls_ttl = controls_ttl
        self.controls = Controls(controls_ttl)

    def spec(self, intent_id: int, version: int, raw) -> tuple[IntentSpec, object]:
        key = (intent_id, version)
        hit = self._specs.get(key)
        if hit is None:
            spec = IntentSpec.load(json.loads(raw) if isinstance(raw, str) else raw)
            hit = self._specs[key] = (spec, spec.schedule(trusted=True))
            if len(self._specs) > 100_000:
                self._specs.clear()
        return hit

    # -- 1. materialise -----------------------------------------------------------

    async def materialise(self) -> int:
        made = 0
        while True:
            now = self.clock()
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(Q.due_intents, now, 500)
                cols: list[list] = [[] for _ in range(11)]
                cursors: tuple[list, list] = ([], [])
                for r in rows:
                    spec, plan, nxt = self._plan(r, now)
                    for t, state, catch_up, deadline, reason in plan:
                        for col, v in zip(cols, (occurrence_id(r["id"], t), r["id"], r["version"], spec.chain,
                                                 spec.asset, spec.source, t, state, catch_up, deadline, reason)):
                            col.append(v)
                    cursors[0].append(r["id"])
                    cursors[1].append(nxt)
                    made += len(plan)
                if cols[0]:
                    for x in await conn.fetch(Q.insert_occurrences, *cols):
                        if x["state"] in ("skipped", "awaiting_approval"):
                            event = "missed" if x["state"] == "skipped" else "awaiting_approval"
                            await conn.execute(Q.insert_feed, x["id"], x["chain"], feed_payload(
                                event, x["id"], x["intent_id"], x["chain"], state=x["state"], reason=x["reason"],
                                scheduled_at=x["scheduled_at"]))
                if cursors[0]:
                    await conn.execute(Q.set_next_at, *cursors)
            if len(rows) < 500:
                return made

    def _plan(self, r, now: datetime):
        spec, sched = self.spec(r["id"], r["version"], r["spec"])
        times = []
        nxt = None
        for t in sched.times(r["next_at"]):
            if t > now or len(times) >= MAX_TIMES_PER_TICK:
                nxt = t
                break
            times.append(t)
        # More times than one round takes: later ones (still due) come next round, so
        # none of this round's late times is "the most recent" a catch-up keeps.
        return spec, plan_times(spec, times, now, more=nxt is not None and nxt <= now), nxt

    # -- 2. attempt ---------------------------------------------------------------

    async def attempt_due(self) -> dict[str, int]:
        """Attempt every occurrence due by the clock, in groups of `group` occurrences."""
        counts: dict[str, int] = {}
        self.controls = Controls(self.controls_ttl)  # kill switches and pauses: read afresh each round
        fee_cache: dict[str, int | None] = {}
        seen: set[str] = set()
        while True:
            now = self.clock()
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(Q.attemptable, now, self.batch)
            fresh = [r for r in rows if r["id"] not in seen]
            if not fresh:
                return counts
            seen.update(r["id"] for r in fresh)
            # Fees are network reads: made before any transaction opens.
            for chain in {r["chain"] for r in fresh}:
                await self._fee(chain, fee_cache)
            ids = [r["id"] for r in fresh]
            for i in range(0, len(ids), self.group):
                for out in await self.attempt_many(ids[i:i + self.group], fee_cache):
                    counts[out] = counts.get(out, 0) + 1
            if len(rows) < self.batch:
                return counts

    async def _fee(self, chain: str, cache: dict[str, int | None]) -> int | None:
        if chain not in cache:
            value = None
            if self.fees is not None:
                try:
                    value = await self.fees(chain)
                except Exception as exc:  # noqa: BLE001 - an unreadable fee is the condition fee_unknown
                    log.warning("intents.fee_unreadable", chain=chain, error=str(exc)[:200])
            cache[chain] = value
        return cache[chain]

    async def attempt(self, oid: str, fee_cache: dict[str, int | None] | None = None) -> str:
        """One attempt of one occurrence; returns what became of it (or 'busy' / 'waiting')."""
        return (await self.attempt_many([oid], fee_cache))[0]

    async def attempt_many(self, ids: list[str], fee_cache: dict[str, int | None] | None = None) -> list[str]:
        """One attempt of each occurrence, in one transaction.

        The occurrences are row-locked (ones another scheduler holds are
        skipped: 'busy'), then their source accounts are advisory-locked in a
        fixed order, then every source's final balance and reservations are
        read in one query. Occurrences drawing on one source are evaluated in
        order, each reserving what it will request for the next. The payout
        requests go out concurrently (each its own transaction, keyed by the
        occurrence id); the states and evaluations are written when they are
        back, and everything commits together. A crash before that commit
        leaves the requests, which the next attempt finds instead of asking again.
        """
        fee_cache = {} if fee_cache is None else fee_cache
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            locked = {r["id"]: r for r in await conn.fetch(Q.lock_occurrences, ids)}
            outs = {i: "busy" for i in ids if i not in locked}
            work = []
            for oid, occ in locked.items():
                if occ["intent_state"] != "active":
                    outs[oid] = "waiting"  # a paused intent's occurrences wait (their deadline still counts)
                elif occ["payout_id"] is not None:  # requested before a crash: never a second request
                    attempt = occ["attempts"] + 1
                    await conn.execute(Q.insert_evaluation, oid, attempt, now, True, "already_requested", json.dumps(
                        {"now": now.isoformat(), "payout_id": occ["payout_id"],
                         "payout_state": occ["payout_request_state"]}))
                    await conn.execute(Q.set_requested, oid, attempt, occ["payout_amount"],
                                       occ["payout_id"], occ["payout_request_state"], now)
                    outs[oid] = "requested"
                else:
                    work.append((occ, self.spec(occ["intent_id"], occ["version"], occ["spec"])[0]))
            if work:
                await self._attempt_locked(conn, work, fee_cache, now, outs)
        return [outs[i] for i in ids]

    async def _attempt_locked(self, conn, work, fee_cache, now: datetime, outs: dict[str, str]) -> None:
        sources = sorted({(s.chain, s.asset, s.source) for _, s in work})
        await conn.execute(Q.lock_sources, [f"{c}:{a}:{src}" for c, a, src in sources])
        funds_rows = await conn.fetch(
            Q.source_funds_many, [c for c, _, _ in sources], [a for _, a, _ in sources],
            [src for _, _, src in sources], [asset_id(c, a) for c, a, _ in sources])
        funds = {sources[r["n"] - 1]: [int(r["balance"]), int(r["reserved"])] for r in funds_rows}
        verdicts = []
        pending: dict[int, int] = {}  # per intent: requested in this round (for period caps)
        for occ, spec in work:
            key = (spec.chain, spec.asset, spec.source)
            fee = fee_cache.get(spec.chain) if spec.gas_cap is not None else None
            v = await evaluate(conn, self.settings, spec, occurrence_id=occ["id"], intent_id=occ["intent_id"],
                               scheduled_at=occ["scheduled_at"], now=now, fee=fee, controls=self.controls,
                               funds=tuple(funds[key]), period_pending=pending.get(occ["intent_id"], 0))
            if v.ok:
                funds[key][1] += v.amount  # reserved for the next occurrence of this source
                pending[occ["intent_id"]] = pending.get(occ["intent_id"], 0) + v.amount
            verdicts.append(v)
        sem = asyncio.Semaphore(self.concurrency)

        async def request(occ, spec, v):
            async with sem:
                try:
                    row, _ = await request_payout(self.pool, self.settings, chain=spec.chain, asset=spec.asset,
                                                  to=spec.recipient, amount=v.amount, key=occ["id"],
                                                  actor=f"intent:{occ['intent_id']}",
                                                  destination_tag=spec.destination_tag, from_account=spec.source)
                    return row
                except IdempotencyConflict as exc:
                    v.ok, v.reason = False, "payout_conflict"
                    v.inputs["refused"] = str(exc)
                except PayoutError as exc:
                    v.ok, v.reason = False, "payout_refused"
                    v.inputs["refused"] = str(exc)
                return None

        rows = await asyncio.gather(*(request(occ, spec, v) if v.ok else _none()
                                      for (occ, spec), v in zip(work, verdicts)))
        req_cols: list[list] = [[] for _ in range(7)]
        for (occ, spec), v, row in zip(work, verdicts, rows):
            oid = occ["id"]
            attempt = occ["attempts"] + 1
            common = dict(intent_id=occ["intent_id"], chain=spec.chain)
            if v.low_buffer:
                await conn.execute(Q.insert_feed, oid, spec.chain, feed_payload(
                    "low_buffer", oid, **common, source=spec.source, balance=v.inputs.get("balance"),
                    reserved=v.inputs.get("reserved"), amount=v.inputs.get("amount"),
                    low_buffer_below=spec.low_buffer_below))
            if row is not None:
                for col, x in zip(req_cols, (oid, attempt, v.amount, row["id"], row["state"], now,
                                             json.dumps(v.inputs))):
                    col.append(x)
                outs[oid] = "requested"
                continue
            await conn.execute(Q.insert_evaluation, oid, attempt, now, v.ok, v.reason, json.dumps(v.inputs))
            if v.reason == "payout_conflict":
                await conn.execute(Q.set_failed, oid, attempt, v.reason)
                await conn.execute(Q.insert_feed, oid, spec.chain, feed_payload(
                    "failed", oid, **common, state="failed", reason=v.reason))
                outs[oid] = "failed"
            elif now >= occ["deadline"]:
                await conn.execute(Q.set_missed, oid, attempt, v.reason)
                await conn.execute(Q.insert_feed, oid, spec.chain, feed_payload(
                    "missed", oid, **common, state="missed", reason=v.reason, deadline=occ["deadline"]))
                log.warning("intents.missed", occurrence=oid, reason=v.reason)
                outs[oid] = "missed"
            else:
                nxt = min(now + timedelta(seconds=backoff(spec, attempt, self.rng)), occ["deadline"])
                await conn.execute(Q.set_delayed, oid, attempt, nxt, v.reason)
                await conn.execute(Q.insert_feed, oid, spec.chain, feed_payload(
                    "delayed", oid, **common, state="delayed", reason=v.reason, next_attempt_at=nxt,
                    attempt=attempt))
                outs[oid] = "delayed"
        if req_cols[0]:
            await conn.execute(Q.set_requested_many, *req_cols)
            log.info("intents.requested", count=len(req_cols[0]))

    # -- 3. follow payouts --------------------------------------------------------

    async def sync(self) -> int:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.sync_payouts)
        return len(rows)

    async def tick(self) -> dict[str, int]:
        made = await self.materialise()
        counts = await self.attempt_due()
        synced = await self.sync()
        return {"materialised": made, **counts, "synced": synced}

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        log.info("intents.scheduler_started")
        while not stop.is_set():
            t0 = time.monotonic()
            await self.tick()
            wait = max(0.05, interval - (time.monotonic() - t0))
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except asyncio.TimeoutError:
                pass
