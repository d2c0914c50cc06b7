"""Exactly once under crashes: `chainsettle run` pays 200 recipients in
batches on anvil while being SIGKILLed at random points, then restarted.

Requests arrive a few at a time (plus repeats of old keys). In three runs of
four they arrive once the payout worker is up and the kill follows 0-0.8 s
later, so it lands in batching, signing, broadcasting or confirming; in the
fourth it lands 0.3-3 s after spawn, start-up included.
At the end every recipient holds exactly its amount on chain, the batches
the contract executed are exactly the ones the database confirmed, and
reconciliation of the batcher and sender wallets shows zero difference.

Runs: KILL_RUNS (default 50; override with CHAINSETTLE_KILL_RUNS).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from settlement.payouts.evm import batcher_abi
from settlement.payouts.requests import request_payout
from settlement.reconcile.runs import reconcile_once
from tests.integration.settlement.payouts.evm.test_pipeline import (
    credit_users,
    deploy_funded_batcher,
    head,
    payout_config,
)
from tests.support.batcher import balance, fresh_address, is_executed
from tests.support.config import make_settings, write_config
from tests.support.pg import wait_until

ROOT = Path(__file__).resolve().parents[5]
RECIPIENTS = 200
KILL_RUNS = int(os.environ.get("CHAINSETTLE_KILL_RUNS", "50"))
ETHER = 10**18


def start_daemon(config: Path, db_url: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__FORMAT="json")
    out = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


async def wait_for(pool, sql: str, timeout: float, *args) -> None:
    await wait_until(pool, sql, *args, timeout=timeout, interval=0.2)


async def first_final_height(anvil, pool, config: Path, db_url: str, log: Path) -> None:
    """One daemon run until the chain has a final height, then SIGKILLed: what a test sets up
    next (credits, requests) is then checked against final data."""
    proc = start_daemon(config, db_url, log)
    try:
        anvil.rpc("evm_mine", [])
        await wait_for(pool, "SELECT final_number IS NOT NULL FROM chain_state WHERE chain = 'anvil'", 60)
    finally:
        kill(proc)


async def add_requests(pool, settings, recipients, amounts) -> None:
    for to in recipients:
        await request_payout(pool, settings, chain="anvil", asset="native", to=to, amount=amounts[to], key=f"pay:{to}")


async def wait_for_log(log: Path, offset: int, marker: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while marker not in log.read_bytes()[offset:]:
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} not logged within {timeout}s: {log.read_text()[-2000:]}")
        await asyncio.sleep(0.05)


def executed_on_chain(anvil, batcher: str, start: int) -> list[str]:
    topic = "0x" + batcher_abi.event_topics()["BatchExecuted"].hex()
    logs = anvil.rpc("eth_getLogs", [{"address": batcher, "topics": [topic], "fromBlock": hex(start),
                                      "toBlock": "latest"}])
    return [lg["topics"][1] for lg in logs]


async def test_sigkill_at_random_points_pays_everyone_exactly_once(anvil, pool, db_url, tmp_path):
    seed = int(os.environ.get("CHAINSETTLE_KILL_SEED") or int.from_bytes(os.urandom(4), "big"))
    rng = random.Random(seed)
    batcher = deploy_funded_batcher(anvil, funds=50 * ETHER)
    start = head(anvil) + 1
    data = payout_config(anvil.url, batcher, start, max_recipients=10)
    data["reconcile"] = {"interval_seconds": 5}
    config = write_config(tmp_path / "chainsettle.toml", data)
    settings = make_settings(tmp_path, data)
    log = tmp_path / "daemon.log"
    amounts = {fresh_address().lower(): 10**15 + rng.randrange(10**12) for _ in range(RECIPIENTS)}
    order = list(amounts)

    await first_final_height(anvil, pool, config, db_url, log)
    await credit_users(pool, "anvil", amounts)

    started = time.monotonic()
    per_run = -(-RECIPIENTS // KILL_RUNS)
    requested = 0
    for run in range(KILL_RUNS):
        batch = order[requested:requested + per_run]
        requested = min(RECIPIENTS, requested + per_run)
        offset = log.stat().st_size
        proc = start_daemon(config, db_url, log)
        if run % 4 == 3:
            # Requests first; the kill lands anywhere from start-up on (0.3-3 s).
            await add_requests(pool, settings, batch, amounts)
            await asyncio.sleep(rng.uniform(0.3, 3.0))
        else:
            # Requests arrive while it runs: the kill lands in batching,
            # signing, broadcasting or confirming, whichever is under way.
            await wait_for_log(log, offset, b"payout.worker_started", 60)
            await add_requests(pool, settings, batch, amounts)
            await asyncio.sleep(rng.uniform(0.0, 0.8))
        kill(proc)
        if run % 5 == 4:  # a client retrying an old request: still one payout
            to = order[rng.randrange(requested)]
            _, created = await request_payout(pool, settings, chain="anvil", asset="native", to=to,
                                              amount=amounts[to], key=f"pay:{to}")
            assert not created
    kill_seconds = time.monotonic() - started

    # A last, uninterrupted run until everything is confirmed from final events.
    offset = log.stat().st_size
    proc = start_daemon(config, db_url, log)
    try:
        await wait_for(pool, "SELECT count(*) = $1 FROM payout_requests WHERE state = 'paid'", 120, RECIPIENTS)
        # Let it come up fully (it may find nothing left to do) so SIGTERM meets its handler.
        await wait_for_log(log, offset, b"daemon.started", 60)
        await wait_for(pool, "SELECT NOT EXISTS (SELECT 1 FROM payout_batches WHERE state <> 'confirmed')", 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]

    for to, amount in amounts.items():
        assert balance(anvil, to) == amount, to
    async with pool.acquire() as conn:
        confirmed = {r["batch_id"] for r in await conn.fetch("SELECT batch_id FROM payout_batches WHERE state = 'confirmed'")}
        others = [r["batch_id"] for r in await conn.fetch("SELECT batch_id FROM payout_batches WHERE state <> 'confirmed'")]
        sent_per_request = await conn.fetch(
            "SELECT r.id, count(i.*) FILTER (WHERE i.outcome = 'sent') AS n FROM payout_requests r "
            "LEFT JOIN payout_items i ON i.request_id = r.id GROUP BY r.id")
        txs = await conn.fetchval("SELECT count(*) FROM evm_txs")
        # Signed and stored by one process, first broadcast by the next one.
        late = await conn.fetchval(
            "SELECT count(*) FROM evm_txs t JOIN audit_log a ON a.subject = 'tx:' || t.tx_hash "
            "AND a.action = 'payout.tx_broadcast' WHERE a.at - t.created_at > interval '300 milliseconds'")
        assert await conn.fetchval("SELECT count(*) FROM payout_requests") == RECIPIENTS
    assert all(r["n"] == 1 for r in sent_per_request)
    on_chain = executed_on_chain(anvil, batcher, start)
    assert sorted(on_chain) == sorted(confirmed) and len(set(on_chain)) == len(on_chain)
    for batch_id in others:
        assert not is_executed(anvil, batcher, bytes.fromhex(batch_id[2:]))

    report = await reconcile_once(settings, pool)
    run = report.runs[0]
    assert run.status == "ok", report.to_json()
    assert {r.wallet for r in run.results} == {batcher, data["chains"][0]["wallets"][1]["address"]}
    assert all(r.difference == 0 for r in run.results), report.to_json()
    text = log.read_text()
    print(f"\nkill runs: {KILL_RUNS} ({text.count('payout.worker_started')} processes reached the payout worker), "
          f"broadcast only after a restart: {late}, kill phase {kill_seconds:.1f} s, batches {len(confirmed)}, "
          f"transactions {txs}, seed {seed} (CHAINSETTLE_KILL_SEED)")
