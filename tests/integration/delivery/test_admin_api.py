"""Deliveries over the admin API: create, list, pause, resume, rotate, ping, redeliver, attempts,
pull by cursor, delete; the public summary; bad input names the field; secrets shown once."""

from __future__ import annotations

import asyncio

import orjson
from standardwebhooks.webhooks import Webhook

from tests.support.api_data import client_for
from tests.support.config import make_settings
from tests.support.delivery import FAST, ensure_chain, insert_events, running_relay
from tests.support.receiver import Receiver

TOKEN = "delivery-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_admin_lifecycle_of_a_subscription(pool, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CS_DELIVERY_TOKEN", TOKEN)
    settings = make_settings(tmp_path, {"api": {"admin_token": "env:CS_DELIVERY_TOKEN"}, "delivery": FAST})
    receiver = await Receiver().start()
    await ensure_chain(pool)
    try:
        async with client_for(settings, pool) as client, running_relay(settings, pool, db_url):
            # Bad input names the field.
            r = await client.post("/v1/admin/deliveries", headers=AUTH,
                                  json={"id": "Bad Id", "sink": "webhook", "url": receiver.url})
            assert r.status == 400 and (await r.json())["field"] == "id"
            r = await client.post("/v1/admin/deliveries", headers=AUTH,
                                  json={"id": "x", "sink": "webhook", "url": "https://192.168.1.9/h"})
            assert r.status == 400 and (await r.json())["field"] == "url"
            assert (await client.get("/v1/admin/deliveries")).status == 401

            r = await client.post("/v1/admin/deliveries", headers=AUTH,
                                  json={"id": "app", "sink": "webhook", "url": receiver.url, "ordering": "strict",
                                        "filter": {"contracts": ["0x" + "aa" * 20]}})
            assert r.status == 201, await r.text()
            secret = (await r.json())["subscription"]["secret"]
            assert (await client.post("/v1/admin/deliveries", headers=AUTH,
                                      json={"id": "app", "sink": "webhook", "url": receiver.url})).status == 409
            listed = await (await client.get("/v1/admin/deliveries", headers=AUTH)).json()
            assert [s["id"] for s in listed["subscriptions"]] == ["app"]
            assert secret not in orjson.dumps(listed).decode()
            shown = await (await client.get("/v1/admin/deliveries/app", headers=AUTH)).json()
            assert secret not in orjson.dumps(shown).decode() and shown["subscription"]["secrets"][0]["prefix"]

            async with pool.acquire() as conn, conn.transaction():
                ids = await insert_events(conn, "local", [(1, 0, "0x" + "aa" * 20), (1, 1, "0x" + "bb" * 20),
                                                         (2, 0, "0x" + "aa" * 20)])
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 2)
            assert receiver.first_seen() == [f"ev_local_{ids[0]}_observed", f"ev_local_{ids[2]}_observed"]
            for rec in receiver.accepted:
                Webhook(secret).verify(rec.body, rec.headers)

            # Pause: nothing is sent, but the queue fills; resume sends it.
            r = await client.post("/v1/admin/deliveries/app/pause", headers=AUTH, json={"reason": "maintenance"})
            assert (await r.json())["subscription"]["state"] == "paused"
            async with pool.acquire() as conn, conn.transaction():
                more = await insert_events(conn, "local", [(3, 0, "0x" + "aa" * 20)])
            await asyncio.sleep(0.8)
            assert len(receiver.first_seen()) == 2
            await client.post("/v1/admin/deliveries/app/resume", headers=AUTH)
            await receiver.wait_for(lambda: len(receiver.first_seen()) == 3)

            # Pull after the first message's cursor: the rest, bodies as sent.
            first = orjson.loads(receiver.accepted[0].body)
            r = await client.get(f"/v1/admin/deliveries/app/pull?cursor={first['cursor']}", headers=AUTH)
            pulled = (await r.json())["messages"]
            assert [m["id"] for m in pulled] == [f"ev_local_{ids[2]}_observed", f"ev_local_{more[0]}_observed"]
            bad = await client.get("/v1/admin/deliveries/app/pull?cursor=nope", headers=AUTH)
            assert bad.status == 400 and (await bad.json())["field"] == "cursor"

            # Rotate: the new secret is shown once; ping is signed by both.
            r = await client.post("/v1/admin/deliveries/app/rotate", headers=AUTH, json={"overlap_seconds": 60})
            new = (await r.json())["subscription"]["secret"]
            r = await client.post("/v1/admin/deliveries/app/ping", headers=AUTH)
            assert r.status == 202
            ping_id = (await r.json())["ping"]["msg_id"]
            await receiver.wait_for(lambda: ping_id in receiver.first_seen())
            rec = next(x for x in receiver.accepted if x.msg_id == ping_id)
            Webhook(secret).verify(rec.body, rec.headers)
            Webhook(new).verify(rec.body, rec.headers)

            # Redeliver one message by id; attempts show it twice.
            target = f"ev_local_{ids[0]}_observed"
            r = await client.post("/v1/admin/deliveries/app/redeliver", headers=AUTH, json={"msg_id": target})
            assert (await r.json())["redelivered"] == 1
            await receiver.wait_for(lambda: sum(x.msg_id == target for x in receiver.accepted) == 2)
            for _ in range(50):  # the relay records after the receiver answered
                r = await client.get(f"/v1/admin/deliveries/app/attempts?msg_id={target}", headers=AUTH)
                rows = (await r.json())["attempts"]
                if len(rows) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(rows) == 2 and all(a["outcome"] == "ok" and a["status_code"] == 200 for a in rows)
            r = await client.post("/v1/admin/deliveries/app/redeliver", headers=AUTH, json={})
            assert r.status == 400
            r = await client.post("/v1/admin/deliveries/app/redeliver", headers=AUTH,
                                  json={"from_block": 5, "to_block": 2})
            assert r.status == 400 and (await r.json())["field"] == "to_block"

            # The summary: state and lag, no URL or secret; private unless published (issue 26).
            assert (await client.get("/v1/deliveries")).status == 401
            summary = await (await client.get("/v1/deliveries", headers=AUTH)).json()
            assert summary["subscriptions"][0]["id"] == "app" and "url" not in summary["subscriptions"][0]

            r = await client.delete("/v1/admin/deliveries/app", headers=AUTH)
            assert r.status == 200
            assert (await client.get("/v1/admin/deliveries/app", headers=AUTH)).status == 404
            actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY id")]
            for a in ("delivery.created", "delivery.paused", "delivery.resumed", "delivery.secret_rotated",
                      "delivery.ping", "delivery.redeliver", "delivery.deleted"):
                assert a in actions
    finally:
        await receiver.stop()
