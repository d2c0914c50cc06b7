"""Intents for the admin API and the CLI: create, edit (a new version, future
occurrences only), pause, resume, cancel, approve a catch-up, read, preview.
Each change writes its audit row in its own transaction."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from db import Queries, audit
from db.values import amount_text, units_text
from settlement.ledger.books import assets_of_chain

from .conditions import evaluate
from .errors import IntentError, IntentNotFound, IntentStateConflict
from .schedule import to_wall
from .scheduler import FeeReader, feed_payload, occurrence_id, utc_now
from .spec import IntentSpec

Q = Queries(Path(__file__).with_name("intents.sql"))
log = get_logger("settlement.intents")


def _check_actor(actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise IntentError("actor", "a change needs the actor's name")


def _spec_of(row) -> dict:
    s = row["spec"]
    return json.loads(s) if isinstance(s, str) else s


def intent_view(row) -> dict:
    d = dict(row)
    d["spec"] = _spec_of(row)
    for k, v in list(d.items()):
        if isinstance(v, datetime):
            d[k] = v.isoformat()
    return d


def _first_at_or_after(spec: IntentSpec, t: datetime) -> datetime | None:
    return next(spec.schedule().times(t), None)


async def create_intent(pool: asyncpg.Pool, settings: Settings, data: dict, actor: str,
                        now: datetime | None = None) -> dict:
    """Store a new intent (version 1); its first occurrence is the first scheduled time from now on."""
    _check_actor(actor)
    spec = IntentSpec.parse(data, settings)
    now = now or utc_now()
    nxt = _first_at_or_after(spec, now)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.insert_intent, spec.name, spec.chain, spec.asset, spec.source, nxt, actor)
        await conn.execute(Q.insert_version, row["id"], 1, json.dumps(spec.as_json()), actor, "created")
        await audit(conn, actor, "intent.created", f"intent:{row['id']}", {"spec": spec.as_json()})
        row = await conn.fetchrow(Q.get_intent, row["id"])
    log.info("intents.created", id=row["id"], chain=spec.chain, asset=spec.asset)
    return intent_view(row)


async def _locked(conn, intent_id: int):
    row = await conn.fetchrow(Q.lock_intent, intent_id)
    if row is None:
        raise IntentNotFound("id", f"no intent {intent_id}")
    return row


async def edit_intent(pool: asyncpg.Pool, settings: Settings, intent_id: int, changes: dict, actor: str,
                      reason: str | None = None, now: datetime | None = None) -> dict:
    """A new version: the old spec with `changes` applied. Occurrences already made keep their version."""
    _check_actor(actor)
    if not isinstance(changes, dict) or not changes:
        raise IntentError(None, "an edit names at least one field to change")
    now = now or utc_now()
    async with pool.acquire() as conn, conn.transaction():
        row = await _locked(conn, intent_id)
        if row["state"] == "cancelled":
            raise IntentStateConflict("id", f"intent {intent_id} is cancelled")
        merged = {**_spec_of(row), **changes}
        merged = {k: v for k, v in merged.items() if v is not None}
        spec = IntentSpec.parse(merged, settings)
        # Not-yet-materialised times are the future: from the cursor (or now) on, by the new schedule.
        base = row["next_at"] or now
        nxt = _first_at_or_after(spec, base)
        version = row["version"] + 1
        await conn.execute(Q.insert_version, intent_id, version, json.dumps(spec.as_json()), actor, reason)
        await conn.execute(Q.set_intent_version, intent_id, version, spec.name, spec.chain, spec.asset, spec.source,
                           nxt)
        await audit(conn, actor, "intent.edited", f"intent:{intent_id}",
                    {"version": version, "changes": changes, "reason": reason})
        row = await conn.fetchrow(Q.get_intent, intent_id)
    return intent_view(row)


async def set_intent_state(pool: asyncpg.Pool, intent_id: int, action: str, actor: str, reason: str | None = None,
                           now: datetime | None = None) -> dict:
    """pause | resume | cancel. A resumed intent starts again from now (runs while paused are not made up).

    Waits for an attempt in progress; `payouts_in_flight` lists the payouts
    already requested (by it or before) that a pause or cancel does not stop."""
    _check_actor(actor)
    if action not in ("pause", "resume", "cancel"):
        raise IntentError("action", "must be pause, resume or cancel")
    now = now or utc_now()
    async with pool.acquire() as conn, conn.transaction():
        row = await _locked(conn, intent_id)
        state = row["state"]
        if state == "cancelled":
            raise IntentStateConflict("id", f"intent {intent_id} is cancelled")
        if action == "pause":
            if state != "active":
                raise IntentStateConflict("id", f"intent {intent_id} is {state}, not active")
            await conn.execute(Q.set_intent_state, intent_id, "paused", row["next_at"])
        elif action == "resume":
            if state != "paused":
                raise IntentStateConflict("id", f"intent {intent_id} is {state}, not paused")
            spec = IntentSpec.parse(_spec_of(row))
            await conn.execute(Q.set_intent_state, intent_id, "active", _first_at_or_after(spec, now))
        else:
            await conn.execute(Q.set_intent_state, intent_id, "cancelled", None)
            for occ in await conn.fetch(Q.cancel_open_occurrences, intent_id, reason or "intent cancelled"):
                await conn.execute(Q.insert_feed, occ["id"], occ["chain"], feed_payload(
                    "cancelled", occ["id"], intent_id, occ["chain"], state="cancelled", reason=reason))
        # The lock above waited for any attempt in progress (it share-locks the
        # intent), so what it requested is visible: a payout already requested
        # goes ahead, and the answer says so instead of a plain success.
        in_flight = [dict(r) for r in await conn.fetch(Q.payouts_in_flight, intent_id)]
        await audit(conn, actor, f"intent.{action}d" if action != "cancel" else "intent.cancelled",
                    f"intent:{intent_id}", {"reason": reason, "payouts_in_flight": in_flight})
        row = await conn.fetchrow(Q.get_intent, intent_id)
    return {**intent_view(row), "payouts_in_flight": in_flight}


async def approve_occurrence(pool: asyncpg.Pool, occurrence_id: str, actor: str, now: datetime | None = None) -> dict:
    """A catch-up above the intent's approval amount may go ahead."""
    _check_actor(actor)
    now = now or utc_now()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.approve_occurrence, occurrence_id, actor, now)
        if row is None:
            state = await conn.fetchval(Q.occurrence_state, occurrence_id)
            if state is None:
                raise IntentNotFound("occurrence", f"no occurrence {occurrence_id}")
            raise IntentStateConflict("occurrence", f"{occurrence_id} is {state}, not awaiting approval")
        await audit(conn, actor, "intent.catch_up_approved", f"occurrence:{occurrence_id}", {})
    return {"occurrence_id": occurrence_id, "state": "due", "approved_by": actor}


