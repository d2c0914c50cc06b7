"""The wallet example page (/example/) against `chainsettle demo`, as a newcomer tries it: a test
wallet injected as an EIP-1193 provider signs in on the demo's chain, is credited by a transfer
(the admin API, with the demo's admin token from demo.env), sees it live, withdraws, and the live
account channel shows the payout. The demo is started and stopped as tests/integration/daemon/
test_readme.py does (its `demo` fixture)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from tests.integration.api.test_example_page import available_is, open_signed_in, signer_server
from tests.integration.api.test_status_page import CHROMIUM, chromium, wait_for
from tests.integration.daemon.test_readme import demo  # noqa: F401 (the fixture)
from tests.support.wallet import new_account

PRIZE = 5 * 10**18  # 5 TST
WITHDRAW = 10**18
DEADLINE = 60.0


def demo_env(state) -> dict[str, str]:
    return dict(re.findall(r"^(?:export )?(CS_[A-Z_]+)='([^']*)'", (state / "demo.env").read_text(), re.M))


async def credit_prize(http: aiohttp.ClientSession, env: dict[str, str], to: str) -> str:
    """Move PRIZE of the demo token from the first demo depositor to `to`, once its deposits are final;
    returns the asset id."""
    auth = {"Authorization": f"Bearer {env['CS_ADMIN_TOKEN']}"}
    payer = f"user:local:{env['CS_USER'].lower()}"

    async def attempt() -> str:
        while True:
            async with http.get(f"{env['CS_URL']}/v1/accounts/{payer}/balances", headers=auth) as r:
                rows = (await r.json()).get("balances", []) if r.status == 200 else []
            token = next((b for b in rows if b.get("symbol") == "TST" and int(b["available"]) >= 2 * PRIZE), None)
            if token is not None:
                async with http.post(f"{env['CS_URL']}/v1/admin/ledger/transfers", headers=auth, json={"transfers": [
                        {"id": "demo-prize-1", "debit_account": payer, "credit_account": to,
                         "asset": token["asset_id"], "amount": str(PRIZE)}]}) as r:
                    if r.status in (200, 201):
                        return token["asset_id"]
                    assert r.status == 422, await r.text()  # a withdrawal raced it: try again
            await asyncio.sleep(0.5)

    return await asyncio.wait_for(attempt(), DEADLINE)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found")
async def test_the_example_page_on_the_demo_credits_withdraws_and_follows_live(demo, tmp_path):  # noqa: F811
    state, _ = demo
    env = demo_env(state)
    alice = new_account()
    mine = f"user:local:{alice.address.lower()}"
    runner, signer = await signer_server(alice)
    try:
        async with chromium(tmp_path) as tools, aiohttp.ClientSession() as http:
            page = await open_signed_in(tools, env["CS_URL"] + "/example/", alice, signer)
            await wait_for(tools, page, "document.getElementById('live').textContent === 'live'")
            asset = await credit_prize(http, env, mine)
            assert asset.startswith("local:")
            change = await wait_for(tools, page, """(() => {
                const li = [...document.querySelectorAll('#feed li[data-type="balance"]')]
                    .find((x) => x.textContent.includes('transfer'));
                return li && li.textContent; })()""")
            assert change == f"balance transfer (final) {PRIZE}"
            assert await wait_for(tools, page, available_is(str(PRIZE))) == str(PRIZE)
            # Withdraw 1 TST from the page: the payout comes on the live account channel.
            await tools.send("Runtime.evaluate", {"expression": f"""
                document.getElementById('w-asset').value = 'Token';
                document.getElementById('w-amount').value = '{WITHDRAW}';
                document.getElementById('withdraw').requestSubmit();"""}, session=page)
            result = await wait_for(tools, page, """(() => { const r = document.getElementById('w-result');
                return (r.dataset.payout || r.textContent.startsWith('refused')) && r.textContent; })()""")
            assert "refused" not in result, result
            payout = await wait_for(tools, page, """(() => {
                const li = document.querySelector('#feed li[data-type="payout"]');
                return li && li.textContent; })()""")
            assert payout.startswith("payout ") and payout.endswith(f" {WITHDRAW}"), payout
            assert await wait_for(tools, page, available_is(str(PRIZE - WITHDRAW))) == str(PRIZE - WITHDRAW)
    finally:
        await runner.cleanup()
