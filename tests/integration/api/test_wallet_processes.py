"""Wallet sessions across two `chainsettle api` processes on one database (issue 27, "done when"):
a refresh token rotated by one process is refused as reused by the other, which revokes the
family for both; the same token raced on both rotates once; a logout on one ends the session on
the other at once."""

from __future__ import annotations

import asyncio
import os
import signal

import aiohttp
from eth_account import Account

from daemon.devchain import free_port
from tests.integration.api.test_schemathesis import BIN, ROOT, wait_healthy
from tests.support.api_data import chain_cfg
from tests.support.config import write_config
from tests.support.wallet import SIGNIN_KEY, bearer, personal_sign


async def _start(tmp_path, db_url: str, name: str):
    port = free_port()
    config = write_config(tmp_path / f"{name}.toml", {
        "database": {"url": db_url},
        "api": {"listen": f"127.0.0.1:{port}", "rate_limit_per_second": 1000.0, "rate_limit_burst": 1000},
        "chains": [chain_cfg("anvil")],
        "invoices": {"signin": {"domain": "shop.example", "uri": "https://shop.example",
                                "token_key": "env:CS_WALLET_SIGNIN_KEY"}},
    })
    env = {**os.environ, "CS_WALLET_SIGNIN_KEY": SIGNIN_KEY, "CHAINSETTLE_LOG__FORMAT": "json",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = await asyncio.create_subprocess_exec(str(BIN / "chainsettle"), "--config", str(config), "api", env=env,
                                                cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    await wait_healthy(url, proc)
    return proc, url


async def _sign_in(session: aiohttp.ClientSession, url: str) -> dict:
    account = Account.create()
    async with session.post(f"{url}/v1/auth/challenge", json={"chain": "anvil", "address": account.address}) as r:
        message = (await r.json())["message"]
    async with session.post(f"{url}/v1/auth/verify", json={"chain": "anvil", "message": message,
                                                           "signature": personal_sign(account, message)}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _refresh(session, url: str, token: str) -> tuple[int, dict]:
    async with session.post(f"{url}/v1/auth/refresh", json={"refresh_token": token}) as r:
        return r.status, await r.json()


async def _me(session, url: str, token: str) -> int:
    async with session.get(f"{url}/v1/me", headers=bearer(token)) as r:
        return r.status


async def test_refresh_reuse_and_logout_across_two_processes(pool, db_url, tmp_path):
    (p1, a), (p2, b) = await asyncio.gather(_start(tmp_path, db_url, "a"), _start(tmp_path, db_url, "b"))
    try:
        async with aiohttp.ClientSession() as http:
            s = await _sign_in(http, a)
            assert await _me(http, b, s["token"]) == 200
            status, rotated = await _refresh(http, b, s["refresh_token"])
            assert status == 200, rotated
            status, body = await _refresh(http, a, s["refresh_token"])  # reused, on the other process
            assert (status, body["reason"]) == (401, "reused")
            for url in (a, b):
                assert (await _refresh(http, url, rotated["refresh_token"]))[0] == 401
                assert await _me(http, url, rotated["token"]) == 401
            # Raced: exactly one rotation; the loser is reuse and ends the family.
            for _ in range(5):
                s = await _sign_in(http, a)
                results = await asyncio.gather(_refresh(http, a, s["refresh_token"]),
                                               _refresh(http, b, s["refresh_token"]))
                assert sorted(st for st, _ in results) == [200, 401], results
                winner = next(body for st, body in results if st == 200)
                assert await _me(http, a, winner["token"]) == 401 and await _me(http, b, winner["token"]) == 401
            # Logout on one process: the other refuses the session at once.
            s = await _sign_in(http, b)
            async with http.post(f"{a}/v1/auth/logout", headers=bearer(s["token"])) as r:
                assert r.status == 200 and (await r.json())["revoked"] is True
            assert await _me(http, b, s["token"]) == 401
            assert (await _refresh(http, b, s["refresh_token"]))[1]["reason"] == "revoked"
    finally:
        logs = []
        for proc in (p1, p2):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            logs.append((await proc.stderr.read()).decode(errors="replace"))
    for log in logs:
        assert "api.unhandled_error" not in log and SIGNIN_KEY not in log
        assert s["refresh_token"] not in log and s["token"] not in log
