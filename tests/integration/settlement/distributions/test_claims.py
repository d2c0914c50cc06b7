"""A pulled distribution on anvil and real Postgres: the daemon's tree and proofs are what the
ClaimDistributor accepts; holders claim (some twice, wrong or borrowed proofs, after the
window); claims settle from final Claimed events only (a reorg that drops one leaves it
pending, its replacement settles once); the unclaimed rest returns to the pool exactly once
and equals the on-chain sweep."""

from __future__ import annotations

import pytest

from daemon.followers import make_follower
from settlement.distributions import claim_abi as ca
from settlement.distributions.book import (
    DistributionRefused,
    DistributionRequest,
    create_distribution,
    get_distribution,
)
from settlement.distributions.claims import ClaimsRefused, open_epoch, proof_of, settle, tree_of
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from tests.integration.contracts.test_claim_distributor import OWNER, rejected, tx, warp
from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.batcher import balance, fresh_address, latest_timestamp
from tests.support.config import evm_chain, make_settings
from tests.support.evm import deploy, send
from tests.support.ledger import balance_parts, fund

POOL = "app:pool"
ASSET = "anvil:native"
UNIT = 10**15


class ClaimEnv:
    def __init__(self, anvil, pool, tmp_path, accounts=({"code": POOL},)) -> None:
        self.anvil, self.pool = anvil, pool
        self.contract = deploy(anvil.url, "ClaimDistributor", DEV_ACCOUNTS[1][0], frm=OWNER).lower()
        start = int(anvil.rpc("eth_blockNumber", []), 16)
        self.settings = make_settings(tmp_path, {
            "database": {"url": "postgresql://unused"},
            "chains": [evm_chain("anvil", anvil.url, finality_depth=3, poll_interval=0.2, start_block=start,
                                 contracts=[{"name": "claims", "address": self.contract, "abi": "claim_distributor",
                                             "start_block": start}],
                                 wallets=[{"name": "hot", "address": "0x" + "a1" * 20, "assets": ["native"]}])],
            "ledger": {"accounts": list(accounts)}})
        self.follower = make_follower(self.settings.chain("anvil"), pool, self.settings)

    async def index(self, mine: int = 0) -> None:
        if mine:
            rpc_sync(self.anvil.url, "anvil_mine", [hex(mine)])
        await self.follower.backfill()
        for _ in range(20):  # and the blocks above the final height, as the running follower would
            if await self.follower.step():
                break


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = ClaimEnv(anvil, pool, tmp_path)
    await e.index(mine=4)
    await fund(pool, POOL, 100 * UNIT, asset="anvil:native")
    yield e
    await e.follower.close()


