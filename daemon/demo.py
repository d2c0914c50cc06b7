"""`chainsettle demo` (what `make demo` runs): the daemon doing its main job
on embedded defaults, with no manual steps.

It starts an embedded Postgres and a local anvil chain, deploys a token,
keeps users depositing into the hot wallet, runs the daemon against it and
prints where to look. Ctrl-C stops everything and leaves nothing running.

Everything a newcomer needs to try the admin API, sign-in, invoices, intents
and webhooks is printed and written to `<state>/demo.env` (daemon/demo_tools.py):
a generated admin token, a webhook receiver on loopback (loopback targets are
allowed in the demo's config only), an approver that approves batches above
the threshold after a few seconds. The state (`.state/demo`, or
CHAINSETTLE_DEMO_STATE) is wiped at every start: a fresh chain needs fresh books.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import threading
from pathlib import Path

from config import load_settings
from config.logs import get_logger

from . import devchain
from .demo_tools import (
    ADMIN_ENV,
    APPROVE_AFTER,
    PAYER,
    SIGNIN_ENV,
    WEBHOOK_ENV,
    Receiver,
    approve_waiting,
    demo_secrets,
    write_env,
)
from .runtime import setup_logging

log = get_logger("demo")
STATE = Path(os.environ.get("CHAINSETTLE_DEMO_STATE") or devchain.ROOT / ".state" / "demo").resolve()


SIGNER_ENV = "CHAINSETTLE_DEMO_SIGNER_KEY"
SENDER_ENV = "CHAINSETTLE_DEMO_SENDER_KEY"


def demo_config(anvil_url: str, token: str, wallet: str, api_port: int, xrpl_url: str, xrpl_hot: str,
                batcher: str, sender: str, deployer: str, receiver: str) -> str:
    return f"""# Written by `chainsettle demo`; regenerated on every run.
[database]
embedded_dir = "pg"

[log]
level = "info"
format = "console"

[api]
listen = "127.0.0.1:{api_port}"
admin_token = "env:{ADMIN_ENV}"   # generated at every start; printed, and in demo.env

[invoices.signin]
domain = "127.0.0.1:{api_port}"
uri = "http://127.0.0.1:{api_port}"
token_key = "env:{SIGNIN_ENV}"
chains = ["local"]

# What a signed-in wallet may withdraw from its own account (the example page, /example/).
[[invoices.signin.withdrawals.limits]]
chain = "local"
asset = "Token"
per_request = "100000000000000000000"   # 100 TST
per_day = "1000000000000000000000"

# Demo only: the receiver the demo starts runs on loopback, which a real
# deployment refuses (SSRF); see delivery.allow_loopback in the README.
[delivery]
allow_loopback = true
poll_interval = 0.5

[[deliveries]]
id = "demo-receiver"
sink = "webhook"
url = "{receiver}/hook"
secrets = ["env:{WEBHOOK_ENV}"]
filter = {{ types = ["invoice", "payout", "batch"] }}

[[chains]]
name = "local"
preset = "anvil"
rpc = ["{anvil_url}"]
finality_depth = 3
poll_interval = 0.25

[[chains.contracts]]
name = "Token"
address = "{token}"
abi = "erc20"
start_block = 0
events = ["Transfer", "Approval"]

[[chains.contracts]]
name = "batcher"
address = "{batcher}"
abi = "payout_batcher"
start_block = 0

[[chains.wallets]]
name = "hot"
address = "{wallet}"
assets = ["native", "Token"]

[[ledger.assets]]   # a symbol and decimals: amounts shown as "1.5 TST" beside the base units
chain = "local"
name = "Token"
symbol = "TST"
decimals = 18

[[chains.wallets]]
name = "batcher"
address = "{batcher}"
assets = ["Token"]

[[chains.wallets]]
name = "sender"
address = "{sender}"
assets = ["native"]

[[chains]]
name = "xrpl-local"
preset = "xrpl"
rpc = ["{xrpl_url}"]

[[chains.wallets]]
name = "hot"
address = "{xrpl_hot}"

# The deployer's funding of the batcher is the app's own money, not a user
# deposit: booked to app:treasury, never owed to the deployer as a user.
[[ledger.funders]]
chain = "local"
address = "{deployer}"
account = "app:treasury"

