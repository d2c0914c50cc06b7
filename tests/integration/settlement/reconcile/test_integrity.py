"""Reconciliation cannot report a false zero.

- Against a node without historical state every run errors: that never
  refreshes "last success", and the staleness alert fires in a real
  Prometheus scraping the daemon's /metrics.
- A payout executed twice (the batcher called directly with a second
  signed batch) is booked from chain events on both sides, so wallet and
  ledger agree; the overpaid-user check reports the exact excess as a
  mismatch and pauses the asset.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from eth_utils import to_checksum_address
from prometheus_client import REGISTRY

from api.app import make_app
from indexer.evm.follower import EvmFollower
from settlement.ledger.hook import LedgerHook
from settlement.ledger.pauses import is_paused
from settlement.payouts.evm.eip712 import Batch, Domain, FundingSource, execute_batch_calldata, sign_batch
from settlement.payouts.evm.signer import LocalKeySigner
from settlement.reconcile.runs import EXIT_ERROR, EXIT_MISMATCH, reconcile_once
from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.batcher import RELAYER, latest_timestamp
from tests.support.config import evm_chain, make_settings
from tests.support.evm import deploy, deploy_token, send, token_transfer
from tests.support.fault_proxy import FaultProxy
from tests.support.prometheus import PrometheusServer, prometheus_binary

ROOT = Path(__file__).resolve().parents[4]
DEPLOYER, FUNDER = DEV_ACCOUNTS[0][0], DEV_ACCOUNTS[2][0]
SIGNER = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1][2:]))
HOT = DEV_ACCOUNTS[3][0]


def head(url: str) -> int:
    return int(rpc_sync(url, "eth_blockNumber"), 16)


async def index(settings, pool) -> None:
    follower = EvmFollower(settings.chains[0], pool, hooks=[LedgerHook(settings)])
    try:
        await follower.backfill()
    finally:
        await follower.close()


@pytest.mark.skipif(prometheus_binary() is None, reason="prometheus is not installed")
async def test_errors_on_historical_state_make_the_success_stale_alert_fire(anvil, pool, tmp_path):
    token = deploy_token(anvil.url)
    start = head(anvil.url) + 1
    proxy = await FaultProxy(anvil.url, seed=5, name="pruned").start()
    settings = make_settings(tmp_path, {"chains": [evm_chain(
        "stale", proxy.url, token, finality_depth=3, start_block=start,
        wallets=[{"name": "hot", "address": HOT, "assets": ["Token"]}])]})
    server = TestServer(make_app(settings, pool), host="127.0.0.1")
    await server.start_server()
    try:
        token_transfer(anvil.url, token, DEPLOYER, HOT, 500)
        rpc_sync(anvil.url, "anvil_mine", ["0x4"])
        await index(settings, pool)
        first = await reconcile_once(settings, pool)
        assert first.runs[0].status == "ok" and first.runs[0].results
        ok_at = REGISTRY.get_sample_value("chainsettle_reconciliation_last_success_timestamp_seconds", {"chain": "stale"})
        assert ok_at is not None

        proxy.no_history = True  # from now on the node answers state reads at H with "missing trie node"
        with PrometheusServer([f"127.0.0.1:{server.port}"]) as prom:
            for _ in range(3):
                rpc_sync(anvil.url, "anvil_mine", ["0x1"])
                await index(settings, pool)
                report = await reconcile_once(settings, pool)
                assert report.exit_code == EXIT_ERROR and report.runs[0].status == "error"
                assert "missing trie node" in report.runs[0].error
                await asyncio.sleep(0.5)
            # The errored runs did not refresh "last success".
            assert REGISTRY.get_sample_value(
                "chainsettle_reconciliation_last_success_timestamp_seconds", {"chain": "stale"}) == ok_at
            alert = await asyncio.to_thread(prom.wait_for_alert, "ChainsettleReconciliationSuccessStale", 60, chain="stale")
            assert alert["labels"]["severity"] == "critical"
            assert proxy.stats.faults["no_history"] >= 3

            # A node with history again: a successful run resolves it.
            proxy.no_history = False
            report = await reconcile_once(settings, pool)
            assert report.runs[0].status == "ok"
            await asyncio.to_thread(prom.wait_until_resolved, "ChainsettleReconciliationSuccessStale", 60,
                                    chain="stale")
    finally:
        await server.close()
        await proxy.stop()


async def test_a_run_that_compares_nothing_is_skipped_not_ok(anvil, pool, tmp_path):
    token = deploy_token(anvil.url)
    rpc_sync(anvil.url, "anvil_mine", ["0x4"])
    # A wallet listed with no asset to reconcile: a run has nothing to compare.
    settings = make_settings(tmp_path, {"chains": [evm_chain(
        "later", anvil.url, token, finality_depth=1, start_block=head(anvil.url) - 2,
        wallets=[{"name": "watch", "address": HOT, "assets": []}])]})
    await index(settings, pool)
    before = REGISTRY.get_sample_value("chainsettle_reconciliation_last_success_timestamp_seconds", {"chain": "later"})
    report = await reconcile_once(settings, pool)
    assert report.runs[0].status == "skipped" and report.runs[0].results == []
    assert await pool.fetchval("SELECT status FROM reconciliation_runs WHERE chain = 'later'") == "skipped"
    assert REGISTRY.get_sample_value("chainsettle_reconciliation_last_success_timestamp_seconds", {"chain": "later"}) == before


async def test_a_payout_executed_twice_is_an_overpaid_user_with_the_exact_amount(anvil, pool, tmp_path):
    url = anvil.url
    token = to_checksum_address(deploy_token(url))
    batcher = to_checksum_address(deploy(url, "PayoutBatcher", DEPLOYER, SIGNER.address))
    token_transfer(url, token, DEPLOYER, FUNDER, 1_000)  # before the books start: not booked
    start = head(url) + 1
    chain = evm_chain("paid", url, token, finality_depth=1, start_block=start,
                      wallets=[{"name": "batcher", "address": batcher, "assets": ["Token"]}])
    chain["contracts"].append({"name": "batcher", "address": batcher, "start_block": start,
                               "abi": str(ROOT / "contracts/artifacts/PayoutBatcher.json")})
    settings = make_settings(tmp_path, {"chains": [chain], "ledger": {"rules": [{
        "name": "payouts", "chain": "paid", "source": "batcher", "event": "PayoutSent", "wallet": "address",
        "amount": "amount", "asset": "{asset}", "debit": "user:{chain}:{recipient}", "credit": "{wallet}",
    }]}})
    # Deposits into the batcher: the deployer is owed 1,000, the funder 1,000.
    token_transfer(url, token, DEPLOYER, batcher, 1_000)
    token_transfer(url, token, FUNDER, batcher, 1_000)
    # The deployer is paid 600, twice: a second signed batch sent straight to the contract.
    domain = Domain(int(rpc_sync(url, "eth_chainId"), 16), batcher)
    for _ in range(2):
        batch = Batch(batch_id=os.urandom(32), asset=token, source=FundingSource.CONTRACT, treasury="0x" + "00" * 20,
                      recipients=(DEPLOYER,), amounts=(600,), expiry=latest_timestamp(anvil) + 3600)
        data = execute_batch_calldata(batch, sign_batch(batch, domain, SIGNER))
        send(url, RELAYER, batcher, "0x" + data.hex())
    await index(settings, pool)

    report = await reconcile_once(settings, pool)
    assert report.exit_code == EXIT_MISMATCH
    results = {r.check: r for r in report.runs[0].results}
    # Wallet and ledger agree (both sides were booked from chain events) ...
    assert results["balance"].status == "ok" and results["balance"].difference == 0
    assert results["balance"].actual == 800
    # ... but the deployer was paid 200 more than it was owed.
    over = results["overpaid"]
    assert (over.status, over.account, over.actual, over.difference) == ("mismatch", f"user:paid:{DEPLOYER.lower()}", -200, -200)
    assert await is_paused(pool, "paid:Token")
    row = await pool.fetchrow("SELECT details FROM audit_log WHERE action = 'reconcile.mismatch' ORDER BY id DESC LIMIT 1")
    assert row["details"]["check"] == "overpaid" and row["details"]["difference"] == "-200"
    stored = await pool.fetchrow("""SELECT r.expected, r.actual, r.difference, r.status FROM reconciliation_results r
                                    JOIN ledger_accounts a ON a.id = r.account_id WHERE a.code = $1""",
                                 f"user:paid:{DEPLOYER.lower()}")
    assert (int(stored["expected"]), int(stored["actual"]), int(stored["difference"]), stored["status"]) == (0, -200, -200, "mismatch")
    pause = await pool.fetchval("SELECT reason FROM asset_pauses WHERE asset_id = 'paid:Token'")
    assert "paid 200" in pause
