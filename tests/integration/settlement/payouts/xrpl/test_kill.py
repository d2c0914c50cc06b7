"""Exactly once under crashes on XRPL: `chainsettle run` pays 100 recipients
from a hot wallet on a standalone test ledger (its own process, closing a
ledger every 0.5 s) while being SIGKILLed at random points and restarted.

Requests arrive a few per run once the payout worker is up; the kill
follows 0-1.5 s later (signing, submitting, validating, proving absence).
At the end every recipient's account holds exactly its amount (read from the
ledger's own account state) and reconciliation shows zero difference.

Runs: CHAINSETTLE_XRPL_KILL_RUNS (default 10 in the default suite; the
slow variant runs 50).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from settlement.payouts.requests import request_payout
from settlement.reconcile.runs import reconcile_once
from tests.integration.settlement.payouts.evm.test_kill import (
    kill,
    start_daemon,
    wait_for,
    wait_for_log,
)
from tests.support.config import make_settings, write_config
from tests.support.xrpl import GENESIS, XRP, sign, wallet

ROOT = Path(__file__).resolve().parents[5]
RECIPIENTS = 100
CHAIN = "xr"
HOT = wallet(7001)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpc(url: str, method: str, params: dict) -> dict:
    body = json.dumps({"method": method, "params": [params], "api_version": 2}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"}), timeout=10) as r:
        return json.loads(r.read())["result"]


def balance(url: str, address: str) -> int | None:
    res = rpc(url, "account_info", {"account": address, "ledger_index": "validated"})
    return None if res.get("error") == "actNotFound" else int(res["account_data"]["Balance"])


def fund(url: str, address: str, drops: int) -> None:
    seq = rpc(url, "account_info", {"account": GENESIS.classic_address, "ledger_index": "current"})["account_data"]["Sequence"]
    tx = {"TransactionType": "Payment", "Account": GENESIS.classic_address, "Destination": address,
          "Amount": str(drops), "Fee": "10", "Flags": 0, "Sequence": seq}
    assert rpc(url, "submit", {"tx_blob": sign(tx, GENESIS)})["engine_result"] == "tesSUCCESS"


async def run_kills(pool, db_url: str, tmp_path, runs: int) -> None:
    seed = int(os.environ.get("CHAINSETTLE_KILL_SEED") or int.from_bytes(os.urandom(4), "big"))
    rng = random.Random(seed)
    port = free_port()
    ledger = subprocess.Popen([sys.executable, "-m", "tests.xrpl_ledger", "--port", str(port), "--close-interval", "0.5"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                rpc(url, "ping", {})
                break
            except OSError:
                time.sleep(0.1)
        fund(url, HOT.classic_address, 100_000 * XRP)
        time.sleep(1.2)  # validated
        os.environ["TEST_XRPL_KILL_SEED"] = HOT.seed  # inherited by the daemons, never in the config
        data = {
            "chains": [{"name": CHAIN, "preset": "xrpl", "rpc": [url], "start_ledger": 1, "poll_interval": 0.1,
                        "wallets": [{"name": "hot", "address": HOT.classic_address, "assets": ["native"]}]}],
            "payouts": {"require_balance": False, "poll_interval": 0.1, "max_recipients": 5,
                        "chains": [{"chain": CHAIN, "seed": "env:TEST_XRPL_KILL_SEED", "last_ledger_offset": 6,
                                    "retry_wait_seconds": 0, "max_attempts": 100, "assets": [{"name": "native"}]}]},
            "reconcile": {"interval_seconds": 5},
        }
        config = write_config(tmp_path / "chainsettle.toml", data)
        settings = make_settings(tmp_path, data)
        log = tmp_path / "daemon.log"
        log.touch()
        amounts = {wallet(100 + i).classic_address: 20 * XRP + rng.randrange(10**6) for i in range(RECIPIENTS)}
        order = list(amounts)
        per_run = -(-RECIPIENTS // runs)
        requested = 0
        started = time.monotonic()
        for run in range(runs):
            batch = order[requested:requested + per_run]
            requested = min(RECIPIENTS, requested + per_run)
            offset = log.stat().st_size
            proc = start_daemon(config, db_url, log)
            try:
                await wait_for_log(log, offset, b"payout.worker_started", 60)
                for to in batch:
                    await request_payout(pool, settings, chain=CHAIN, asset="native", to=to, amount=amounts[to],
                                         key=f"pay:{to}")
                await asyncio.sleep(rng.uniform(0.0, 1.5))
            finally:
                kill(proc)
        kill_seconds = time.monotonic() - started
        proc = start_daemon(config, db_url, log)
        try:
            await wait_for(pool, "SELECT count(*) = $1 FROM payout_requests WHERE state = 'paid'", 180, RECIPIENTS)
            await wait_for(pool, "SELECT NOT EXISTS (SELECT 1 FROM xrpl_payments WHERE state IN ('signed', 'submitted'))", 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        for to, amount in amounts.items():
            assert balance(url, to) == amount, to  # created by exactly one payment of exactly its amount
        async with pool.acquire() as conn:
            per_request = await conn.fetch("SELECT request_id, count(*) AS n FROM xrpl_payments "
                                           "WHERE state = 'validated' AND purpose = 'payout' GROUP BY 1")
            dead = await conn.fetchval("SELECT count(*) FROM xrpl_payments WHERE state = 'dead'")
            total = await conn.fetchval("SELECT count(*) FROM xrpl_payments")
        assert len(per_request) == RECIPIENTS and all(r["n"] == 1 for r in per_request)
        report = await reconcile_once(settings, pool)
        assert report.runs[0].status == "ok", report.to_json()
        assert all(r.difference == 0 for r in report.runs[0].results), report.to_json()
        print(f"\nxrpl kill runs: {runs}, kill phase {kill_seconds:.1f} s, transactions {total}, dead {dead}, seed {seed}")
    finally:
        ledger.send_signal(signal.SIGTERM)
        ledger.wait(10)


async def test_sigkill_xrpl_payouts_exactly_once(pool, db_url, tmp_path):
    await run_kills(pool, db_url, tmp_path, int(os.environ.get("CHAINSETTLE_XRPL_KILL_RUNS", "10")))


@pytest.mark.slow
async def test_sigkill_xrpl_payouts_exactly_once_50_runs(pool, db_url, tmp_path):
    await run_kills(pool, db_url, tmp_path, 50)
