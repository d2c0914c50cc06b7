"""Scheduler processes SIGKILLed and restarted at random points, and stopped
for a stretch covering several occurrences: each missed-run policy does what
it promises and nothing is requested twice. Two processes racing for one
source balance never overdraw it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from settlement.intents import store
from settlement.ledger.books import Posting, post_transaction
from tests.support.batcher import fresh_address
from tests.support.pg import wait_until

from .support import Env, credit_users, occurrences, spec

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[4]
UNIT = 10**15
H0 = datetime(2028, 3, 1, tzinfo=UTC)


def set_clock(path: Path, text: str) -> None:
    """Atomically: a child reading the clock never sees a half-written file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Child:
    def __init__(self, db_url: str, config: Path, clock_file: Path, mode: str) -> None:
        self.args = [sys.executable, "-m", "tests.integration.settlement.intents.child", db_url, str(config),
                     str(clock_file), mode]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=open(os.environ.get("CS_CHILD_LOG", os.devnull), "ab"))

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path)
    await e.start()
    yield e
    await e.close()


async def _occurrence_state(conn) -> str:
    rows = [dict(r) for r in await conn.fetch(
        "SELECT o.id, o.state, o.reason, o.next_attempt_at, o.attempts, "
        "(SELECT e.inputs FROM intent_evaluations e WHERE e.occurrence_id = o.id ORDER BY attempt DESC LIMIT 1) "
        "FROM intent_occurrences o ORDER BY scheduled_at DESC LIMIT 6")]
    nxt = [dict(r) for r in await conn.fetch("SELECT id, name, next_at FROM intents")]
    return f"{rows}\n{nxt}"


async def wait_for(pool, sql: str, *args, timeout: float = 30.0) -> None:
    await wait_until(pool, sql, *args, timeout=timeout, diagnose=_occurrence_state)


async def test_kills_restarts_and_a_stopped_stretch_per_policy(env, db_url, tmp_path):
    rng = random.Random(int(os.environ.get("CS_KILL_SEED", "15")))
    clock_file = tmp_path / "clock"
    set_clock(clock_file, H0.isoformat())
    ids = {}
    for policy in ("skip", "latest", "all"):
        to = fresh_address().lower()
        await credit_users(env.pool, "anvil", {to: 100 * UNIT})
        intent = await store.create_intent(env.pool, env.settings, spec(
            to, name=policy, cron=None, interval_seconds=3600, start=(H0 + timedelta(hours=1)).isoformat(),
            end=(H0 + timedelta(hours=12)).isoformat(), missed_run_policy=policy, grace_seconds=600,
            max_catch_up=3), "test", now=H0)
        ids[policy] = intent["id"]
    child = Child(db_url, tmp_path / "chainsettle.toml", clock_file, "daemon")
    child.start()
    kills = 0

    async def hour(h: int, late_by: timedelta = timedelta(seconds=60)) -> None:
        nonlocal kills
        set_clock(clock_file, (H0 + timedelta(hours=h) + late_by).isoformat())
        if h in (2, 9) or rng.random() < 0.5:  # a SIGKILL at a random point of the work on this hour
            await asyncio.sleep(rng.uniform(0.0, 0.4))
            child.kill()
            kills += 1
            child.start()
        at = H0 + timedelta(hours=h)
        await wait_for(env.pool, "SELECT count(*) = 3 FROM intent_occurrences WHERE scheduled_at = $1 "
                       "AND state IN ('requested', 'skipped')", at, timeout=60)

    try:
        for h in (1, 2, 3):
            await hour(h)
        # Stopped for a stretch: hours 4..7 pass while no scheduler runs; it comes back at 7:30,
        # past every one's grace window.
        child.kill()
        set_clock(clock_file, (H0 + timedelta(hours=7, minutes=30)).isoformat())
        child.start()
        await wait_for(env.pool, "SELECT count(*) = 12 FROM intent_occurrences WHERE scheduled_at > $1 "
                       "AND state IN ('requested', 'skipped')", H0 + timedelta(hours=3), timeout=60)
        for h in (8, 9, 10, 11, 12):
            await hour(h)
        await asyncio.sleep(0.5)  # a last round may still be running: it must add nothing
    finally:
        child.kill()
    assert kills >= 2
    requested = {}
    skipped = {}
    for policy, iid in ids.items():
        occs = await occurrences(env.pool, iid)
        assert len(occs) == 12 and len({o["scheduled_at"] for o in occs}) == 12
        requested[policy] = [int((o["scheduled_at"] - H0) / timedelta(hours=1)) for o in occs
                             if o["state"] == "requested"]
        skipped[policy] = [int((o["scheduled_at"] - H0) / timedelta(hours=1)) for o in occs if o["state"] == "skipped"]
        assert {o["state"] for o in occs} <= {"requested", "skipped"}
        catch_ups = [int((o["scheduled_at"] - H0) / timedelta(hours=1)) for o in occs if o["catch_up"]]
        if policy == "skip":
            assert catch_ups == []
        elif policy == "latest":
            assert catch_ups == [7]
        else:
            assert catch_ups == [5, 6, 7]
    on_time = [1, 2, 3, 8, 9, 10, 11, 12]
    assert requested["skip"] == on_time and skipped["skip"] == [4, 5, 6, 7]
    assert requested["latest"] == sorted(on_time + [7]) and skipped["latest"] == [4, 5, 6]
    assert requested["all"] == sorted(on_time + [5, 6, 7]) and skipped["all"] == [4]
    # Nothing twice: one payout request per requested occurrence, keyed by its id.
    rows = await env.fetch("SELECT idempotency_key FROM payout_requests")
    keys = [r["idempotency_key"] for r in rows]
    assert len(keys) == len(set(keys)) == sum(len(v) for v in requested.values())
    occ_ids = {o["id"] for iid in ids.values() for o in await occurrences(env.pool, iid) if o["state"] == "requested"}
    assert set(keys) == occ_ids


