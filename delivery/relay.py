"""The relay: fan-out on every wake-up, one sender per active subscription.

Wake-ups come from LISTEN chainsettle_delivery (NOTIFY fires at commit, from
the triggers of 0010 and from admin actions) with polling as the fallback:
a lost connection or a missed notification delays delivery by at most
`delivery.poll_interval`, it never loses anything, because the queue and
the cursors are rows, not memory.

A sender reads what is due, returns its connection, sends, and records the
outcome in a short transaction: no transaction is open while a receiver
thinks. A kill between the send and the record sends the message again
(at least once); receivers deduplicate by `webhook-id`, the Redis sink by
its marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import asyncpg

from config import Settings
from config.logs import get_logger
from config.section_deliveries import DeliverySettings
from db import Queries, audit

from . import metrics as m
from .admin import sync_config
from .fanout import Subscription, fan_out
from .sinks import Outcome, Outgoing, RedisSink, Sink, WebhookSink

log = get_logger("delivery")
Q = Queries(Path(__file__).with_name("queries.sql"))
CHANNEL = "chainsettle_delivery"
PRUNE_EVERY = 60.0
HELD_BACK_RECHECK = 0.02
PRUNE_BATCH = 10_000
DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def retry_delay(settings: DeliverySettings, failed_attempts: int, retry_after: float | None,
                rng: random.Random | None = None) -> float | None:
    """Seconds until the next try after `failed_attempts` failures, or None: dead-letter.

    The schedule is Svix's by default (delivery.retry_schedule); each delay
    gets +/- `jitter` so that endpoints recovering from an outage are not hit
    by every retry at once. A receiver's Retry-After replaces the delay
    (capped by max_retry_after) but does not add attempts.
    """
    schedule = settings.retry_schedule
    if failed_attempts > len(schedule):
        return None
    if retry_after is not None:
        return min(retry_after, settings.max_retry_after)
    base = schedule[failed_attempts - 1]
    return max(0.0, base * (1 + (rng or random).uniform(-settings.jitter, settings.jitter)))


class Sender:
    """Delivers one subscription's queue in its ordering mode."""

    def __init__(self, relay: "Relay", sub: Subscription) -> None:
        self.relay = relay
        self.sub = sub
        self.wake = asyncio.Event()
        self.active = True
        self.sink: Sink | None = None
        self.task: asyncio.Task | None = None

    def _make_sink(self, secrets: list[str]) -> Sink:
        s = self.relay.settings.delivery
        if self.sub.sink == "redis":
            return RedisSink(self.sub.url, self.sub.stream or "", s)
        return WebhookSink(self.sub.url, secrets, s)

    async def run(self) -> None:
        pool = self.relay.pool
        try:
            while self.active and not self.relay.stop.is_set():
                # Cleared before looking, so a wake-up that lands while we look is kept.
                self.wake.clear()
                try:
                    sent = await self.step()
                except DB_ERRORS as exc:
                    m.RELAY_ERRORS.inc()
                    log.warning("delivery.sender_db_error", subscription=self.sub.id, error=exc.__class__.__name__)
                    sent = 0
                if sent:
                    continue
                delay = self.relay.settings.delivery.poll_interval
                with contextlib.suppress(*DB_ERRORS):
                    due = await pool.fetchval(Q.next_due, self.sub.id)
                    if due is not None:
                        delay = min(delay, due)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), max(delay, 0.005))
        finally:
            if self.sink is not None:
                await self.sink.close()

    async def step(self) -> int:
        """Send what is due, each key's messages in order; returns how many were sent."""
        pool = self.relay.pool
        per_key = self.sub.ordering == "per_key"
        async with pool.acquire() as conn:
            secrets = [r["secret"] for r in await conn.fetch(Q.active_secrets, self.sub.id)]
            rows = await conn.fetch(Q.pending_batch, self.sub.id, self.relay.settings.delivery.send_batch, per_key)
        # The connection is back in the pool: nothing is held while we send.
        if not rows or not rows[0]["due"] and not per_key:
            return 0
        if self.sink is None:
            self.sink = self._make_sink(secrets)
        if isinstance(self.sink, WebhookSink):
            self.sink.secrets = secrets  # a rotation takes effect at the next send
        runs: dict[str, list] = {}
        for r in rows:
            runs.setdefault(r["key"] if per_key else "", []).append(r)
        counts = await asyncio.gather(*(self._send_run(run) for run in runs.values()))
        return sum(counts)

    async def _send_run(self, run: list) -> int:
        """One key's messages (strict: the whole batch) in order, stopping at the first failure.

        Successes are recorded together at the end of the run (one
        transaction instead of one per message); a kill before that only
        means those are sent again, which at-least-once allows.
        """
        sent = 0
        done: list[tuple[Outgoing, int, Outcome]] = []
        try:
            for r in run:
                if not r["due"] or not self.active:
                    break
                o = Outgoing(r["seq"], r["msg_id"], bytes(r["body"]), r["generation"])
                outcome = await self._send(o, r["type"])
                sent += 1
                if outcome.ok:
                    done.append((o, r["attempts"], outcome))
                    continue
                await self.record_ok(done)
                done = []
                await self.record(o, r["attempts"], outcome)
                break
        finally:
            await self.record_ok(done)
        return sent

    async def record_ok(self, done: list[tuple[Outgoing, int, Outcome]]) -> None:
        if not done:
            return
        async with self.relay.pool.acquire() as conn, conn.transaction():
            await conn.executemany(Q.record_attempt, [
                (self.sub.id, o.seq, o.msg_id, attempts + 1, out.outcome, out.status_code, out.latency_ms,
                 out.response_head, out.error) for o, attempts, out in done])
            await conn.executemany(Q.mark_delivered, [(o.seq, o.generation) for o, _, _ in done])
            recovered = await conn.fetchval(Q.sub_succeeded, self.sub.id)
        if recovered:
            self._recovered()

    def _recovered(self) -> None:
        log.info("delivery.recovered", subscription=self.sub.id)
        for outcome in m.FAILURE_OUTCOMES:
            m.FAILING.labels(self.sub.id, outcome).set(0)

    async def _send(self, o: Outgoing, msg_type: str) -> Outcome:
        assert self.sink is not None
        if isinstance(self.sink, RedisSink):
            outcome = await self.sink.send(o, msg_type)
        else:
            outcome = await self.sink.send(o)
        m.LATENCY.labels(self.sub.sink).observe(outcome.latency_ms / 1000)
        m.ATTEMPTS.labels(self.sub.id, outcome.outcome).inc()
        return outcome

    async def record(self, o: Outgoing, attempts_before: int, out: Outcome) -> None:
        settings = self.relay.settings.delivery
        attempt = attempts_before + 1
        async with self.relay.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q.record_attempt, self.sub.id, o.seq, o.msg_id, attempt, out.outcome, out.status_code,
                               out.latency_ms, out.response_head, out.error)
            if out.ok:
                await conn.execute(Q.mark_delivered, o.seq, o.generation)
                if await conn.fetchval(Q.sub_succeeded, self.sub.id):
                    self._recovered()
                return
            disable_reason = None
            if out.outcome == "gone":
                # 410: the receiver says the endpoint is gone for good. The
                # message stays pending for when an operator resumes.
                await conn.execute(Q.mark_retry, o.seq, 0.0, out.error, o.generation)
                disable_reason = "endpoint answered 410 Gone"
            else:
                delay = retry_delay(settings, attempt, out.retry_after)
                if delay is None:
                    dead = await conn.fetchrow(Q.mark_dead, o.seq, out.error, o.generation)
                    if dead is not None:
                        await audit(conn, "relay", "delivery.dead_letter", f"delivery:{self.sub.id}",
                                    {"msg_id": o.msg_id, "event_id": dead["event_id"], "type": dead["type"],
                                     "attempts": attempt, "last_error": out.error})
                        m.DEAD_LETTERS.labels(self.sub.id).inc()
                        log.warning("delivery.dead_letter", subscription=self.sub.id, msg_id=o.msg_id,
                                    attempts=attempt, error=out.error)
                else:
                    await conn.execute(Q.mark_retry, o.seq, delay, out.error, o.generation)
            failing = await conn.fetchrow(Q.sub_failed, self.sub.id, out.outcome, out.error or out.outcome)
            if failing is not None and failing["changed"]:
                # Once per change of outcome or reason, not once per attempt: a refused
                # target (delivery.allow_loopback, allow_private) says so at its first try.
                log.warning("delivery.failing", subscription=self.sub.id, outcome=out.outcome, reason=out.error,
                            status_code=out.status_code, msg_id=o.msg_id)
                for outcome in m.FAILURE_OUTCOMES:
                    m.FAILING.labels(self.sub.id, outcome).set(1 if outcome == out.outcome else 0)
            if disable_reason is None and failing and failing["failing_for"] >= settings.disable_after:
                disable_reason = f"failing for {int(failing['failing_for'])}s (delivery.disable_after)"
            if disable_reason and failing and failing["state"] == "active":
                await conn.execute(Q.set_state, self.sub.id, "disabled", disable_reason)
                await audit(conn, "relay", "delivery.disabled", f"delivery:{self.sub.id}",
                            {"reason": disable_reason, "last_error": out.error})
                await conn.execute(Q.notify, "disabled")
                m.DISABLED_TOTAL.labels(self.sub.id, "gone" if out.outcome == "gone" else "failing").inc()
                log.warning("delivery.disabled", subscription=self.sub.id, reason=disable_reason)
                self.active = False


