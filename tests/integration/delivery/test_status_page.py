"""The status page's deliveries panel and amounts in asset units, in headless Chromium."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer

from api.app import make_app
from delivery import admin
from tests.integration.api.test_status_page import CHROMIUM, chromium, open_page, wait_for
from tests.support.api_data import address, api_settings, chain_cfg, seeded
from tests.support.config import make_settings

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found")


async def test_deliveries_panel_and_amounts_in_units(tmp_path, pool):
    # The operator publishes the deliveries summary (read scopes, issue 26: private by default).
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"sse_poll_interval": 0.1, "public": ["deliveries"]})
    await seeded(pool, "anvil", blocks=2, head=3, final=1)
    token = address(100)   # the emitter of the seeded events
    await pool.execute("INSERT INTO assets (id, chain, name, kind, contract, symbol, decimals) "
                       "VALUES ('anvil:tst', 'anvil', 'tst', 'erc20', $1, 'TST', 3)", token)
    dsettings = make_settings(tmp_path, {"delivery": {"allow_loopback": True}})
    await admin.create(pool, dsettings, "ops", admin.SubscriptionSpec(
        id="app", sink="webhook", url="http://127.0.0.1:9/hook?token=hidden", ordering="strict"))
    await admin.set_state(pool, "ops", "app", "paused", "deploy")
    await pool.execute("INSERT INTO delivery_messages (subscription_id, msg_id, type, key, body, committed_at, state)"
                       " VALUES ('app', 'm1', 'ping', 'k', '\\x7b7d', now() - interval '90 seconds', 'pending'),"
                       "        ('app', 'm2', 'ping', 'k', '\\x7b7d', now(), 'dead')")
    server = TestServer(make_app(settings, pool), host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium(tmp_path) as tools:
            page = await open_page(tools, str(server.make_url("/")))
            cells = await wait_for(tools, page, """(() => {
                const tr = document.querySelector('#deliveries tr[data-delivery="app"]');
                return tr && [...tr.cells].map((c) => c.textContent);
            })()""")
            assert cells[:5] == ["app", "webhook", "127.0.0.1", "instant, strict", "paused: deploy"]
            assert cells[5] == "1" and int(cells[6]) >= 89 and cells[7] == "1"
            assert "hidden" not in "".join(cells)
            # Seeded Transfer of block 1, log 0: value "1000" base units at 3 decimals → 1 TST.
            amount = await wait_for(tools, page, """(() => {
                const cell = document.querySelector('#events tr[data-event-id] td.args .amount');
                const rows = [...document.querySelectorAll('#events tr[data-event-id]')];
                const last = rows[rows.length - 1];
                const a = last.querySelector('td.args .field[data-key="value"] .amount');
                return a && {shown: a.textContent, raw: last.querySelector('td.args pre').textContent};
            })()""")
            assert amount["shown"] == "1 TST"          # the field `value`, in units with the symbol
            assert '"value":"1000"' in amount["raw"]      # raw JSON one click away
    finally:
        await server.close()