async def test_two_processes_racing_for_one_balance_never_overdraw_it(anvil, pool, db_url, tmp_path):
    env = Env(anvil, pool, tmp_path, require_balance=False)
    await env.start()
    try:
        clock_file = tmp_path / "clock"
        set_clock(clock_file, H0.isoformat())
        n_sources = 12
        async with pool.acquire() as conn:
            final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = 'anvil'")
            for i in range(n_sources):
                # Each source holds 5 units; its two intents want 3 each: only one fits.
                await post_transaction(conn, key=f"fund:{i}", cause_kind="manual", cause={"why": "test"},
                                       chain="anvil", block_number=final, author="test", reason="fund source",
                                       postings=[Posting(f"user:anvil:pool-s{i}", "anvil:native", -5 * UNIT),
                                                 Posting("adjustment:anvil:seed", "anvil:native", 5 * UNIT)])
        for i in range(n_sources):
            for _ in range(2):
                await store.create_intent(env.pool, env.settings, spec(
                    fresh_address().lower(), name=f"s{i}", amount=str(3 * UNIT), cron="0 * * * *",
                    source_account=f"user:anvil:pool-s{i}", start=(H0 + timedelta(minutes=30)).isoformat(),
                    end=(H0 + timedelta(minutes=90)).isoformat()), "test", now=H0)  # one occurrence: 01:00
        config = tmp_path / "chainsettle.toml"
        a, b = Child(db_url, config, clock_file, "direct"), Child(db_url, config, clock_file, "direct")
        a.start()
        b.start()
        try:
            await asyncio.sleep(1.0)  # both connected and idle
            set_clock(clock_file, (H0 + timedelta(hours=1, seconds=5)).isoformat())
            await wait_for(pool, "SELECT count(*) = $1 FROM intent_occurrences WHERE state IN ('requested', 'delayed')",
                           2 * n_sources, timeout=60)
        finally:
            a.kill()
            b.kill()
        rows = await env.fetch(
            "SELECT source_account, state, reason, amount FROM intent_occurrences ORDER BY source_account")
        by_source: dict[str, list] = {}
        for r in rows:
            by_source.setdefault(r["source_account"], []).append(r)
        assert len(by_source) == n_sources
        for src, occs in by_source.items():
            assert sorted(o["state"] for o in occs) == ["delayed", "requested"], (src, occs)
            assert next(o for o in occs if o["state"] == "delayed")["reason"] == "insufficient_balance"
        paid_total = await env.val("SELECT sum(amount) FROM payout_requests")
        assert paid_total == n_sources * 3 * UNIT
    finally:
        await env.close()


async def test_a_standby_daemon_takes_over_when_the_leader_is_killed(env, db_url, tmp_path):
    rng = random.Random(int(os.environ.get("CS_KILL_SEED", "15")))
    clock_file = tmp_path / "clock"
    set_clock(clock_file, H0.isoformat())
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 100 * UNIT})
    intent = await store.create_intent(env.pool, env.settings, spec(
        to, name="standby", cron=None, interval_seconds=3600, start=(H0 + timedelta(hours=1)).isoformat(),
        end=(H0 + timedelta(hours=6)).isoformat(), grace_seconds=3600), "test", now=H0)
    config = tmp_path / "chainsettle.toml"
    pair = [Child(db_url, config, clock_file, "daemon"), Child(db_url, config, clock_file, "daemon")]
    for c in pair:
        c.start()
    try:
        for h in range(1, 7):
            set_clock(clock_file, (H0 + timedelta(hours=h, seconds=30)).isoformat())
            victim = pair[rng.randrange(2)]  # leader or standby: either may die at any point
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            victim.kill()
            victim.start()
            await wait_for(env.pool, "SELECT state = 'requested' FROM intent_occurrences WHERE scheduled_at = $1",
                           H0 + timedelta(hours=h), timeout=60)
        await asyncio.sleep(0.5)
    finally:
        for c in pair:
            c.kill()
    occs = await occurrences(env.pool, intent["id"])
    assert [o["state"] for o in occs] == ["requested"] * 6
    keys = [r["idempotency_key"] for r in await env.fetch("SELECT idempotency_key FROM payout_requests")]
    assert sorted(keys) == sorted(o["id"] for o in occs)
    # One passing evaluation each ('ok', or 'already_requested' when a kill cut the attempt after its
    # request): never a second request.
    evs = await env.fetch("SELECT occurrence_id, array_agg(reason) AS r FROM intent_evaluations GROUP BY 1")
    assert len(evs) == 6 and all(len(e["r"]) == 1 and e["r"][0] in ("ok", "already_requested") for e in evs)
