"""Snapshots (list, ERC-20, ERC-721 at a final height) and distributions booked in one
transaction through the ledger's transfers. Real Postgres, events written directly."""

from __future__ import annotations

import asyncpg
import pytest

from settlement.distributions.book import (
    DistributionConflict,
    DistributionRefused,
    DistributionRequest,
    create_distribution,
    shares_page,
)
from settlement.distributions.snapshots import (
    SnapshotConflict,
    SnapshotRefused,
    SnapshotRequest,
    create_snapshot,
    snapshot_weights,
)
from tests.integration.settlement.distributions.support import NFT, TOKEN, ZERO, add_transfer, dist_settings
from tests.support.ledger import ASSET, CHAIN, balance_parts, fund, ready_chain

A, B, C, D = ("0x" + x * 20 for x in ("0a", "0b", "0c", "0d"))
HOT = "0x" + "a1" * 20  # ledger_settings' configured wallet
POOL = "app:pool"


@pytest.fixture
async def settings(pool, tmp_path):
    s = dist_settings(tmp_path, accounts=[{"code": POOL}, {"code": "app:dust"}])
    await ready_chain(pool, s, final=100)
    return s


async def weights(pool, sid):
    async with pool.acquire() as conn:
        return dict(await snapshot_weights(conn, sid))


async def test_list_snapshot_replays_and_is_immutable(pool, settings):
    req = SnapshotRequest("s1", "list", (("0xAA" + "00" * 19, 3), ("r2", 1), ("r3", 0)))
    view, created = await create_snapshot(pool, settings, req, "t")
    assert created and view["holders"] == 2 and view["total_weight"] == "4"
    again, created = await create_snapshot(pool, settings, req, "t")
    assert not created and again == view
    with pytest.raises(SnapshotConflict) as exc:
        await create_snapshot(pool, settings, SnapshotRequest("s1", "list", (("r2", 2),)), "t")
    assert exc.value.field == "weights"
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("UPDATE distribution_snapshot_weights SET weight = 9")
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("DELETE FROM distribution_snapshots")
    assert await weights(pool, "s1") == {"0xaa" + "00" * 19: 3, "r2": 1}


async def test_erc20_holders_at_final_height(pool, settings):
    await add_transfer(pool, TOKEN, 10, 0, ZERO, A, value=100)
    await add_transfer(pool, TOKEN, 11, 0, A, B, value=30)
    await add_transfer(pool, TOKEN, 12, 0, B, TOKEN, value=5)  # sent to the contract: excluded
    await add_transfer(pool, TOKEN, 12, 1, A, C, value=70)  # A empties: no weight
    await add_transfer(pool, TOKEN, 11, 1, ZERO, HOT, value=500)  # the app's own configured wallet: excluded
    await add_transfer(pool, TOKEN, 150, 0, B, D, value=25)  # above the final height
    view, _ = await create_snapshot(pool, settings, SnapshotRequest("e11", "erc20", chain=CHAIN, contract=TOKEN,
                                                                    height=11), "t")
    assert await weights(pool, "e11") == {A: 70, B: 30}
    assert view["excluded_wallets"] == [HOT]
    again, created = await create_snapshot(pool, settings, SnapshotRequest("e11", "erc20", chain=CHAIN,
                                                                           contract=TOKEN, height=11), "t")
    assert not created and again == view
    await create_snapshot(pool, settings, SnapshotRequest("e100", "erc20", chain=CHAIN, contract=TOKEN.upper()
                                                          .replace("0X", "0x"), height=100, exclude=(C,)), "t")
    assert await weights(pool, "e100") == {B: 25}
    with pytest.raises(SnapshotRefused) as exc:
        await create_snapshot(pool, settings, SnapshotRequest("e101", "erc20", chain=CHAIN, contract=TOKEN,
                                                              height=101), "t")
    assert exc.value.field == "height" and "above the final height" in exc.value.reason
    with pytest.raises(SnapshotRefused) as exc:
        await create_snapshot(pool, settings, SnapshotRequest("x", "erc721", chain=CHAIN, contract=TOKEN,
                                                              height=10), "t")
    assert exc.value.field == "kind"