async def test_pull_claims_settle_once_reorg_and_expiry(env):
    holders = [fresh_address().lower() for _ in range(12)]
    await create_snapshot(env.pool, env.settings, SnapshotRequest("h", "list", tuple((h, 1) for h in holders)), "t")
    total = 12 * UNIT + 5  # 5 units of dust go to five of them, by the seeded tie-break
    await create_distribution(env.pool, env.settings, DistributionRequest("d", "h", POOL, ASSET, total, mode="pull"),
                              "t")
    deadline = latest_timestamp(env.anvil) + 3600
    calls = await open_epoch(env.pool, env.settings, "d", contract=env.contract, epoch=1, deadline=deadline,
                             sweep_to=OWNER, actor="t")
    assert calls["total"] == str(total)
    # the same epoch replays; another one is refused
    assert (await open_epoch(env.pool, env.settings, "d", contract=env.contract, epoch=1, deadline=deadline,
                             sweep_to=OWNER, actor="t"))["root"] == calls["root"]
    with pytest.raises(ClaimsRefused):
        await open_epoch(env.pool, env.settings, "d", contract=env.contract, epoch=2, deadline=deadline,
                         sweep_to=OWNER, actor="t")
    send(env.anvil.url, OWNER, env.contract, calls["create_epoch"])
    send(env.anvil.url, OWNER, env.contract, calls["fund_epoch"], value=int(calls["fund_value"]))

    async with env.pool.acquire() as conn:
        proofs = {h: await proof_of(conn, "d", h) for h in holders}
        dump = (await tree_of(conn, "d")).dump()
    assert dump["format"] == "standard-v1" and len(dump["values"]) == 12

    def claim(h, p=None):
        q = proofs[h]
        return ca.claim(1, q["index"], h, int(q["amount"]), (p or q)["proof"])

    for h in holders[:8]:
        tx(env.anvil, env.contract, claim(h))
    for h in (holders[0], holders[3]):  # twice
        rejected(env.anvil, env.contract, claim(h), "AlreadyClaimed")
    rejected(env.anvil, env.contract, claim(holders[9], proofs[holders[10]]), "InvalidProof")  # another's proof
    rejected(env.anvil, env.contract, ca.claim(1, proofs[holders[9]]["index"], holders[9], 1,
                                               proofs[holders[9]]["proof"]), "InvalidProof")  # wrong amount
    await env.index(mine=4)
    out = await settle(env.pool, env.settings, "d")
    assert sorted(out["settled"]) == sorted(proofs[h]["index"] for h in holders[:8])
    assert (await settle(env.pool, env.settings, "d"))["settled"] == []  # once

    # A claim seen above the final height, then dropped by a reorg: pending, never settled.
    snap = rpc_sync(env.anvil.url, "evm_snapshot")
    tx(env.anvil, env.contract, claim(holders[8]))
    await env.index()
    out = await settle(env.pool, env.settings, "d")
    assert out["pending"] == 1 and out["settled"] == []
    assert rpc_sync(env.anvil.url, "evm_revert", [snap])
    rpc_sync(env.anvil.url, "anvil_mine", ["0x2"])  # the other branch: no claim, longer
    await env.index()
    async with env.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM reorgs WHERE chain = 'anvil'") >= 1
    out = await settle(env.pool, env.settings, "d")
    assert out["pending"] == 0 and out["settled"] == []
    tx(env.anvil, env.contract, claim(holders[8]))  # claimed again on the canonical chain
    await env.index(mine=4)
    out = await settle(env.pool, env.settings, "d")
    assert out["settled"] == [proofs[holders[8]]["index"]]
    async with env.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE idempotency_key LIKE $1",
                                   f"claim:d:{proofs[holders[8]]['index']}:%") == 1

    # After the window: refused on chain; once a final block is past the deadline, the rest expires.
    warp(env.anvil, 3601)
    rejected(env.anvil, env.contract, claim(holders[9]), "ClaimWindowClosed")
    claimed = sum(int(proofs[h]["amount"]) for h in holders[:9])
    pool_before = (await balance_parts(env.pool, POOL, ASSET))["available"]
    await env.index(mine=4)
    out = await settle(env.pool, env.settings, "d")
    assert out["expired"] == 3 and out["closed"]
    assert (await settle(env.pool, env.settings, "d"))["expired"] == 0  # exactly once
    rest = total - claimed
    assert (await balance_parts(env.pool, POOL, ASSET))["available"] == pool_before + rest
    assert (await balance_parts(env.pool, "app:dist.d", ASSET))["final"] == 0
    for h in holders:  # the ledger per recipient: claimed and expired entitlements are all settled
        assert (await balance_parts(env.pool, f"entitlement:d:{h}", ASSET))["final"] == 0
    async with env.pool.acquire() as conn:
        view = await get_distribution(conn, "d")
    assert view["state"] == "closed" and view["shares"]["claimed"]["count"] == 9
    owner_before = balance(env.anvil, OWNER)
    r = tx(env.anvil, env.contract, ca.sweep(1), frm=OWNER)
    fee = int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    assert balance(env.anvil, OWNER) - owner_before + fee == rest  # the sweep is the booked rest, exactly
    assert balance(env.anvil, env.contract) == 0
    for h in holders[:9]:
        assert balance(env.anvil, h) == int(proofs[h]["amount"])


