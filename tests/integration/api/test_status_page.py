"""The status page in headless Chromium, driven over the DevTools protocol.

The page must render the chains, events, payouts and reconciliation the API
serves, and show an event committed after it loaded: that one can only
arrive over the SSE feed, since the page loads the event list once. Payout,
reconciliation, pause and kill-switch changes are checked with /v1/status
blocked, so they too can only have come over the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from api.app import make_app
from settlement.ledger.pauses import pause_asset, resolve_pause
from settlement.payouts.requests import set_kill_switch
from tests.support.api_data import (
    address,
    api_settings,
    chain_cfg,
    commit_blocks,
    event_row,
    seed_settlement,
    seeded,
)

ADMIN_TOKEN = "page-admin-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not found: apt-get install chromium (.ci/run installs it)")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--remote-debugging-port=0",
]
DEADLINE = 30.0


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands and their answers."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = orjson.loads(msg.data)
            fut = self._pending.pop(data.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        ident = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(orjson.dumps(msg).decode())
        answer = await asyncio.wait_for(fut, DEADLINE)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    drain = None
    try:
        async def _ws_url() -> str:
            while True:
                line = await proc.stderr.readline()
                if not line:
                    raise RuntimeError("chromium exited before DevTools started")
                found = re.search(rb"DevTools listening on (ws://\S+)", line)
                if found:
                    return found.group(1).decode()

        url = await asyncio.wait_for(_ws_url(), DEADLINE)

        async def _drain() -> None:  # a full stderr pipe would stall the browser
            while await proc.stderr.read(65536):
                pass

        drain = asyncio.create_task(_drain())
        async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
            tools = DevTools(ws)
            try:
                yield tools
            finally:
                with contextlib.suppress(Exception):
                    await tools.send("Browser.close")
                await tools.close()
    finally:
        if proc.returncode is None:
            proc.terminate()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if drain is not None:
            drain.cancel()


async def open_page(tools: DevTools, url: str) -> str:
    target = await tools.send("Target.createTarget", {"url": "about:blank"})
    session = (await tools.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))["sessionId"]
    await tools.send("Page.enable", session=session)
    await tools.send("Page.navigate", {"url": url}, session=session)
    return session


async def wait_for(tools: DevTools, session: str, expression: str) -> Any:
    """Evaluate `expression` in the page until it yields a truthy value."""
    async def _poll() -> Any:
        while True:
            result = await tools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                      session=session)
            value = result.get("result", {}).get("value")
            if value:
                return value
            await asyncio.sleep(0.1)

    try:
        return await asyncio.wait_for(_poll(), DEADLINE)
    except asyncio.TimeoutError:
        html = await tools.send("Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True},
                                session=session)
        raise AssertionError(f"page never satisfied {expression!r}; it shows:\n{html['result'].get('value')}") from None


async def test_status_page_renders_live_data(tmp_path, pool):
    """Without a token (read scopes, issue 26): chains, events and aggregates render; each payout's
    changes, pause reasons and deliveries do not, and the page says where a token is needed."""
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"sse_poll_interval": 0.1})
    store, _ = await seeded(pool, "anvil", blocks=12, head=14, final=6)
    ids = await seed_settlement(pool)
    server = TestServer(make_app(settings, pool), host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium(tmp_path) as tools:
            page = await open_page(tools, str(server.make_url("/")))
            chain_row = await wait_for(tools, page, """(() => {
                const tr = document.querySelector('#chains tr[data-chain="anvil"]');
                return tr && [...tr.cells].map((c) => c.textContent);
            })()""")
            assert chain_row[:6] == ["anvil", "following", "14", "12", "6", "2"]
            shown = await wait_for(tools, page, """(() => {
                const rows = document.querySelectorAll('#events tr[data-event-id]');
                return rows.length && [...rows].map((r) => Number(r.dataset.eventId));
            })()""")
            stored = [r["id"] for r in await pool.fetch("SELECT id FROM events ORDER BY tx DESC, id DESC")]
            assert shown == stored  # newest commit first (issue 30: commit order, as /v1/events?order=desc), all 24
            await wait_for(tools, page, "document.querySelector('#payouts [data-payout-state=\"pending\"]') !== null")
            await wait_for(tools, page, "document.querySelector('[data-reconciliation-chain=\"anvil\"]') !== null")
            await wait_for(tools, page, "document.getElementById('sse-state').textContent === 'live'")
            await wait_for(tools, page, "document.querySelector('#deliveries [data-needs-token=\"deliveries\"]') !== null")
            await wait_for(tools, page, "document.querySelector('#payouts [data-needs-token=\"payouts\"]') !== null")

            # Private changes, then an event committed after the page loaded: only the SSE feed can bring
            # it, past the private messages it skips.
            async with pool.acquire() as conn:
                await pause_asset(conn, "anvil:native", "run 9: user:anvil:0xsecret holds 5", "reconciler")
            await pool.execute("UPDATE payout_requests SET state = 'held', reason = 'refused' WHERE id = $1",
                               ids["pending"])
            probe = event_row("anvil", 13, 0, addr=address(9), event="LiveProbe", args={"probe": "<b>not html</b>"})
            await commit_blocks(store, 12, 13, [probe])
            new_id = await pool.fetchval("SELECT id FROM events WHERE event = 'LiveProbe'")
            cells = await wait_for(tools, page, f"""(() => {{
                const tr = document.querySelector('#events tr[data-event-id="{new_id}"]');
                return tr && {{cells: [...tr.cells].map((c) => c.textContent), fresh: tr.classList.contains('new'),
                               first: tr === document.querySelector('#events tbody tr'),
                               chain: tr.dataset.chain, block: tr.dataset.block,
                               probe: tr.querySelector('.field[data-key="probe"] span:last-child').textContent,
                               raw: tr.querySelector('td.args pre').textContent}};
            }})()""")
            assert cells["fresh"] and cells["first"]
            assert (cells["chain"], cells["block"], cells["cells"][2]) == ("anvil", "13", "LiveProbe")
            assert cells["cells"][1].startswith("anvil#13")
            assert cells["probe"] == "<b>not html</b>"  # shown as text, never parsed as markup
            assert cells["raw"] == '{"probe":"<b>not html</b>"}'
            bold = await tools.send("Runtime.evaluate", {"expression": "document.querySelectorAll('#events b').length",
                                                         "returnByValue": True}, session=page)
            assert bold["result"]["value"] == 0
            paused = await wait_for(tools, page, """(() => {
                const d = document.querySelector('[data-paused-asset="anvil:native"]');
                return d && d.textContent; })()""")
            assert paused == "paused: anvil:native"
            text = await tools.send("Runtime.evaluate", {"expression": "document.body.innerText",
                                                         "returnByValue": True}, session=page)
            assert "0xsecret" not in text["result"]["value"] and "refused" not in text["result"]["value"]
            assert await wait_for(tools, page, "document.querySelector('#payout-activity') === null")
    finally:
        await server.close()


async def test_status_page_updates_payouts_and_reconciliation_from_the_stream(tmp_path, pool, monkeypatch):
    # Each payout's changes and pause reasons are private (issue 26): the operator types the admin
    # token into the page, which then reads the stream with it (fetch, not EventSource).
    monkeypatch.setenv("CS_PAGE_ADMIN_TOKEN", ADMIN_TOKEN)
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"sse_poll_interval": 0.1,
                                                                 "admin_token": "env:CS_PAGE_ADMIN_TOKEN"})
    await seeded(pool, "anvil", blocks=12, head=14, final=6)
    ids = await seed_settlement(pool)
    server = TestServer(make_app(settings, pool), host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium(tmp_path) as tools:
            page = await open_page(tools, str(server.make_url("/")))
            await wait_for(tools, page, "document.querySelector('#deliveries [data-needs-token]') !== null")
            await tools.send("Runtime.evaluate", {"expression": f"""
                document.querySelector('#token-form input').value = '{ADMIN_TOKEN}';
                document.querySelector('#token-form button').click();""", "returnByValue": True}, session=page)
            await wait_for(tools, page,
                           "document.getElementById('token-state').textContent === 'admin token set for this tab'")
            await wait_for(tools, page, "document.querySelector('#deliveries tr.empty td') !== null && "
                                        "document.querySelector('#deliveries [data-needs-token]') === null")
            await wait_for(tools, page, "document.querySelector('[data-reconciliation-chain=\"anvil\"]') !== null")
            await wait_for(tools, page, "document.getElementById('sse-state').textContent === 'live'")
            # From here on the page cannot poll: whatever changes came over the stream.
            await tools.send("Network.enable", session=page)
            await tools.send("Network.setBlockedURLs", {"urls": ["*/v1/status*"]}, session=page)
            await wait_for(tools, page, "document.getElementById('updated').textContent.includes('unavailable')")

            async with pool.acquire() as conn, conn.transaction():
                run = await conn.fetchval("INSERT INTO reconciliation_runs (chain, height, status, checked, mismatches)"
                                          " VALUES ('anvil', 6, 'ok', 3, 0) RETURNING id")
            cells = await wait_for(tools, page, f"""(() => {{
                const tr = document.querySelector('[data-reconciliation-chain="anvil"][data-run-id="{run}"]');
                return tr && [...tr.cells].map((c) => c.textContent);
            }})()""")
            assert cells[:5] == ["anvil", "6", "ok", "3", "0"]
            assert await wait_for(tools, page, "document.querySelectorAll('[data-reconciliation-chain]').length") == 1

            async with pool.acquire() as conn:
                await pause_asset(conn, "anvil:native", "<i>mismatch</i>", "reconciler", run)
            text = await wait_for(tools, page, """(() => {
                const d = document.querySelector('[data-paused-asset="anvil:native"]');
                return d && d.textContent; })()""")
            assert text == "paused: anvil:native (<i>mismatch</i>)"
            await resolve_pause(pool, "anvil:native", "ops", "explained")
            await wait_for(tools, page, "document.querySelector('[data-paused-asset]') === null")

            await pool.execute("UPDATE payout_requests SET state = 'held', reason = 'refused' WHERE id = $1",
                               ids["pending"])
            row = await wait_for(tools, page, f"""(() => {{
                const tr = document.querySelector('#payout-activity tr[data-payout-id="{ids['pending']}"]');
                return tr && [...tr.cells].map((c) => c.textContent);
            }})()""")
            # Amounts are shown in the asset's units (issue 13): 5 wei at 18 decimals.
            assert row == ["payout", str(ids["pending"]), "anvil", "0.000000000000000005 ETH", "pending → held"]

            await set_kill_switch(pool, "*", True, "drill", "ops")
            await wait_for(tools, page, "document.querySelector('[data-kill-switch=\"*\"]') !== null")
            await set_kill_switch(pool, "*", False, "over", "ops")
            await wait_for(tools, page, "document.querySelector('[data-kill-switch]') === null")
            italics = await tools.send("Runtime.evaluate", {"expression": "document.querySelectorAll('main i').length",
                                                            "returnByValue": True}, session=page)
            assert italics["result"]["value"] == 0
    finally:
        await server.close()