class Relay:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, url: str, stop: asyncio.Event) -> None:
        self.settings = settings
        self.pool = pool
        self.url = url
        self.stop = stop
        self.wake = asyncio.Event()
        self.senders: dict[str, Sender] = {}
        self._listener: asyncpg.Connection | None = None
        self._pruned_at = 0.0
        self._recheck = 0.0

    def _notified(self, *_args) -> None:
        self.wake.set()

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        with contextlib.suppress(*DB_ERRORS):
            conn = await asyncpg.connect(self.url)
            await conn.add_listener(CHANNEL, self._notified)
            self._listener = conn

    async def run(self) -> None:
        await sync_config(self.pool, self.settings)
        try:
            while not self.stop.is_set():
                await self._listen()
                self.wake.clear()
                wait = self.settings.delivery.poll_interval
                try:
                    if await self.tick():
                        # Soon, then less often: a long transaction elsewhere
                        # (a replay) must not turn this into a busy loop.
                        self._recheck = min(wait, self._recheck * 2 if self._recheck else HELD_BACK_RECHECK)
                        wait = self._recheck
                    else:
                        self._recheck = 0.0
                except DB_ERRORS as exc:
                    m.RELAY_ERRORS.inc()
                    log.warning("delivery.relay_db_error", error=f"{exc.__class__.__name__}: {exc}"[:300])
                with contextlib.suppress(asyncio.TimeoutError):
                    waiter = asyncio.ensure_future(self.wake.wait())
                    stopper = asyncio.ensure_future(self.stop.wait())
                    try:
                        await asyncio.wait({waiter, stopper}, timeout=wait,
                                           return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                        stopper.cancel()
        finally:
            await self.close()

    async def prune(self) -> None:
        """Delivered messages past `delivery.retention`, a batch at a time, at most once a minute."""
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        status = await self.pool.execute(Q.prune_delivered, self.settings.delivery.retention, PRUNE_BATCH)
        if status != "DELETE 0":
            log.info("delivery.pruned", messages=int(status.rsplit(" ", 1)[1]))

    async def tick(self) -> bool:
        """Fan out every subscription and (re)start senders; True if committed work waits behind the horizon."""
        await self.prune()
        rows = await self.pool.fetch(Q.subscriptions)
        seen = set()
        held_any = False
        for row in rows:
            sub = Subscription.from_row(row)
            seen.add(sub.id)
            queued, held = await fan_out(self.pool, sub, self.settings.delivery.fanout_batch)
            held_any = held_any or held
            if queued:
                m.FANNED_OUT.labels(sub.id).inc(queued)
            sender = self.senders.get(sub.id)
            if sender is not None and sender.task is not None and sender.task.done() and not sender.task.cancelled():
                exc = sender.task.exception()
                if exc is not None:  # a bug, not the network: say so, then start it again below
                    log.error("delivery.sender_crashed", subscription=sub.id,
                              error=f"{exc.__class__.__name__}: {exc}"[:500], exc_info=exc)
            if sub.state == "active":
                if sender is None or sender.task is None or sender.task.done() or not sender.active:
                    sender = Sender(self, sub)
                    sender.task = asyncio.create_task(sender.run(), name=f"delivery-{sub.id}")
                    self.senders[sub.id] = sender
                sender.sub = sub
                sender.wake.set()
            elif sender is not None:
                sender.active = False
                sender.wake.set()
            m.LAG_EVENTS.labels(sub.id).set(row["pending"])
            m.LAG_SECONDS.labels(sub.id).set(row["lag_seconds"] or 0)
            m.DEAD.labels(sub.id).set(row["dead"])
            m.DISABLED.labels(sub.id).set(1 if sub.state == "disabled" else 0)
            m.PAUSED.labels(sub.id).set(1 if sub.state == "paused" else 0)
            # From the rows, so every process (and a restarted one) reports a stuck subscription.
            for outcome in m.FAILURE_OUTCOMES:
                m.FAILING.labels(sub.id, outcome).set(1 if row["last_outcome"] == outcome else 0)
        for gone in set(self.senders) - seen:
            sender = self.senders.pop(gone)
            sender.active = False
            sender.wake.set()
        return held_any

    async def close(self) -> None:
        for sender in self.senders.values():
            sender.active = False
            sender.wake.set()
        tasks = [s.task for s in self.senders.values() if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            with contextlib.suppress(*DB_ERRORS):
                await self._listener.close()


async def run_relay(settings: Settings, pool: asyncpg.Pool, url: str, stop: asyncio.Event) -> None:
    await Relay(settings, pool, url, stop).run()
