"""Webhook delivery through a real relay, real Postgres and an aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from delivery import admin
from delivery.relay import retry_delay
from tests.support.delivery import (
    SECRET,
    ensure_chain,
    insert_events,
    running_relay,
    set_final,
    settings_for,
    webhook,
)
from tests.support.receiver import Receiver

A, B, C = ("0x" + c * 40 for c in "abc")


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("WH_SECRET", SECRET)


async def write_batches(pool) -> list[str]:
    """Three transactions of events and one that makes them final; the expected stream, in order."""
    await ensure_chain(pool)
    expected_obs, expected_fin = [], []
    block = 1
    for _ in range(3):
        async with pool.acquire() as conn, conn.transaction():
            rows = []
            for i in range(6):
                rows.append((block, i, (A, B, C)[i % 3]))
            block += 1
            ids = await insert_events(conn, "local", rows)
        expected_obs += [f"ev_local_{i}_observed" for i in ids]
        expected_fin += [f"ev_local_{i}_final" for i in ids]
    await set_final(pool, "local", block)
    return expected_obs + expected_fin


def verify_all(receiver: Receiver, secret: str = SECRET) -> None:
    wh = Webhook(secret)
    for r in receiver.accepted:
        wh.verify(r.body, r.headers)  # raises on a bad signature
        assert orjson.loads(r.body)["id"] == r.msg_id


def flaky(n: int, msg_id: str):
    """Fails, times out, answers 429 with Retry-After, then mostly recovers."""
    if n < 3:
        return 500, {}, 0.0
    if n == 3:
        return 200, {}, 1.5          # answers after the relay's 0.5 s timeout
    if n == 4:
        return 429, {"Retry-After": "1"}, 0.0
    if n % 7 == 0:
        return 503, {}, 0.0
    return 200, {}, 0.0


@pytest.mark.parametrize("ordering", ["strict", "per_key"])
async def test_flaky_receiver_gets_every_event_once_after_dedup_in_order(pool, db_url, tmp_path, ordering):
    receiver = await Receiver(flaky).start()
    settings = settings_for(tmp_path, [webhook("app", receiver.url, ordering=ordering, start="earliest")])
    try:
        async with running_relay(settings, pool, db_url):
            expected = await write_batches(pool)
            await receiver.wait_for(lambda: set(receiver.first_seen()) >= set(expected), 60)
        seen = receiver.first_seen()
        assert sorted(seen) == sorted(expected)          # every event, none invented
        assert len(receiver.requests) > len(expected)     # the failures were retried
        verify_all(receiver)
        if ordering == "strict":
            assert seen == expected
        else:
            key = {}
            for r in receiver.accepted:
                d = orjson.loads(r.body)["data"]
                key[r.msg_id] = (d["chain"], d["address"])
            for k in {A, B, C}:
                assert [s for s in seen if key[s][1] == k] == [e for e in expected if key[e][1] == k]
        # The 429's Retry-After was honoured: the next try of that message came at least 1 s later.
        after_429 = [r for r in receiver.requests if r.msg_id == receiver.requests[4].msg_id]
        i = after_429.index(receiver.requests[4])
        assert after_429[i + 1].at - after_429[i].at >= 0.95
        outcomes = {r["outcome"] for r in await admin.attempts(pool, "app", limit=1000)}
        assert {"ok", "http_error", "timeout"} <= outcomes
        rows = await admin.attempts(pool, "app", limit=1000)
        assert any(r["status_code"] == 429 and r["response_head"] == "answer 429" for r in rows)
    finally:
        await receiver.stop()


async def test_a_transaction_open_across_a_later_commit_is_not_skipped(pool, db_url, tmp_path):
    receiver = await Receiver().start()
    settings = settings_for(tmp_path, [webhook("app", receiver.url, ordering="strict", start="earliest")])
    await ensure_chain(pool)
    try:
        async with running_relay(settings, pool, db_url):
            slow = await pool.acquire()
            tr = slow.transaction()
            await tr.start()
            early = await insert_events(slow, "local", [(1, 0, A)])   # lower xid, commits last
            async with pool.acquire() as conn, conn.transaction():
                late = await insert_events(conn, "local", [(2, 0, B)])
            await asyncio.sleep(1.0)   # several relay polls while the first stays open
            assert receiver.first_seen() == []
            await tr.commit()
            await pool.release(slow)
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 2)
        assert receiver.first_seen() == [f"ev_local_{early[0]}_observed", f"ev_local_{late[0]}_observed"]
    finally:
        await receiver.stop()


async def test_dead_letter_then_range_redelivery(pool, db_url, tmp_path):
    down = {"on": True}
    receiver = await Receiver(lambda n, m: (500, {}, 0.0) if down["on"] else (200, {}, 0.0)).start()
    settings = settings_for(tmp_path, [webhook("app", receiver.url, ordering="per_key", start="earliest")],
                            retry_schedule=[0.05, 0.05])
    await ensure_chain(pool)
    try:
        async with running_relay(settings, pool, db_url):
            async with pool.acquire() as conn, conn.transaction():
                ids = await insert_events(conn, "local", [(5, 0, A), (6, 0, A), (7, 0, B)])

            async def dead():
                return {r["msg_id"] for r in await admin.messages(pool, "app", state="dead")}

            for _ in range(100):
                if len(await dead()) == 3:
                    break
                await asyncio.sleep(0.1)
            assert await dead() == {f"ev_local_{i}_observed" for i in ids}
            # three attempts each (first try + two retries), then the dead letter is announced
            attempts = await admin.attempts(pool, "app", limit=100)
            assert len(attempts) == 9
            audits = await pool.fetch("SELECT details FROM audit_log WHERE action = 'delivery.dead_letter'")
            assert {a["details"]["msg_id"] for a in audits} == await dead()
            from delivery import metrics as m
            assert m.DEAD_LETTERS.labels("app")._value.get() >= 3
            assert receiver.first_seen() == []
            # Redeliver blocks 6..7 only.
            down["on"] = False
            assert await admin.redeliver(pool, "ops", "app", from_block=6, to_block=7) == 2
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 2)
            await asyncio.sleep(0.3)
            assert sorted(receiver.first_seen()) == sorted(f"ev_local_{i}_observed" for i in ids[1:])
            assert await dead() == {f"ev_local_{ids[0]}_observed"}
            # ... and the one left by its id.
            assert await admin.redeliver(pool, "ops", "app", event_id=f"ev_local_{ids[0]}") == 1
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 3)
        verify_all(receiver)
    finally:
        await receiver.stop()


async def test_endpoint_failing_too_long_is_disabled_and_410_disables(pool, db_url, tmp_path):
    receiver = await Receiver(lambda n, m: (502, {}, 0.0)).start()
    gone = await Receiver(lambda n, m: (410, {}, 0.0)).start()
    settings = settings_for(tmp_path, [webhook("app", receiver.url, start="earliest"),
                                       webhook("old", gone.url, start="earliest")],
                            retry_schedule=[0.1] * 50, disable_after=1.0)
    await ensure_chain(pool)
    try:
        async with running_relay(settings, pool, db_url):
            async with pool.acquire() as conn, conn.transaction():
                await insert_events(conn, "local", [(1, 0, A)])
            for _ in range(100):
                states = {s["id"]: s["state"] for s in await admin.list_all(pool)}
                if states == {"app": "disabled", "old": "disabled"}:
                    break
                await asyncio.sleep(0.1)
            assert states == {"app": "disabled", "old": "disabled"}
            subs = {s["id"]: s for s in await admin.list_all(pool)}
            assert "disable_after" in subs["app"]["state_reason"]
            assert "410" in subs["old"]["state_reason"]
            assert len(gone.requests) == 1                       # 410: no retry at all
            count = len(receiver.requests)
            await asyncio.sleep(0.6)
            assert len(receiver.requests) == count               # disabled: nothing more is sent
            actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
            assert actions.count("delivery.disabled") == 2
            # The message was not lost: resumed against a recovered endpoint it arrives.
            receiver.behaviour = lambda n, m: (200, {}, 0.0)
            await admin.set_state(pool, "ops", "app", "active", "fixed")
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 1)
    finally:
        await receiver.stop()
        await gone.stop()


async def test_secret_rotation_signs_with_old_and_new_during_overlap(pool, db_url, tmp_path):
    receiver = await Receiver().start()
    settings = settings_for(tmp_path, [webhook("app", receiver.url, ordering="strict", start="earliest")])
    await ensure_chain(pool)
    try:
        async with running_relay(settings, pool, db_url):
            rotated = await admin.rotate(pool, settings, "ops", "app", overlap=1.5)
            new = rotated["secret"]
            assert new.startswith("whsec_") and new != SECRET
            assert all("secret" not in s for s in rotated["secrets"])   # only ids and prefixes shown
            await admin.send_ping(pool, "ops", "app")
            await receiver.wait_for(lambda: len(receiver.accepted) == 1)
            during = receiver.accepted[0]
            Webhook(SECRET).verify(during.body, during.headers)
            Webhook(new).verify(during.body, during.headers)
            assert len(during.headers["webhook-signature"].split(" ")) == 2
            await asyncio.sleep(1.6)
            await admin.send_ping(pool, "ops", "app")
            await receiver.wait_for(lambda: len(receiver.accepted) == 2)
            after = receiver.accepted[1]
            Webhook(new).verify(after.body, after.headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(SECRET).verify(after.body, after.headers)
    finally:
        await receiver.stop()


async def test_loopback_and_private_targets_are_refused_unless_allowed(pool, tmp_path):
    settings = settings_for(tmp_path, [], allow_loopback=False)
    for url, word in [("http://127.0.0.1:9/x", "loopback"), ("https://10.0.0.5/x", "private"),
                      ("http://example.com/x", "https"), ("https://169.254.169.254/latest", "private"),
                      ("https://[::1]/x", "loopback")]:
        body = admin.SubscriptionSpec(id="x", sink="webhook", url=url, secrets=["env:WH_SECRET"])
        with pytest.raises(admin.DeliveryInputError) as err:
            await admin.create(pool, settings, "ops", body)
        assert err.value.field == "url" and word in str(err.value)
    allowed = settings_for(tmp_path, [], allow_loopback=False, allow_private=["10.0.0.0/8"])
    made = await admin.create(pool, allowed, "ops", admin.SubscriptionSpec(id="ok", sink="webhook",
                                                                         url="https://10.0.0.5/x"))
    assert made["secret"].startswith("whsec_")
    assert all(made["secret"] not in str(v) for k, v in made.items() if k != "secret")


def test_retry_schedule_is_svix_like_with_jitter_and_retry_after():
    from config.section_deliveries import DeliverySettings
    s = DeliverySettings()
    import random
    rng = random.Random(1)
    delays = [retry_delay(s, n, None, rng) for n in range(1, 8)]
    for d, base in zip(delays, [5, 300, 1800, 7200, 18000, 36000, 36000]):
        assert base * 0.8 <= d <= base * 1.2
    assert sum(s.retry_schedule) / 3600 > 24          # about a day in all
    assert retry_delay(s, 8, None) is None            # then the dead letter
    assert retry_delay(s, 2, 42.0) == 42.0
    assert retry_delay(s, 2, 10**9) == s.max_retry_after


def test_retry_after_http_date():
    from delivery.sinks import parse_retry_after
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30
    assert parse_retry_after("120") == 120
    assert parse_retry_after("soon") is None


async def test_redirects_are_not_followed(pool, db_url, tmp_path):
    other = await Receiver().start()
    redirecting = await Receiver(lambda n, m: (307, {"Location": other.url}, 0.0)).start()
    settings = settings_for(tmp_path, [webhook("app", redirecting.url, start="earliest")], retry_schedule=[0.05])
    await ensure_chain(pool)
    try:
        async with running_relay(settings, pool, db_url):
            async with pool.acquire() as conn, conn.transaction():
                await insert_events(conn, "local", [(1, 0, A)])
            for _ in range(100):
                if len(await admin.messages(pool, "app", state="dead")) == 1:
                    break
                await asyncio.sleep(0.05)
        rows = await admin.attempts(pool, "app")
        assert [(r["outcome"], r["status_code"]) for r in rows] == [("http_error", 307)] * 2
        assert len(redirecting.requests) == 2 and other.requests == []
    finally:
        await other.stop()
        await redirecting.stop()


async def test_resolver_refuses_names_that_resolve_to_refused_addresses():
    from config.section_deliveries import DeliverySettings
    from delivery.ssrf import GuardedResolver
    resolver = GuardedResolver(DeliverySettings())
    try:
        with pytest.raises(OSError, match="loopback"):
            await resolver.resolve("localhost", 80)
        allowed = GuardedResolver(DeliverySettings(allow_loopback=True))
        assert all(r["host"] in ("127.0.0.1", "::1") for r in await allowed.resolve("localhost", 80))
        await allowed.close()
    finally:
        await resolver.close()


async def test_notify_wakes_the_relay_and_polling_covers_a_lost_listener(pool, db_url, tmp_path):
    receiver = await Receiver().start()
    # A poll far longer than the test: only NOTIFY can bring the first event quickly.
    settings = settings_for(tmp_path, [webhook("app", receiver.url, start="earliest")], poll_interval=60)
    await ensure_chain(pool)
    try:
        async with running_relay(settings, pool, db_url) as relay:
            await asyncio.sleep(0.5)   # the relay is idle, waiting on LISTEN
            async with pool.acquire() as conn, conn.transaction():
                await insert_events(conn, "local", [(1, 0, A)])
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 1, timeout=10)
        # Without a listener (its connection killed), polling still delivers.
        settings = settings_for(tmp_path, [webhook("app", receiver.url, start="earliest")], poll_interval=0.3)
        async with running_relay(settings, pool, db_url) as relay:
            await asyncio.sleep(0.5)
            pid = relay._listener.get_server_pid()
            await pool.execute("SELECT pg_terminate_backend($1)", pid)
            async with pool.acquire() as conn, conn.transaction():
                await insert_events(conn, "local", [(2, 0, A)])
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 2, timeout=10)
    finally:
        await receiver.stop()