async def get_intent(conn: asyncpg.Connection, intent_id: int) -> dict:
    row = await conn.fetchrow(Q.get_intent, intent_id)
    if row is None:
        raise IntentNotFound("id", f"no intent {intent_id}")
    out = intent_view(row)
    out["versions"] = [intent_view(v) | {"intent_id": intent_id} for v in await conn.fetch(Q.versions_of, intent_id)]
    return out


async def list_intents(conn: asyncpg.Connection, state: str | None = None, limit: int = 1000) -> list[dict]:
    return [intent_view(r) for r in await conn.fetch(Q.list_intents, state, limit)]


async def occurrences(conn: asyncpg.Connection, intent_id: int, state: str | None = None,
                      limit: int = 1000) -> list[dict]:
    """Occurrences newest first, with state, reason, payout state and every evaluation."""
    if await conn.fetchrow(Q.get_intent, intent_id) is None:
        raise IntentNotFound("id", f"no intent {intent_id}")
    out = []
    for r in await conn.fetch(Q.occurrences_of, intent_id, state, limit):
        d = dict(r)
        d["evaluations"] = json.loads(d["evaluations"]) if isinstance(d["evaluations"], str) else (
            d["evaluations"] or [])
        for k, v in list(d.items()):
            if isinstance(v, datetime):
                d[k] = v.isoformat()
        out.append(d)
    return out


async def preview(pool: asyncpg.Pool, settings: Settings, intent_id: int, n: int = 12,
                  now: datetime | None = None, fees: FeeReader | None = None) -> list[dict]:
    """The next `n` scheduled times and what each evaluation would say now (nothing is stored)."""
    if not isinstance(n, int) or not 1 <= n <= 1000:
        raise IntentError("next", "must be 1 to 1000")
    now = now or utc_now()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(Q.get_intent, intent_id)
        if row is None:
            raise IntentNotFound("id", f"no intent {intent_id}")
        spec = IntentSpec.parse(_spec_of(row))
        sched = spec.schedule()
        fee = None
        if spec.gas_cap is not None and fees is not None:
            try:
                fee = await fees(spec.chain)
            except Exception:  # noqa: BLE001 - shown as fee_unknown
                fee = None
        unit = (await assets_of_chain(conn, spec.chain)).get(f"{spec.chain}:{spec.asset}")
        out = []
        for t in sched.upcoming(row["next_at"] or now, n) if row["state"] != "cancelled" else []:
            v = await evaluate(conn, settings, spec, occurrence_id=occurrence_id(intent_id, t), intent_id=intent_id,
                               scheduled_at=t, now=now, fee=fee)
            out.append({"scheduled_at": t.astimezone(timezone.utc).isoformat(),
                        "local": to_wall(t, sched.tz).isoformat() + f" {spec.timezone}",
                        "would_pass": v.ok, "reason": v.reason, "amount": None if v.amount is None else amount_text(v.amount),
                        "units": None if v.amount is None or unit is None else units_text(v.amount, unit["decimals"],
                                                                                         unit["symbol"]),
                        "inputs": v.inputs})
    return out