[reconcile]
interval_seconds = 10

[payouts]
poll_interval = 0.5
batch_wait_seconds = 3
max_recipients = 20

[[payouts.chains]]
chain = "local"
batcher = "{batcher}"
signer = {{ key = "env:{SIGNER_ENV}" }}
sender = {{ key = "env:{SENDER_ENV}" }}
max_fee_per_gas = 100000000000

[[payouts.chains.assets]]
name = "Token"
approval_threshold = "100000000000000000000"
"""


class Depositors(threading.Thread):
    """Users sending tokens to the hot wallet every so often."""

    def __init__(self, url: str, token: str, wallet: str, users: list[str]) -> None:
        super().__init__(daemon=True, name="demo-depositors")
        self.url, self.token, self.wallet, self.users = url, token, wallet, users
        self.halt = threading.Event()
        self.count = 0

    def run(self) -> None:
        rng = random.Random()
        while not self.halt.wait(rng.uniform(0.5, 2.0)):
            try:
                devchain.token_transfer(self.url, self.token, rng.choice(self.users), self.wallet,
                                        rng.randrange(1, 500) * 10**18)
                self.count += 1
            except Exception as exc:  # the chain is going away at shutdown
                if not self.halt.is_set():
                    log.warning("demo.deposit_failed", error=str(exc)[:200])


class XrplDepositors:
    """Users paying XRP into the XRPL hot wallet, each with their destination tag."""

    def __init__(self, server) -> None:
        from tests.support.xrpl import Driver, wallet

        self.driver = Driver(server)
        self.hot = wallet(1)
        self.users = [wallet(n) for n in range(2, 6)]
        self.driver.fund(self.hot, *self.users)
        self.count = 0

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), rng.uniform(1.0, 3.0))
            except asyncio.TimeoutError:
                i = rng.randrange(len(self.users))
                res = self.driver.pay(self.users[i], self.hot.classic_address, str(rng.randrange(1, 50) * 1_000_000),
                                      DestinationTag=1000 + i)
                self.count += res.get("engine_result") == "tesSUCCESS"


async def request_withdrawals(settings, users: list[str], stop: asyncio.Event) -> int:
    """Depositors withdraw part of what the ledger owes them, every few seconds."""
    from settlement.payouts.requests import PayoutError, request_payout

    from .runtime import database_url, open_pool

    rng, n, made = random.Random(), 0, 0
    async with open_pool(settings, database_url(settings), migrate_first=False) as pool:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), rng.uniform(2.0, 5.0))
            except asyncio.TimeoutError:
                n += 1
                try:
                    # Usually small; now and then above the approval threshold.
                    amount = rng.choice([1, 2, 5, 150]) * 10**18
                    await request_payout(pool, settings, chain="local", asset="Token", to=rng.choice(users),
                                         amount=amount, key=f"demo-withdrawal-{n}", actor="demo")
                    made += 1
                except PayoutError as exc:  # not yet final, or not owed that much: try again later
                    log.info("demo.withdrawal_skipped", reason=str(exc)[:160])
    return made


async def run_demo(api_port: int = 8080) -> int:
    import sys

    sys.path.insert(0, str(devchain.ROOT))  # the XRPL test ledger lives under tests/
    from tests.xrpl_ledger import start_ledger_server

    from .supervisor import run_daemon

    shutil.rmtree(STATE, ignore_errors=True)  # a fresh chain needs fresh books (said in the banner)
    STATE.mkdir(parents=True)
    made = demo_secrets()
    receiver = Receiver()
    receiver_url = await receiver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    xrpl_server, xrpl_url = await start_ledger_server(close_interval=2.0)
    xrpl = XrplDepositors(xrpl_server)
    with devchain.Anvil("--block-time", "1") as anvil:
        token = devchain.deploy_token(anvil.url)
        wallet = devchain.DEV_ACCOUNTS[1][0]
        # The payout contract: DEV 3 signs batches and sends them; the batcher pays from its own tokens.
        # DEV 3 is no depositor: its nonces belong to the daemon's sender, and a
        # deposit sent from it took them (deposits then never mined, in 1-3 of
        # the demo's first 120 s).
        signer_addr, signer_key = devchain.DEV_ACCOUNTS[3]
        users = [a for a, _ in devchain.DEV_ACCOUNTS[2:] if a != signer_addr]
        devchain.batch_transfer(anvil.url, token, [*users, PAYER[0]], [10**24] * (len(users) + 1))
        batcher = devchain.deploy(anvil.url, "PayoutBatcher", devchain.DEPLOYER, signer_addr).lower()
        devchain.token_transfer(anvil.url, token, devchain.DEPLOYER, batcher, 10**24)
        os.environ[SIGNER_ENV] = signer_key  # anvil's public dev key, for the local chain only
        os.environ[SENDER_ENV] = signer_key
        if not _port_free(api_port):
            api_port = devchain.free_port()
        config = STATE / "chainsettle.toml"
        config.write_text(demo_config(anvil.url, token, wallet, api_port, xrpl_url, xrpl.hot.classic_address,
                                      batcher, signer_addr, devchain.DEPLOYER, receiver_url))
        settings = load_settings(config)
        base = f"http://127.0.0.1:{api_port}"
        env_file = STATE / "demo.env"
        write_env(env_file, {
            **made, SIGNER_ENV: signer_key, SENDER_ENV: signer_key,
            "CHAINSETTLE_CONFIG": str(config), "PATH": f"{devchain.ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
            "CS_URL": base, "CS_ADMIN_TOKEN": made[ADMIN_ENV], "CS_TOKEN_CONTRACT": token, "CS_HOT": wallet,
            "CS_USER": users[0], "CS_PAYER": PAYER[0], "CS_RECEIVER": receiver_url,
            "CS_XRPL_HOT": xrpl.hot.classic_address})
        setup_logging(settings)
        depositors = Depositors(anvil.url, token, wallet, users)
        depositors.start()
        xrpl_task = asyncio.create_task(xrpl.run(stop))
        withdrawals = asyncio.create_task(request_withdrawals(settings, users, stop))
        approver = asyncio.create_task(approve_waiting(settings, stop))
        token_value = made[ADMIN_ENV]
        print(f"""
