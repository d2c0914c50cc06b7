"""A distribution that cannot settle, in a running `chainsettle run` scraped by a real Prometheus:
books edited by hand leave an entitlement short of its share, so the expiry refuses to move it
(fail closed: nothing moves) and the pass goes on with the others; ChainsettleDistributionSettleFailing
fires while it lasts and resolves once an operator's correction lets the expiry book, once."""

from __future__ import annotations

import signal

import pytest

from daemon.devchain import free_port
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.claims import open_epoch
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from tests.integration.settlement.payouts.evm.test_kill import start_daemon, wait_for
from tests.integration.settlement.payouts.evm.test_pipeline import deploy_funded_batcher, head, payout_config
from tests.support.batcher import fresh_address
from tests.support.config import make_settings, write_config
from tests.support.ledger import balance_parts, fund
from tests.support.prometheus import PrometheusServer, prometheus_binary

pytestmark = pytest.mark.skipif(prometheus_binary() is None, reason="prometheus not installed (.ci/run installs it)")
ASSET = "anvil:native"




async def test_a_distribution_that_cannot_settle_alerts_while_it_lasts(anvil, pool, db_url, tmp_path):
    port = free_port()
    data = payout_config(anvil.url, deploy_funded_batcher(anvil), head(anvil) + 1)
    data["api"] = {"listen": f"127.0.0.1:{port}"}
    data["ledger"] = {"accounts": [{"code": "app:pool"}]}
    config = write_config(tmp_path / "chainsettle.toml", data)
    settings = make_settings(tmp_path, data)
    proc = start_daemon(config, db_url, tmp_path / "daemon.log")
    try:
        anvil.rpc("evm_mine", [])
        await wait_for(pool, "SELECT final_number IS NOT NULL FROM chain_state WHERE chain = 'anvil'", 60)
        await fund(pool, "app:pool", 1000, asset=ASSET)
        a, b = fresh_address().lower(), fresh_address().lower()
        await create_snapshot(pool, settings, SnapshotRequest("s", "list", ((a, 1), (b, 1))), "t")
        await create_distribution(pool, settings, DistributionRequest("x", "s", "app:pool", ASSET, 100,
                                                                      mode="pull"), "t")
        # A hand edit: a manual entry takes 1 from a's entitlement, which now holds 49 of its 50.
        await fund(pool, f"entitlement:x:{a}", -1, asset=ASSET)
        # Claimable until a deadline that every final block is past already: the pass expires it.
        await open_epoch(pool, settings, "x", contract="0x" + "c1" * 20, epoch=1, deadline=1,
                         sweep_to="0x" + "c2" * 20, actor="t")
        with PrometheusServer([f"127.0.0.1:{port}"]) as prom:
            prom.wait_for_alert("ChainsettleDistributionSettleFailing")
            assert await pool.fetchval("SELECT state FROM distributions WHERE id = 'x'") == "open"
            assert (await balance_parts(pool, "app:pool", ASSET))["final"] == 900  # nothing moved
            await fund(pool, f"entitlement:x:{a}", 1, asset=ASSET)  # the operator's correction
            prom.wait_until_resolved("ChainsettleDistributionSettleFailing")
        await wait_for(pool, "SELECT state = 'closed' FROM distributions WHERE id = 'x'", 30)
        assert (await balance_parts(pool, "app:pool", ASSET))["final"] == 1000  # the unclaimed 100, once
        for r in (a, b):
            assert (await balance_parts(pool, f"entitlement:x:{r}", ASSET))["final"] == 0
        assert "distribution.settle_failed" in (tmp_path / "daemon.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
