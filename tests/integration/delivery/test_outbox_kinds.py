"""State changes written to feed_outbox by other packages (kill switches, payouts, and kinds added
later, e.g. invoices) reach subscriptions through the same path, filtered by type."""

from __future__ import annotations

import orjson
import pytest

from settlement.payouts.requests import set_kill_switch
from tests.support.delivery import SECRET, ensure_chain, insert_events, running_relay, settings_for, webhook
from tests.support.receiver import Receiver


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("WH_SECRET", SECRET)


async def test_feed_outbox_changes_and_new_kinds_flow_in_commit_order(pool, db_url, tmp_path):
    everything = await Receiver().start()
    controls = await Receiver().start()
    settings = settings_for(tmp_path, [
        webhook("all", everything.url, ordering="strict", start="earliest"),
        webhook("controls", controls.url, start="earliest", filter={"types": ["payout_control.killed", "invoice"]}),
    ])
    await ensure_chain(pool)
    # Another package may add a kind without telling us (issue 14 adds invoices).
    await pool.execute("ALTER TABLE feed_outbox DROP CONSTRAINT feed_outbox_kind_check")
    try:
        async with running_relay(settings, pool, db_url):
            async with pool.acquire() as conn, conn.transaction():
                ev = await insert_events(conn, "local", [(1, 0, "0x" + "aa" * 20)])
            await set_kill_switch(pool, "local", True, "incident", "ops")
            await set_kill_switch(pool, "local", False, "fixed", "ops")
            await pool.execute("INSERT INTO feed_outbox (kind, subject, chain, payload) "
                               "VALUES ('invoice', 'inv-1', 'local', $1)", {"id": "inv-1", "state": "paid"})
            await everything.wait_for(lambda: len(everything.first_seen()) == 4)
            await controls.wait_for(lambda: len(controls.first_seen()) == 2)
        types = [orjson.loads(r.body)["type"] for r in everything.accepted]
        assert types == ["chain_event.observed", "payout_control.killed", "payout_control.released", "invoice.paid"]
        assert everything.first_seen()[0] == f"ev_local_{ev[0]}_observed"
        assert [orjson.loads(r.body)["type"] for r in controls.accepted] == ["payout_control.killed", "invoice.paid"]
        inv = orjson.loads(everything.accepted[-1].body)
        assert inv["data"] == {"id": "inv-1", "state": "paid"} and inv["id"].startswith("fo_")
    finally:
        await everything.stop()
        await controls.stop()
