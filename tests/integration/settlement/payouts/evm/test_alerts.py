"""The operator alerts in a real Prometheus server scraping a running
`chainsettle run`: held payouts, the kill switch and a stuck transaction fire
while the condition holds, fire again right after a restart (the gauges come from the database
at start-up), and resolve when an operator clears them with the CLI."""

from __future__ import annotations

import asyncio
import signal

import pytest

from daemon.devchain import free_port
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_kill import kill, start_daemon, wait_for
from tests.integration.settlement.payouts.evm.test_pipeline import (
    cli,
    credit_users,
    deploy_funded_batcher,
    head,
    payout_config,
)
from tests.support.batcher import fresh_address
from tests.support.config import make_settings, write_config
from tests.support.evm import deploy
from tests.support.prometheus import PrometheusServer, prometheus_binary

UNIT = 10**15

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason="prometheus not installed (.ci/run installs it)")


async def test_held_and_paused_alerts_fire_survive_a_restart_and_resolve(anvil, pool, db_url, tmp_path):
    batcher = deploy_funded_batcher(anvil)
    port = free_port()
    data = payout_config(anvil.url, batcher, head(anvil) + 1)
    data["api"] = {"listen": f"127.0.0.1:{port}"}
    config = write_config(tmp_path / "chainsettle.toml", data)
    settings = make_settings(tmp_path, data)
    log = tmp_path / "daemon.log"
    proc = start_daemon(config, db_url, log)
    try:
        anvil.rpc("evm_mine", [])
        await wait_for(pool, "SELECT final_number IS NOT NULL FROM chain_state WHERE chain = 'anvil'", 60)
        refuser = deploy(anvil.url, "RevertingReceiver").lower()
        plain = fresh_address().lower()
        await credit_users(pool, "anvil", {refuser: UNIT, plain: UNIT})
        await request_payout(pool, settings, chain="anvil", asset="native", to=refuser, amount=UNIT, key="r")
        await request_payout(pool, settings, chain="anvil", asset="native", to=plain, amount=UNIT, key="p")
        for _ in range(3):
            anvil.rpc("evm_mine", [])
            await asyncio.sleep(0.3)
        await wait_for(pool, "SELECT state = 'held' FROM payout_requests WHERE idempotency_key = 'r'", 60)

        with PrometheusServer([f"127.0.0.1:{port}"]) as prom:
            prom.wait_for_alert("ChainsettlePayoutsHeld", chain="anvil")
            assert not prom.firing("ChainsettlePayoutsPaused")

            # A restart: the new process knows nothing until it reads the database.
            # Started again only after a scrape failed: a restart quicker than the scrape interval would
            # leave the series (and the alert) unbroken, and the resolve below would never be seen.
            kill(proc)
            prom.wait_until_down(f"127.0.0.1:{port}")
            proc = start_daemon(config, db_url, log)
            prom.wait_until_resolved("ChainsettlePayoutsHeld", timeout=60)
            prom.wait_for_alert("ChainsettlePayoutsHeld", chain="anvil")
            assert [r["value"][1] for r in prom.query('chainsettle_payouts{state="held"}')] == ["1"]

            code, _, err = cli(tmp_path, db_url, "payouts", "kill", "--chain", "anvil", "--reason", "drill")
            assert code == 0, err
            prom.wait_for_alert("ChainsettlePayoutsPaused", chain="anvil")
            # A transaction stopped at the fee cap (the state the sender writes; far above the chain's
            # nonce count, and nothing is sent while the switch is on, so the worker leaves it be).
            await pool.execute(
                "INSERT INTO evm_txs (chain, sender, nonce, attempt, purpose, raw, tx_hash, gas_limit, "
                "max_fee_per_gas, max_priority_fee_per_gas, state, last_error) VALUES ('anvil', $1, 10000, 1, "
                "'gap_fill', '0x02', $2, 21000, 1, 1, 'stuck_fee_cap', 'test: at the cap')",
                data["chains"][0]["wallets"][1]["address"].lower(), "0x" + "ee" * 32)
            prom.wait_for_alert("ChainsettlePayoutTxStuck", chain="anvil")
            await pool.execute("UPDATE evm_txs SET state = 'replaced' WHERE nonce = 10000")
            prom.wait_until_resolved("ChainsettlePayoutTxStuck")
            code, _, err = cli(tmp_path, db_url, "payouts", "resume", "--chain", "anvil", "--reason", "drill over")
            assert code == 0, err
            prom.wait_until_resolved("ChainsettlePayoutsPaused")

            batch = await pool.fetchval("SELECT batch_id FROM payout_requests WHERE idempotency_key = 'r'")
            code, _, err = cli(tmp_path, db_url, "payouts", "cancel", batch, "--reason", "receiver refuses coin")
            assert code == 0, err
            prom.wait_until_resolved("ChainsettlePayoutsHeld")
            assert [r["value"][1] for r in prom.query('chainsettle_payouts{state="held"}')] == ["0"]
            assert [r["value"][1] for r in prom.query('chainsettle_payouts{state="cancelled"}')] == ["1"]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


async def test_gauges_come_from_the_database_at_start_up(pool, tmp_path):
    """A fresh process (no run of its own yet) reports the last reconciliation and
    every payout state of each payout chain, 0 where empty."""
    from daemon.payouts import refresh_payout_gauges
    from settlement.ledger import metrics as lm
    from settlement.payouts import metrics as pm

    data = payout_config("http://127.0.0.1:9", "0x" + "5a" * 20, 1)
    settings = make_settings(tmp_path, data)
    await pool.execute("INSERT INTO reconciliation_runs (chain, height, started_at, finished_at, status) "
                       "VALUES ('anvil', 1, now() - interval '2 hours', now() - interval '1 hour', 'ok')")
    at = await pool.fetchval("SELECT extract(epoch FROM finished_at)::float8 FROM reconciliation_runs")
    await refresh_payout_gauges(settings, pool)
    assert lm.RECON_LAST_RUN.labels("anvil", "ok")._value.get() == at  # stale: the alert fires at once
    for state in ("pending", "batched", "paid", "held", "cancelled"):
        assert pm.PAYOUTS.labels("anvil", state)._value.get() == 0
    assert pm.STUCK_TXS.labels("anvil")._value.get() == 0 and pm.KILLED.labels("anvil")._value.get() == 0
