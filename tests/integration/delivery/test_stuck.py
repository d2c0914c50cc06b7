"""A relay that says why it is stuck (issue 30, item 5).

A subscription whose every attempt fails used to stay `active` with `pending`
rising and nothing in the log. Now the outcome and reason of the last failed
attempt are stored with the subscription: logged once per change (not per
attempt), shown by /v1/deliveries, cleared (and logged) by the next success,
and a gauge from the database raises ChainsettleDeliveryStuck in a real
Prometheus scraping a running daemon.
"""

from __future__ import annotations

import pytest

from daemon.devchain import free_port
from delivery import admin
from delivery import relay as relay_module
from tests.integration.settlement.payouts.evm.test_kill import kill, start_daemon
from tests.support.api_data import client_for, published
from tests.support.config import evm_chain, write_config
from tests.support.delivery import SECRET, ensure_chain, insert_events, running_relay, settings_for
from tests.support.pg import wait_until
from tests.support.prometheus import PrometheusServer, prometheus_binary
from tests.support.receiver import Receiver

A = "0x" + "a" * 40


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("WH_SECRET", SECRET)


class Recorder:
    """Stands in for the relay's logger: what was logged, by event name."""

    def __init__(self, real) -> None:
        self.real = real
        self.events: list[tuple[str, dict]] = []

    def __getattr__(self, level):
        def log(event, **kw):
            self.events.append((event, kw))
            getattr(self.real, level)(event, **kw)
        return log

    def named(self, event: str) -> list[dict]:
        return [kw for e, kw in self.events if e == event]


async def make_sub(pool, tmp_path, url: str) -> None:
    # Made while loopback was allowed (as through an API of another config); the relay below refuses it.
    allowing = settings_for(tmp_path, [], allow_loopback=True)
    spec = admin.SubscriptionSpec(id="app", sink="webhook", url=url)
    await admin.create(pool, allowing, "ops", spec)


async def test_a_refused_or_failing_target_says_why_once_per_change(pool, db_url, tmp_path, monkeypatch):
    recorder = Recorder(relay_module.log)
    monkeypatch.setattr(relay_module, "log", recorder)
    receiver = await Receiver(lambda n, m: (503, {}, 0.0)).start()
    await ensure_chain(pool)
    await make_sub(pool, tmp_path, receiver.url)
    async with pool.acquire() as conn, conn.transaction():
        await insert_events(conn, "local", [(1, 0, A)])
    for d in ("r", "a"):
        (tmp_path / d).mkdir()
    refusing = settings_for(tmp_path / "r", [], allow_loopback=False, retry_schedule=[0.05] * 40)
    async with running_relay(refusing, pool, db_url):
        await wait_until(pool, "SELECT count(*) >= 4 FROM delivery_attempts WHERE subscription_id = 'app'")
    sub = (await admin.list_all(pool))[0]
    assert (sub["state"], sub["last_outcome"]) == ("active", "refused")
    assert "loopback" in sub["last_error"] and "delivery.allow_loopback" in sub["last_error"]
    assert [kw["outcome"] for kw in recorder.named("delivery.failing")] == ["refused"]  # once, not per attempt
    assert receiver.requests == []
    async with client_for(published(refusing, "deliveries"), pool) as client:
        shown = (await (await client.get("/v1/deliveries")).json())["subscriptions"][0]
    assert shown["last_outcome"] == "refused" and "allow_loopback" in shown["last_error"]
    assert shown["failing_since"] is not None

    # Allowed now, but the receiver answers 503: a new reason, logged once more.
    allowing = settings_for(tmp_path / "a", [], allow_loopback=True, retry_schedule=[0.05] * 40)
    async with running_relay(allowing, pool, db_url):
        await receiver.wait_for(lambda: len(receiver.requests) >= 3)
        await wait_until(pool, "SELECT last_outcome = 'http_error' FROM delivery_subscriptions WHERE id = 'app'")
        assert [kw["outcome"] for kw in recorder.named("delivery.failing")] == ["refused", "http_error"]
        assert (await admin.list_all(pool))[0]["last_error"] == "HTTP 503"
        receiver.behaviour = lambda n, m: (200, {}, 0.0)
        await receiver.wait_for(lambda: len(receiver.accepted) == 1)
        await wait_until(pool, "SELECT last_outcome IS NULL AND failing_since IS NULL FROM delivery_subscriptions")
    assert len(recorder.named("delivery.recovered")) == 1
    assert len(recorder.named("delivery.failing")) == 2
    await receiver.stop()


pytestmark_prom = pytest.mark.skipif(prometheus_binary() is None, reason="prometheus not installed")


@pytestmark_prom
async def test_a_stuck_subscription_raises_its_alert_in_a_running_daemon(anvil, pool, db_url, tmp_path):
    await make_sub(pool, tmp_path, "http://127.0.0.1:9/hook")
    port = free_port()
    config = write_config(tmp_path / "daemon.toml", {
        "database": {"url": "postgresql://unused"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "chains": [evm_chain("anvil", anvil.url, finality_depth=1, poll_interval=0.2)],
        "delivery": {"allow_loopback": False, "poll_interval": 0.2, "retry_schedule": [0.1] * 40},
    })
    log = tmp_path / "daemon.log"
    proc = start_daemon(config, db_url, log)
    try:
        anvil.rpc("evm_mine", [])  # events and blocks feed the outbox; a ping is queued regardless
        await admin.send_ping(pool, "ops", "app")
        await wait_until(pool, "SELECT last_outcome = 'refused' FROM delivery_subscriptions WHERE id = 'app'",
                         timeout=60)
        with PrometheusServer([f"127.0.0.1:{port}"]) as prom:
            prom.wait_for_alert("ChainsettleDeliveryStuck", subscription="app", outcome="refused")
            await admin.set_state(pool, "ops", "app", "paused", "looking into it")
            prom.wait_until_resolved("ChainsettleDeliveryStuck")
        lines = [ln for ln in log.read_text().splitlines() if "delivery.failing" in ln]
        assert len(lines) == 1 and "allow_loopback" in lines[0]
    finally:
        kill(proc)
