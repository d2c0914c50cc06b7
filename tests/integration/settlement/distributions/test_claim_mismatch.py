"""A ClaimDistributor epoch whose root is not the distribution's tree: the contract pays a leaf the
books do not owe. Settling fails closed once per event (asset paused, audit row, metric), leaves the
share owed, and keeps settling the leaves that match."""

from __future__ import annotations

from prometheus_client import REGISTRY

from settlement.distributions import claim_abi as ca
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.claims import open_epoch, proof_of, settle
from settlement.distributions.merkle import claim_tree
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from settlement.ledger.pauses import is_paused
from tests.integration.contracts.test_claim_distributor import OWNER, tx
from tests.support.batcher import fresh_address, latest_timestamp
from tests.support.ledger import balance_parts

from .test_claims import ASSET, POOL, UNIT, env  # noqa: F401 - the fixture


async def test_a_claim_of_a_leaf_that_is_not_the_share_pauses_the_asset_once(env):  # noqa: F811
    a, b = fresh_address().lower(), fresh_address().lower()
    await create_snapshot(env.pool, env.settings, SnapshotRequest("s", "list", ((a, 1), (b, 1))), "t")
    await create_distribution(env.pool, env.settings, DistributionRequest("m", "s", POOL, ASSET, 2 * UNIT,
                                                                          mode="pull"), "t")
    deadline = latest_timestamp(env.anvil) + 3600
    calls = await open_epoch(env.pool, env.settings, "m", contract=env.contract, epoch=5, deadline=deadline,
                             sweep_to=OWNER, actor="t")
    async with env.pool.acquire() as conn:
        pa = await proof_of(conn, "m", a)
    # The owner creates the epoch with another tree: b's leaf pays three times its share
    # (proofs by position in this list).
    wrong = claim_tree([(pa["index"], a, UNIT), (1 - pa["index"], b, 3 * UNIT)])
    tx(env.anvil, env.contract, ca.create_epoch(5, wrong.root, ca.NATIVE, 4 * UNIT, deadline, OWNER), frm=OWNER)
    tx(env.anvil, env.contract, ca.fund_epoch(5, 4 * UNIT), frm=OWNER, value=4 * UNIT)
    assert calls["root"] != wrong.root
    tx(env.anvil, env.contract, ca.claim(5, pa["index"], a, UNIT, wrong.proof(0)))  # matches its share
    ib = 1 - pa["index"]
    tx(env.anvil, env.contract, ca.claim(5, ib, b, 3 * UNIT, wrong.proof(1)))  # does not
    before = REGISTRY.get_sample_value("chainsettle_distribution_claim_mismatches_total", {"asset": ASSET}) or 0
    await env.index(mine=4)
    out = await settle(env.pool, env.settings, "m")
    assert out["settled"] == [pa["index"]] and out["mismatched"] == [ib]
    again = await settle(env.pool, env.settings, "m")  # seen again: no second audit row or pause
    assert again["mismatched"] == [ib] and again["settled"] == []
    async with env.pool.acquire() as conn:
        assert await is_paused(conn, ASSET)
        rows = await conn.fetch("SELECT action FROM audit_log WHERE action IN "
                                "('distribution.claim_mismatch', 'asset.paused') ORDER BY id")
        share = await conn.fetchval("SELECT state FROM distribution_shares WHERE distribution_id = 'm' AND "
                                    "recipient = $1", b)
    assert [r["action"] for r in rows] == ["distribution.claim_mismatch", "asset.paused"]
    assert share == "owed"  # the books still owe b its share; the contract paid something else
    assert (await balance_parts(env.pool, f"entitlement:m:{b}", ASSET))["final"] == UNIT
    assert (await balance_parts(env.pool, f"entitlement:m:{a}", ASSET))["final"] == 0
    after = REGISTRY.get_sample_value("chainsettle_distribution_claim_mismatches_total", {"asset": ASSET})
    assert after == before + 1
