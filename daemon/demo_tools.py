"""What the demo adds around the daemon so a newcomer can try everything from
the README: a webhook receiver on loopback, an approver that keeps approvals
from piling up, the env file the README's commands source, and the helpers
`chainsettle demo pay` (pay an invoice from a demo wallet) and
`chainsettle demo sign-in` (a wallet session token).

Demo only: the keys are anvil's public dev keys, loopback webhooks are
allowed in the demo's config alone, and the env file holds local secrets.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import web

from config import ChainsettleError, Settings
from config.logs import get_logger

from . import devchain

log = get_logger("demo")

ADMIN_ENV = "CHAINSETTLE_DEMO_ADMIN_TOKEN"
SIGNIN_ENV = "CHAINSETTLE_DEMO_SIGNIN_KEY"
WEBHOOK_ENV = "CHAINSETTLE_DEMO_WEBHOOK_SECRET"
# anvil's dev account 4 (public key material, local chain only): the demo's
# payer of invoices and the wallet that signs in. Not a depositor, so its
# nonces are its own.
PAYER = ("0x15d34aaf54267db7d7c367839aaf71a00a2c6a65",
         "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a")
APPROVE_AFTER = 15.0  # seconds a batch above the threshold waits before the demo approves it


def demo_secrets() -> dict[str, str]:
    """The admin token, sign-in key and webhook secret of this demo run, into the environment."""
    made = {
        ADMIN_ENV: secrets.token_urlsafe(24),
        SIGNIN_ENV: secrets.token_urlsafe(32),
        WEBHOOK_ENV: "whsec_" + base64.b64encode(os.urandom(24)).decode(),
    }
    os.environ.update(made)
    return made


def write_env(path: Path, values: dict[str, str]) -> None:
    """The file the README's commands source (`. .state/demo/demo.env`); readable by its owner only."""
    lines = ["# Written by `chainsettle demo` at every start; local demo secrets only."]
    lines += [f"export {k}='{v}'" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


class Receiver:
    """A webhook receiver on loopback: counts what arrives, shows the newest at GET /."""

    def __init__(self) -> None:
        self.count = 0
        self.last: deque[dict[str, Any]] = deque(maxlen=20)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.count += 1
        self.last.appendleft({"webhook-id": request.headers.get("webhook-id"), "type": body.get("type"),
                              "signed": "webhook-signature" in request.headers,
                              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return web.Response(status=204)

    async def _show(self, request: web.Request) -> web.Response:
        return web.json_response({"received": self.count, "newest": list(self.last)})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_get("/", self._show)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", devchain.free_port())
        await site.start()
        self.url = site.name.rstrip("/")
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def approve_waiting(settings: Settings, stop: asyncio.Event) -> int:
    """Approve, as `demo-approver`, batches that waited APPROVE_AFTER seconds: the panel shows
    one for a moment (what an operator would approve) and they never pile up."""
    from settlement.payouts.requests import PayoutError, approve_batch

    from .runtime import database_url, open_pool

    approved = 0
    async with open_pool(settings, database_url(settings), migrate_first=False) as pool:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 3.0)
            except asyncio.TimeoutError:
                rows = await pool.fetch("SELECT batch_id FROM payout_batches WHERE state = 'awaiting_approval' "
                                        "AND created_at < now() - make_interval(secs => $1)", APPROVE_AFTER)
                for r in rows:
                    try:
                        await approve_batch(pool, r["batch_id"], "demo-approver")
                        approved += 1
                    except PayoutError as exc:  # approved by hand meanwhile
                        log.info("demo.approve_skipped", batch=r["batch_id"], reason=str(exc)[:160])
    return approved


async def pay_invoice(settings: Settings, ref: str, payer: str | None, wait: float = 0) -> dict[str, Any]:
    """Pay a demo invoice on the local EVM chain from an unlocked anvil account (the invoice's
    `payer`, or --from, or the demo payer), exactly its amount; with `wait`, up to that many
    seconds until the invoice leaves new/seen (the payment is final)."""
    from settlement.invoices.invoices import get_invoice

    from .runtime import database_url, open_pool

    async with open_pool(settings, database_url(settings), migrate_first=False) as pool:
        inv = await get_invoice(pool, ref)
    if inv is None:
        raise ChainsettleError(f"ref: no invoice {ref!r} (its id or app_ref)")
    cfg = settings.chain(inv["chain"])
    if cfg.kind != "evm":
        raise ChainsettleError("chain: `demo pay` pays EVM invoices; for XRPL see the README's demo section")
    frm = (payer or inv.get("payer") or PAYER[0]).lower()
    url = cfg.rpc[0]
    amount = int(inv["amount"])
    if inv["asset"] == "native":
        receipt = devchain.send(url, frm, inv["wallet"], value=amount)
    else:
        token = next((c.address for c in cfg.contracts if c.name == inv["asset"]), None)
        if token is None:
            raise ChainsettleError(f"asset: {inv['asset']!r} is not a contract of {cfg.name}")
        receipt = devchain.token_transfer(url, token, frm, inv["wallet"], amount)
    state = inv["state"]
    if wait:
        deadline = time.monotonic() + wait
        async with open_pool(settings, database_url(settings), migrate_first=False) as pool:
            while state in ("new", "seen") and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                state = (await get_invoice(pool, ref) or {}).get("state", state)
    return {"invoice": inv["id"], "app_ref": inv["app_ref"], "from": frm, "to": inv["wallet"],
            "amount": inv["amount"], "tx_hash": receipt["transactionHash"], "state": state}


async def sign_in(settings: Settings, base: str, chain: str) -> dict[str, Any]:
    """Challenge, sign with the demo payer's key (EIP-4361, personal_sign), verify: the session."""
    import aiohttp
    from eth_account import Account
    from eth_account.messages import encode_defunct

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/v1/auth/challenge", json={"chain": chain, "address": PAYER[0]}) as r:
            challenge = await r.json()
            if r.status != 201:
                raise ChainsettleError(f"sign-in: challenge refused: {challenge}")
        signed = Account.sign_message(encode_defunct(text=challenge["message"]), PAYER[1])
        body = {"chain": chain, "message": challenge["message"], "signature": "0x" + signed.signature.hex().removeprefix("0x")}
        async with http.post(f"{base}/v1/auth/verify", json=body) as r:
            out = await r.json()
            if r.status != 200:
                raise ChainsettleError(f"sign-in: refused: {out}")
    return out
