"""The wallet example page (/example/, issue 27 item 5) in headless Chromium: a test wallet, injected
as an EIP-1193 provider (window.ethereum, signing through a small signer server the test runs),
signs in, sees its balance and history, requests a withdrawal, and watches the live account
channel bring the payout and the new balance.

The daemon is the app as `chainsettle run` builds it, on a real database with a seeded ledger
(the wallet is owed 5000 base units, then
credited 100 by a transfer)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_account.messages import encode_defunct

from api.app import make_app
from daemon.devchain import free_port
from tests.integration.api.test_admin import AUTH, credit
from tests.integration.api.test_status_page import chromium, pytestmark, wait_for  # noqa: F401 (skip w/o chromium)
from tests.integration.api.test_ws import ws_settings
from tests.support.api_data import seeded
from tests.support.wallet import new_account

FUNDER = "0x" + "12" * 20
PROVIDER = """
window.ethereum = {
  isTestWallet: true,
  request: async ({ method, params }) => {
    if (method === "eth_requestAccounts" || method === "eth_accounts") return ["%(address)s"];
    if (method === "personal_sign") {
      const r = await fetch("%(signer)s/sign", { method: "POST", body: JSON.stringify({ message: params[0] }) });
      return (await r.json()).signature;
    }
    throw new Error("the test wallet does not do " + method);
  },
};
"""


async def signer_server(account) -> tuple[web.AppRunner, str]:
    async def sign(request: web.Request) -> web.Response:
        message = bytes.fromhex((await request.json())["message"].removeprefix("0x"))
        sig = account.sign_message(encode_defunct(primitive=message)).signature.hex()
        return web.json_response({"signature": "0x" + sig.removeprefix("0x")},
                                 headers={"Access-Control-Allow-Origin": "*"})

    app = web.Application()
    app.router.add_post("/sign", sign)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def open_signed_in(tools, url: str, account, signer: str) -> str:
    """A page session on the example page at `url` with `account` injected as the wallet, signed in."""
    target = await tools.send("Target.createTarget", {"url": "about:blank"})
    page = (await tools.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))["sessionId"]
    await tools.send("Page.enable", session=page)
    # The injected wallet talks to the test's signer: the page's own CSP (connect-src 'self')
    # is for the page, not for a wallet extension, so the test lifts it for the provider.
    await tools.send("Page.setBypassCSP", {"enabled": True}, session=page)
    await tools.send("Page.addScriptToEvaluateOnNewDocument",
                     {"source": PROVIDER % {"address": account.address, "signer": signer}}, session=page)
    await tools.send("Page.navigate", {"url": url}, session=page)
    await wait_for(tools, page, "document.body.dataset.ready === '1' && !!window.ethereum")
    await tools.send("Runtime.evaluate", {"expression": "document.getElementById('connect').click()"}, session=page)
    who = await wait_for(tools, page, "document.getElementById('who').dataset.address")
    assert who == account.address.lower()
    return page


def available_is(value: str) -> str:
    """A page expression: the first balance row's available figure once it reads `value`."""
    return f"""(() => {{
        const tr = document.querySelector('#balances tr[data-available]');
        return tr && tr.dataset.available === '{value}' && tr.dataset.available; }})()"""


async def test_example_page_signs_in_shows_balance_withdraws_and_follows_the_account(tmp_path, pool, monkeypatch):
    settings = ws_settings(tmp_path, monkeypatch, sse_poll_interval=0.05)
    await seeded(pool, "anvil", blocks=10)
    alice = new_account()
    address = alice.address.lower()
    await credit(pool, address, 5000)
    await credit(pool, FUNDER, 1000)
    runner, signer = await signer_server(alice)
    server = TestServer(make_app(settings, pool), host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium(tmp_path) as tools:
            page = await open_signed_in(tools, str(server.make_url("/example/")), alice, signer)
            available = await wait_for(tools, page, """(() => {
                const tr = document.querySelector('#balances tr[data-available]');
                return tr && tr.dataset.available; })()""")
            assert available == "5000"
            entries = await wait_for(tools, page, "document.querySelectorAll('#entries tbody tr').length")
            assert entries == 1
            await wait_for(tools, page, "document.getElementById('live').textContent === 'live'")
            # A prize credited by a transfer: its `balance` change, then the new figures, arrive live.
            async with aiohttp.ClientSession() as http:
                r = await http.post(str(server.make_url("/v1/admin/ledger/transfers")), headers=AUTH, json={
                    "transfers": [{"id": "prize-1", "debit_account": f"user:anvil:{FUNDER}",
                                   "credit_account": f"user:anvil:{address}", "asset": "anvil:native",
                                   "amount": "100"}]})
                assert r.status in (200, 201), await r.text()
            change = await wait_for(tools, page, """(() => {
                const li = [...document.querySelectorAll('#feed li[data-type="balance"]')]
                    .find((x) => x.textContent.includes('transfer'));
                return li && li.textContent; })()""")
            assert change == "balance transfer (final) 100"
            available = await wait_for(tools, page, available_is("5100"))
            assert available == "5100"
            # Withdraw 40: the request is stored, and the live account channel brings the payout and the balance.
            await tools.send("Runtime.evaluate", {"expression": """
                document.getElementById('w-amount').value = '40';
                document.getElementById('withdraw').requestSubmit();"""}, session=page)
            payout = await wait_for(tools, page, "document.getElementById('w-result').dataset.payout")
            stored = await pool.fetchrow("SELECT amount, recipient, from_account FROM payout_requests WHERE id = $1",
                                         int(payout))
            assert (int(stored["amount"]), stored["recipient"], stored["from_account"]) == (
                40, address, f"user:anvil:{address}")
            await wait_for(tools, page, "document.querySelector('#feed li[data-type=\"payout\"]') !== null")
            available = await wait_for(tools, page, available_is("5060"))
            assert available == "5060"
            # A refusal is shown with the field it names.
            await tools.send("Runtime.evaluate", {"expression": """
                document.getElementById('w-amount').value = '999999';
                document.getElementById('withdraw').requestSubmit();"""}, session=page)
            refused = await wait_for(tools, page, """(() => {
                const t = document.getElementById('w-result').textContent;
                return t.startsWith('refused') && t; })()""")
            assert "amount" in refused
            text = await tools.send("Runtime.evaluate", {"expression": "document.body.innerText",
                                                         "returnByValue": True}, session=page)
            assert "Bearer" not in text["result"]["value"]
    finally:
        await server.close()
        await runner.cleanup()