async def test_erc721_owners_and_opening(pool, settings, tmp_path):
    for tok, owner in ((1, A), (2, A), (3, B)):
        await add_transfer(pool, NFT, 20, tok, ZERO, owner, token_id=tok)
    await add_transfer(pool, NFT, 30, 0, A, C, token_id=2)
    await add_transfer(pool, NFT, 31, 0, B, ZERO, token_id=3)  # burnt
    await create_snapshot(pool, settings, SnapshotRequest("n25", "erc721", chain=CHAIN, contract=NFT, height=25), "t")
    assert await weights(pool, "n25") == {A: 2, B: 1}
    await create_snapshot(pool, settings, SnapshotRequest("n40", "erc721", chain=CHAIN, contract=NFT, height=40), "t")
    assert await weights(pool, "n40") == {A: 1, C: 1}
    # indexed from a later block: the holders before it must be given
    late = dist_settings(tmp_path / "late", accounts=[{"code": POOL}], nft_start=15)
    with pytest.raises(SnapshotRefused) as exc:
        await create_snapshot(pool, late, SnapshotRequest("n1", "erc721", chain=CHAIN, contract=NFT, height=40), "t")
    assert exc.value.field == "opening"
    await create_snapshot(pool, late, SnapshotRequest("n2", "erc721", chain=CHAIN, contract=NFT, height=40,
                                                      opening=(("9", D), ("2", B))), "t")
    assert await weights(pool, "n2") == {A: 1, C: 1, D: 1}


async def test_distribution_books_total_and_shares_in_one_transaction(pool, settings):
    await create_snapshot(pool, settings, SnapshotRequest("s", "list", ((A, 1), (B, 1), (C, 1), (D, 97))), "t")
    await fund(pool, POOL, 1000)
    req = DistributionRequest("d1", "s", POOL, ASSET, 100, minimum=2, remainder_account="app:dust")
    view, created = await create_distribution(pool, settings, req, "t")
    assert created and view["remainder"] == "3" and view["recipients"] == 1
    assert view["shares"] == {"owed": {"count": 1, "amount": "97"}}
    assert (await balance_parts(pool, POOL))["available"] == 900
    # the hub passes each share on to its recipient's entitlement, in the same ledger transaction set
    assert (await balance_parts(pool, "app:dist.d1"))["final"] == 0
    assert (await balance_parts(pool, f"entitlement:d1:{D}"))["final"] == 97
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_accounts WHERE code LIKE 'entitlement:d1:%'") == 1
    assert (await balance_parts(pool, "app:dust"))["final"] == 3
    again, created = await create_distribution(pool, settings, req, "t")
    assert not created and again == view
    with pytest.raises(DistributionConflict) as exc:
        await create_distribution(pool, settings, DistributionRequest("d1", "s", POOL, ASSET, 101), "t")
    assert exc.value.field == "total"

    v2, _ = await create_distribution(pool, settings, DistributionRequest("d2", "s", POOL, ASSET, 10), "t")
    async with pool.acquire() as conn:
        shares = await shares_page(conn, "d2")
    assert sum(int(s["amount"]) for s in shares) == 10 and [s["index"] for s in shares] == list(range(len(shares)))
    assert {s["recipient"] for s in shares} <= {A, B, C, D}


async def test_refused_distribution_writes_nothing(pool, settings):
    await create_snapshot(pool, settings, SnapshotRequest("s", "list", ((A, 1), (B, 1))), "t")
    await fund(pool, POOL, 5)
    with pytest.raises(DistributionRefused) as exc:
        await create_distribution(pool, settings, DistributionRequest("big", "s", POOL, ASSET, 6), "t")
    assert exc.value.field == "pool_account" and "exceeds available" in exc.value.reason
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM distributions") == 0
        assert await conn.fetchval("SELECT count(*) FROM distribution_shares") == 0
        assert await conn.fetchval("SELECT count(*) FROM ledger_transfers") == 0
    assert (await balance_parts(pool, POOL))["available"] == 5
    # and the same id books once there is enough
    await fund(pool, POOL, 1)
    view, created = await create_distribution(pool, settings, DistributionRequest("big", "s", POOL, ASSET, 6), "t")
    assert created and view["shares"]["owed"]["amount"] == "6"


async def test_feed_kinds_are_extended_not_replaced(pool):
    async with pool.acquire() as conn:
        definition = await conn.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'feed_outbox_kind_check'")
    for kind in ("payout", "batch", "reconciliation", "asset_pause", "payout_control", "invoice", "intent",
                 "distribution", "voucher"):
        assert kind in definition, (kind, definition)


async def test_feed_rows_for_created_and_claimed(pool, settings):
    await create_snapshot(pool, settings, SnapshotRequest("s", "list", ((A, 1), (B, 1))), "t")
    await fund(pool, POOL, 10)
    await create_distribution(pool, settings, DistributionRequest("d", "s", POOL, ASSET, 10), "t")
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT kind, subject, payload FROM feed_outbox WHERE kind = 'distribution'")
    assert [(r["subject"], r["payload"]["event"]) for r in rows] == [("d", "distribution.created")]
