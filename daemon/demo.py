"""`chainsettle demo` (what `make demo` runs): the daemon doing its main job
on embedded defaults, with no manual steps.

It starts an embedded Postgres and a local anvil chain, deploys a token,
keeps users depositing into the hot wallet, runs the daemon against it and
prints where to look. Ctrl-C stops everything and leaves nothing running.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import threading

from config import load_settings
from config.logs import get_logger

from . import devchain
from .runtime import setup_logging

log = get_logger("demo")
STATE = devchain.ROOT / ".state" / "demo"


SIGNER_ENV = "CHAINSETTLE_DEMO_SIGNER_KEY"
SENDER_ENV = "CHAINSETTLE_DEMO_SENDER_KEY"


def demo_config(anvil_url: str, token: str, wallet: str, api_port: int, xrpl_url: str, xrpl_hot: str,
                batcher: str, sender: str, deployer: str) -> str:
    return f"""# Written by `chainsettle demo`; regenerated on every run.
[database]
embedded_dir = "pg"

[log]
level = "info"
format = "console"

[api]
listen = "127.0.0.1:{api_port}"

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

    shutil.rmtree(STATE, ignore_errors=True)  # a fresh chain needs fresh books
    STATE.mkdir(parents=True)
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
        devchain.batch_transfer(anvil.url, token, users, [10**24] * len(users))
        batcher = devchain.deploy(anvil.url, "PayoutBatcher", devchain.DEPLOYER, signer_addr).lower()
        devchain.token_transfer(anvil.url, token, devchain.DEPLOYER, batcher, 10**24)
        os.environ[SIGNER_ENV] = signer_key  # anvil's public dev key, for the local chain only
        os.environ[SENDER_ENV] = signer_key
        if not _port_free(api_port):
            api_port = devchain.free_port()
        config = STATE / "chainsettle.toml"
        config.write_text(demo_config(anvil.url, token, wallet, api_port, xrpl_url, xrpl.hot.classic_address,
                                      batcher, signer_addr, devchain.DEPLOYER))
        settings = load_settings(config)
        setup_logging(settings)
        depositors = Depositors(anvil.url, token, wallet, users)
        depositors.start()
        xrpl_task = asyncio.create_task(xrpl.run(stop))
        withdrawals = asyncio.create_task(request_withdrawals(settings, users, stop))
        base = f"http://127.0.0.1:{api_port}"
        print(f"""
chainsettle demo is running (Ctrl-C stops everything)
  chain        anvil at {anvil.url} (chain id 31337, a block per second)
  token        {token}
  hot wallet   {wallet}
  payouts      PayoutBatcher {batcher}; depositors withdraw every few seconds (above 100 TST waits for
               `chainsettle --config {config} payouts approve BATCH --by NAME`)
  XRPL         test ledger at {xrpl_url} (a validated ledger every 2 s), hot wallet {xrpl.hot.classic_address}
  config       {config}
  status page  {base}/
  API          {base}/v1/status   {base}/v1/events?chain=local
  metrics      {base}/metrics
""", flush=True)
        try:
            await run_daemon(settings, stop)
        finally:
            depositors.halt.set()
            depositors.join(5)
            await xrpl_task
            made = await withdrawals
            await xrpl_server.stop()
        print(f"demo stopped: {depositors.count} token deposits, {xrpl.count} XRP deposits, "
              f"{made} withdrawal requests", flush=True)
    return 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
