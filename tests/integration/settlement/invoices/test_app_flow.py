"""The three calls an app makes, against `chainsettle run` (followers with
the daemon's hooks and the API in one process) on anvil and a real
database: create the invoice, wait for its `paid` event on /v1/stream,
read the state."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest

from daemon.devchain import free_port
from tests.support.anvil import Anvil, rpc_sync
from tests.support.config import evm_chain, write_config
from tests.support.evm import DEPLOYER, deploy_token, token_transfer

ROOT = Path(__file__).resolve().parents[4]
TOKEN = "app-flow-admin-token"
SHOP = "0x" + "5b" * 20


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


async def wait_healthy(base: str, proc) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            assert proc.returncode is None, "chainsettle run exited"
            try:
                async with s.get(base + "/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("chainsettle run did not come up")


async def test_create_wait_for_paid_read(node, db_url, tmp_path):
    token = deploy_token(node.url)
    payer = "0x" + "a1" * 20
    rpc_sync(node.url, "anvil_impersonateAccount", [payer])
    rpc_sync(node.url, "anvil_setBalance", [payer, hex(10**20)])
    token_transfer(node.url, token, DEPLOYER, payer, 10**6)
    port = free_port()
    config = write_config(tmp_path / "chainsettle.toml", {
        "database": {"url": db_url},
        "api": {"listen": f"127.0.0.1:{port}", "admin_token": "env:APP_FLOW_TOKEN"},
        "chains": [evm_chain("local", node.url, token, finality_depth=2, poll_interval=0.05,
                             wallets=[{"name": "shop", "address": SHOP, "assets": ["Token"]}])],
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_")}
    env.update(APP_FLOW_TOKEN=TOKEN, CHAINSETTLE_LOG__FORMAT="json", PYTHONPATH=str(ROOT))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "daemon.cli", "--config", str(config), "run",
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession() as s:
            # 1. Create the invoice.
            async with s.post(base + "/v1/admin/invoices", headers=auth, json={
                "chain": "local", "asset": "Token", "amount": "1000", "wallet": SHOP, "app_ref": "ticket-1",
                "account": "user:lottery", "match_method": "payer", "payer": payer, "expires_in": 900}) as r:
                assert r.status == 201, await r.text()
                inv = (await r.json())["invoice"]
            # 2. Wait for the `paid` event while the user pays.
            # Invoice messages reach the admin token's stream only (read scopes, issue 26).
            async with s.get(base + "/v1/stream", headers=auth, timeout=aiohttp.ClientTimeout(total=60)) as stream:
                token_transfer(node.url, token, payer, SHOP, 1000)
                rpc_sync(node.url, "anvil_mine", [hex(3)])
                seen = []
                while True:
                    block = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 30)
                    text = block.decode()
                    if "event: invoice" not in text:
                        continue
                    data = orjson.loads(text.split("data: ", 1)[1])
                    if data["id"] == inv["id"]:
                        seen.append(data["state"])
                        if data["state"] == "paid":
                            break
            assert seen[-1] == "paid" and data["received"] == "1000"
            # 3. Read the state.
            async with s.get(base + "/v1/admin/invoices/ticket-1", headers=auth) as r:
                got = (await r.json())["invoice"]
            assert (got["state"], got["received"], got["shortfall"]) == ("paid", "1000", "0")
            assert got["payments"][0]["payer"] == payer and got["payments"][0]["final"] is True
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        log = (await proc.stderr.read()).decode(errors="replace")
    assert code == 0, log[-3000:]
    assert TOKEN not in log