async def test_unclaimed_shares_roll_over_into_the_next_epoch_once(env):
    a, b, c, n = (fresh_address().lower() for _ in range(4))
    await create_snapshot(env.pool, env.settings, SnapshotRequest("s1", "list", ((a, 1), (b, 1), (c, 1))), "t")
    await create_distribution(env.pool, env.settings, DistributionRequest(
        "e1", "s1", POOL, ASSET, 3 * UNIT, mode="pull", unclaimed="rollover"), "t")
    deadline = latest_timestamp(env.anvil) + 600
    calls = await open_epoch(env.pool, env.settings, "e1", contract=env.contract, epoch=11, deadline=deadline,
                             sweep_to=OWNER, actor="t")
    send(env.anvil.url, OWNER, env.contract, calls["create_epoch"])
    send(env.anvil.url, OWNER, env.contract, calls["fund_epoch"], value=int(calls["fund_value"]))
    async with env.pool.acquire() as conn:
        pa = await proof_of(conn, "e1", a)
    tx(env.anvil, env.contract, ca.claim(11, pa["index"], a, int(pa["amount"]), pa["proof"]))
    warp(env.anvil, 601)
    pool_before = (await balance_parts(env.pool, POOL, ASSET))["available"]
    await env.index(mine=4)
    out = await settle(env.pool, env.settings, "e1")
    assert out["expired"] == 2 and out["closed"]
    # rolled over: nothing returns to the pool; the liability stays with e1 until carried
    assert (await balance_parts(env.pool, POOL, ASSET))["available"] == pool_before
    # ... in the entitlements of b and c (a's was claimed), the hub is empty
    assert [(await balance_parts(env.pool, f"entitlement:e1:{r}", ASSET))["final"] for r in (a, b, c)] == \
        [0, UNIT, UNIT]
    assert (await balance_parts(env.pool, "app:dist.e1", ASSET))["final"] == 0
    tx(env.anvil, env.contract, ca.sweep(11), frm=OWNER)  # the owner takes the rest back on chain

    await create_snapshot(env.pool, env.settings, SnapshotRequest("s2", "list", ((b, 1), (n, 1))), "t")
    view, _ = await create_distribution(env.pool, env.settings, DistributionRequest(
        "e2", "s2", POOL, ASSET, 2 * UNIT, mode="pull", carry_from="e1"), "t")
    assert view["carried"] == str(2 * UNIT) and view["recipients"] == 3  # b, n, and c only carried
    async with env.pool.acquire() as conn:
        owed = {r["recipient"]: int(r["amount"]) for r in await conn.fetch(
            "SELECT recipient, amount FROM distribution_shares WHERE distribution_id = 'e2'")}
        rolled = await conn.fetchval("SELECT count(*) FROM distribution_shares WHERE distribution_id = 'e1' "
                                     "AND state = 'rolled'")
    assert owed == {b: 2 * UNIT, n: UNIT, c: UNIT} and rolled == 2
    for r in (b, c):  # carried: e1's entitlements moved to e2's, added to the new shares
        assert (await balance_parts(env.pool, f"entitlement:e1:{r}", ASSET))["final"] == 0
    assert {r: (await balance_parts(env.pool, f"entitlement:e2:{r}", ASSET))["final"] for r in (b, n, c)} == owed
    for hub in ("app:dist.e1", "app:dist.e2"):
        assert (await balance_parts(env.pool, hub, ASSET))["final"] == 0
    with pytest.raises(DistributionRefused) as exc:  # carried once only
        await create_distribution(env.pool, env.settings, DistributionRequest(
            "e3", "s2", POOL, ASSET, UNIT, mode="pull", carry_from="e1"), "t")
    assert exc.value.field == "carry_from" and "already" in exc.value.reason
    # the next epoch pays the carried share on chain
    calls = await open_epoch(env.pool, env.settings, "e2", contract=env.contract, epoch=12,
                             deadline=latest_timestamp(env.anvil) + 600, sweep_to=OWNER, actor="t")
    assert calls["total"] == str(4 * UNIT)
    send(env.anvil.url, OWNER, env.contract, calls["create_epoch"])
    send(env.anvil.url, OWNER, env.contract, calls["fund_epoch"], value=int(calls["fund_value"]))
    async with env.pool.acquire() as conn:
        pb = await proof_of(conn, "e2", b)
    tx(env.anvil, env.contract, ca.claim(12, pb["index"], b, int(pb["amount"]), pb["proof"]))
    assert balance(env.anvil, b) == 2 * UNIT
