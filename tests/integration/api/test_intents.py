"""Intent routes over HTTP against real Postgres: create, refusals naming the
field, read, edit (versions), preview, pause/resume/cancel, occurrences with
their evaluations, approvals; and `chainsettle intents ...` on the same data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from settlement.intents.scheduler import IntentScheduler
from tests.integration.api.test_admin import AUTH, USER, admin_settings, client_for, credit
from tests.support.api_data import seeded

UTC = timezone.utc


def body(**kw) -> dict:
    start = datetime.now(UTC) - timedelta(days=1)
    return {"name": "rent", "chain": "anvil", "asset": "native", "to": USER, "amount": "5",
            "cron": "0 9 1 * *", "timezone": "Europe/Zurich", "start": start.isoformat(), **kw}


async def test_intent_routes(tmp_path, monkeypatch, pool):
    settings = admin_settings(tmp_path, monkeypatch)
    await seeded(pool)
    async with client_for(settings, pool) as client:
        r = await client.post("/v1/admin/intents", json=body())
        assert r.status == 401
        for bad, field in ((body(cron="61 * * * *"), "cron"), (body(timezone="Moon/Base"), "timezone"),
                           (body(amount="-5"), "amount"), (body(chain="nope"), "chain"),
                           (body(rrule="FREQ=DAILY"), "schedule"), (body(to="0x12"), "to"),
                           (body(window_start="09:00"), "window_end")):
            r = await client.post("/v1/admin/intents", json=bad, headers=AUTH)
            assert r.status == 400, await r.text()
            assert (await r.json())["field"] == field
        r = await client.post("/v1/admin/intents", json=body(), headers=AUTH)
        assert r.status == 201, await r.text()
        intent = (await r.json())["intent"]
        iid = intent["id"]
        assert intent["state"] == "active" and intent["version"] == 1 and intent["created_by"].startswith("api:")
        r = await client.get(f"/v1/admin/intents/{iid}/preview?next=12", headers=AUTH)
        prev = (await r.json())["occurrences"]
        assert len(prev) == 12 and all(p["local"].split("T")[1].startswith("09:00") for p in prev)
        assert {p["reason"] for p in prev} == {"insufficient_balance"}  # owed nothing yet
        r = await client.patch(f"/v1/admin/intents/{iid}", json={"changes": {"amount": "7"}, "reason": "raise"},
                               headers=AUTH)
        assert r.status == 200 and (await r.json())["intent"]["version"] == 2
        r = await client.patch(f"/v1/admin/intents/{iid}", json={"changes": {"cron": "nope"}}, headers=AUTH)
        assert r.status == 400 and (await r.json())["field"] == "cron"
        r = await client.get(f"/v1/admin/intents/{iid}", headers=AUTH)
        got = (await r.json())["intent"]
        assert [v["version"] for v in got["versions"]] == [1, 2] and got["spec"]["amount"] == "7"
        for action, state in (("pause", "paused"), ("resume", "active")):
            r = await client.post(f"/v1/admin/intents/{iid}/{action}", json={"reason": "t"}, headers=AUTH)
            assert r.status == 200 and (await r.json())["intent"]["state"] == state
        r = await client.post(f"/v1/admin/intents/{iid}/resume", headers=AUTH)
        assert r.status == 409
        r = await client.get("/v1/intents/999/occurrences", headers=AUTH)
        assert r.status == 404
        # An interval intent due now, and an occurrence with its evaluation, read without a token.
        await credit(pool, USER, 100)
        r = await client.post("/v1/admin/intents", json=body(cron=None, interval_seconds=3600, name="hourly",
                                                             timezone="UTC",
                                                             start=(datetime.now(UTC) + timedelta(hours=1)).isoformat()),
                              headers=AUTH)
        hid = (await r.json())["intent"]["id"]
        later = datetime.now(UTC) + timedelta(hours=1, seconds=30)
        await IntentScheduler(pool, settings, clock=lambda: later).tick()
        r = await client.get(f"/v1/intents/{hid}/occurrences", headers=AUTH)
        occs = (await r.json())["occurrences"]
        assert len(occs) == 1 and occs[0]["state"] == "requested" and occs[0]["evaluations"][0]["reason"] == "ok"
        r = await client.get(f"/v1/intents/{hid}/occurrences?state=bogus", headers=AUTH)
        assert r.status == 400 and (await r.json())["field"] == "state"
        r = await client.post(f"/v1/admin/intents/{iid}/cancel", json={"reason": "moved out"}, headers=AUTH)
        assert (await r.json())["intent"]["state"] == "cancelled"
        r = await client.post(f"/v1/admin/intents/{iid}/pause", headers=AUTH)
        assert r.status == 409
        r = await client.post("/v1/admin/intent-occurrences/nope/approve", headers=AUTH)
        assert r.status == 404
        spec = await (await client.get("/openapi.json")).json()
        assert "/v1/intents/{id}/occurrences" in spec["paths"] and "/v1/admin/intents/{id}/preview" in spec["paths"]


def _cli(config, *args):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    return subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config), "intents", *args], cwd=root,
                          capture_output=True, text=True, timeout=60)


async def test_intents_cli(tmp_path, monkeypatch, pool, db_url):
    import json

    admin_settings(tmp_path, monkeypatch)  # writes chainsettle.toml; the CLI reads it with a database
    await seeded(pool)
    config = tmp_path / "cli.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n' + (tmp_path / "chainsettle.toml").read_text())
    r = _cli(config, "create", json.dumps(body(cron="0 9 31 * *", end_of_month="clamp", timezone="UTC")))
    assert r.returncode == 0, r.stderr
    iid = json.loads(r.stdout)["intent"]["id"]
    r = _cli(config, "preview", str(iid), "--next", "12")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 12 and all("T09:00:00 UTC" in ln for ln in lines)
    days = [ln[:10] for ln in lines]
    assert any(d.endswith("-02-28") or d.endswith("-02-29") for d in days) and any(d.endswith("-31") for d in days)
    r = _cli(config, "create", json.dumps(body(cron="0 9 32 * *")))
    assert r.returncode == 1 and r.stderr.startswith("error: cron:"), r.stderr
    r = _cli(config, "pause", str(iid), "--reason", "test")
    assert r.returncode == 0 and json.loads(r.stdout)["intent"]["state"] == "paused"
    r = _cli(config, "occurrences", str(iid), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["occurrences"] == []
