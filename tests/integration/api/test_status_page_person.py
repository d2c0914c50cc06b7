"""The status page as an operator keeps it open (issue 30), in headless Chromium.

Events are listed in commit order, as /v1/events?order=desc pages them, not
by id (ids are not commit order: here the later commit has the lower id).
Arguments are fields, amounts in asset units with the symbol (the asset's
name when it has none), addresses shortened with a copy control, chain and
finality on each row. The page says what to run for a batch awaiting
approval, shows why a reconciliation differs (the unbooked movement first)
and why a delivery is stuck. Screenshots (desktop and phone width) are saved
under tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from api.app import make_app
from delivery import admin
from tests.integration.api.test_status_page import CHROMIUM, chromium, open_page, wait_for
from tests.support.api_data import address, api_settings, chain_cfg, register_chain
from tests.support.config import make_settings

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TST, PLAIN = address(100), address(101)
HOLDER, OTHER = address(7), address(8)


async def insert_event(conn, block: int, contract: str, args: dict) -> int:
    return await conn.fetchval(
        "INSERT INTO events (chain, block_number, block_hash, tx_hash, tx_index, log_index, address, event, args) "
        "VALUES ('anvil', $1, $2, $3, 0, 0, $4, 'Transfer', $5) RETURNING id",
        block, f"0x{block:064x}", f"0x{block + 7:064x}", contract, args)


async def seed(pool) -> dict:
    store = await register_chain(pool, "anvil")
    await store.set_status({"state": "following", "endpoints": [], "head_timestamp": None}, head=140, finalized=100)
    await pool.execute("UPDATE chain_state SET final_number = 100, cursor_number = 136 WHERE chain = 'anvil'")
    await pool.execute("INSERT INTO assets (id, chain, name, kind, contract, symbol, decimals) VALUES "
                       "('anvil:tst', 'anvil', 'tst', 'erc20', $1, 'TST', 3), "
                       "('anvil:Plain', 'anvil', 'Plain', 'erc20', $2, NULL, 2)", TST, PLAIN)
    # Transaction A takes its id (its place in commit order) first, B second; B inserts first.
    a, b = await pool.acquire(), await pool.acquire()
    try:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await a.fetchval("SELECT pg_current_xact_id()")
        await tb.start()
        await b.fetchval("SELECT pg_current_xact_id()")
        early = await insert_event(b, 136, TST, {"from": HOLDER, "to": OTHER, "value": "1500"})
        late = await insert_event(a, 96, PLAIN, {"from": OTHER, "to": HOLDER, "value": "250"})
        await ta.commit()
        await tb.commit()
    finally:
        await pool.release(a)
        await pool.release(b)
    assert late > early
    # A batch awaiting approval, a mismatch with its evidence, a stuck delivery.
    await pool.execute("INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, "
                       "item_count, total, gas_limit, expiry, state) VALUES ($1, 'anvil', 'tst', $2, 0, $2, $2, 1, "
                       "150000, 1, 0, 'awaiting_approval')", "0x" + "ab" * 32, TST)
    acct = await pool.fetchval("INSERT INTO ledger_accounts (code, kind) VALUES ($1, 'wallet') RETURNING id",
                               f"wallet:anvil:{HOLDER}")
    run = await pool.fetchval("INSERT INTO reconciliation_runs (chain, height, status, checked, mismatches, finished_at)"
                              " VALUES ('anvil', 100, 'mismatch', 1, 1, now()) RETURNING id")
    await pool.execute(
        "INSERT INTO reconciliation_results (run_id, account_id, asset_id, expected, actual, difference, tolerance, "
        "status, movements, movements_total) VALUES ($1, $2, 'anvil:tst', 2000, 1500, -500, 0, 'mismatch', $3, 4)",
        run, acct, [{"block_number": 99, "tx_hash": "0x" + "cd" * 32, "log_index": 0, "source": TST,
                     "event": "Transfer", "args": {}, "amount": "500", "booked": False, "booked_by": []},
                    {"block_number": 98, "tx_hash": "0x" + "ce" * 32, "log_index": 0, "source": TST,
                     "event": "Transfer", "args": {}, "amount": "400", "booked": True, "booked_by": ["r"]}])
    return {"early": early, "late": late}


async def test_an_operator_page_in_commit_order_with_units_actions_and_causes(tmp_path, pool):
    ids = await seed(pool)
    dsettings = make_settings(tmp_path, {"delivery": {"allow_loopback": True}})
    await admin.create(pool, dsettings, "ops", admin.SubscriptionSpec(id="app", sink="webhook",
                                                                      url="http://127.0.0.1:9/hook"))
    await pool.execute("UPDATE delivery_subscriptions SET last_outcome = 'refused', failing_since = now(), "
                       "last_error = 'url: 127.0.0.1 is a loopback address (delivery.allow_loopback)'")
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"sse_poll_interval": 0.1,
                            # What this page shows of reconciliation evidence and deliveries is private
                            # (read scopes): published here, as an operator may (README "Read scopes").
                            "public": ["reconciliation", "deliveries", "payouts"]})
    server = TestServer(make_app(settings, pool), host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium(tmp_path) as tools:
            page = await open_page(tools, str(server.make_url("/")))
            await tools.send("Emulation.setDeviceMetricsOverride",
                             {"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": False}, session=page)
            rows = await wait_for(tools, page, """(() => {
                const rows = [...document.querySelectorAll('#events tr[data-event-id]')];
                const amounts = rows.map((r) => r.querySelector('.field[data-key="value"] .amount'));
                return rows.length === 2 && amounts.every((a) => a && /[A-Za-z]/.test(a.textContent)) && rows.map((r, i) => ({
                    id: Number(r.dataset.eventId), block: r.dataset.block, final: r.dataset.final,
                    where: r.cells[1].textContent, amount: amounts[i].textContent,
                    base: amounts[i].getAttribute('data-base-units'),
                    from: r.querySelector('.field[data-key="from"] .copyable').textContent,
                    fromFull: r.querySelector('.field[data-key="from"] .copyable').dataset.full,
                    copy: r.querySelectorAll('.field button.copy').length}));
            })()""")
            # Commit order (the API's), not id order: block 136 (lower id, later commit) on top.
            assert [r["id"] for r in rows] == [ids["early"], ids["late"]]
            assert [(r["block"], r["final"]) for r in rows] == [("136", "no"), ("96", "yes")]
            assert rows[0]["where"].startswith("anvil#136") and "not final" in rows[0]["where"]
            assert rows[0]["amount"] == "1.5 TST" and rows[0]["base"] == "1500"
            assert rows[1]["amount"] == "2.5 Plain"     # no symbol: the asset's name, never a bare number
            assert rows[0]["fromFull"] == HOLDER and rows[0]["from"] != HOLDER and "…" in rows[0]["from"]
            assert rows[0]["copy"] == 2                  # from and to, each with a copy control
            line = await wait_for(tools, page, """(() => {
                const d = document.querySelector('[data-open-batches="awaiting_approval"]');
                return d && d.textContent; })()""")
            assert "1 batch awaiting approval" in line and "chainsettle payouts approve BATCH --by NAME" in line
            assert "0xabab" in line
            cause = await wait_for(tools, page, """(() => {
                const m = document.querySelector('.evidence [data-mismatch]');
                const first = document.querySelector('.evidence tr[data-booked]');
                return m && first && {head: m.textContent, first: first.dataset.booked,
                                      amount: first.cells[3].textContent,
                                      note: document.querySelector('.evidence .muted').textContent}; })()""")
            assert "difference -0.5 TST" in cause["head"] and "ledger 2 TST" in cause["head"]
            assert cause["first"] == "no" and cause["amount"] == "0.5 TST"
            assert cause["note"].startswith("2 of 4 movements")
            why = await wait_for(tools, page, """(() => {
                const tr = document.querySelector('#deliveries tr[data-delivery="app"]');
                return tr && tr.cells[8].textContent; })()""")
            assert why.startswith("refused: ") and "allow_loopback" in why
            glance = await wait_for(tools, page, """(() => {
                const g = [...document.querySelectorAll('#glance [data-glance]')];
                return g.length >= 7 && Object.fromEntries(g.map((x) => [x.dataset.glance, x.textContent])); })()""")
            assert glance["approval"] == "1 batch(es) awaiting approval" and "frozen" in glance["frozen"]
            ARTIFACTS.mkdir(exist_ok=True)
            shot = await tools.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                                    session=page)
            (ARTIFACTS / "status_page.png").write_bytes(base64.b64decode(shot["data"]))
            # A phone: the page still reads (no build step, the same files).
            await tools.send("Emulation.setDeviceMetricsOverride",
                             {"width": 390, "height": 1600, "deviceScaleFactor": 2, "mobile": True}, session=page)
            width = await wait_for(tools, page, "document.querySelector('#glance').getBoundingClientRect().width")
            assert width <= 390
            shot = await tools.send("Page.captureScreenshot", {"format": "png"}, session=page)
            (ARTIFACTS / "status_page_phone.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        await server.close()