chainsettle demo is running (Ctrl-C stops everything)
  state        {STATE} (wiped at every start: the chains are new, so are the books)
  chain        anvil at {anvil.url} (chain id 31337, a block per second)
  token        {token} (TST, 18 decimals)
  hot wallet   {wallet}
  payouts      PayoutBatcher {batcher}; depositors withdraw every few seconds. Batches above
               100 TST wait for approval; the demo approves them after {int(APPROVE_AFTER)} s as demo-approver
               (by hand: chainsettle payouts approve BATCH --by NAME)
  XRPL         test ledger at {xrpl_url} (a validated ledger every 2 s), hot wallet {xrpl.hot.classic_address}
  webhooks     a receiver on loopback at {receiver_url}/ (subscription demo-receiver)
  config       {config}
  status page  {base}/
  API          {base}/v1/status   {base}/v1/events?chain=local   {base}/openapi.json
  metrics      {base}/metrics
  admin token  {token_value}

Try it (in another shell; README "Trying the demo" has more):
  . {env_file}
  curl -s -H "Authorization: Bearer $CS_ADMIN_TOKEN" $CS_URL/v1/admin/payouts/held
  chainsettle payouts list
  chainsettle invoices create --chain local --asset Token --amount 5000000000000000000 \\
      --wallet $CS_HOT --app-ref first-invoice --account user:demo-buyer --match payer --payer $CS_PAYER
  chainsettle demo pay first-invoice                      # pays it from anvil dev account 4
  chainsettle demo sign-in                                # a wallet session token (EIP-4361)
  curl -s $CS_RECEIVER/                                   # what the webhook receiver got
""", flush=True)
        try:
            await run_daemon(settings, stop)
        finally:
            depositors.halt.set()
            depositors.join(5)
            await xrpl_task
            made_requests = await withdrawals
            approved = await approver
            await xrpl_server.stop()
            await receiver.stop()
        print(f"demo stopped: {depositors.count} token deposits, {xrpl.count} XRP deposits, "
              f"{made_requests} withdrawal requests, {approved} batches approved by the demo, "
              f"{receiver.count} webhooks received", flush=True)
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
