"""A pushed distribution on XRPL: the standalone test ledger, real Postgres, the real follower
(daemon hooks) and the XRPL payout worker.

The pool is funded on chain: the USD issuer is a [[ledger.funders]] address whose XRP and USD
payments to the hot wallet are booked to `app:pool`. Shares of an explicit list of r-addresses
are paid as payout requests (key `distribution:<id>:<idx>`), one Payment each, and checked on
the ledger's own balances; pushing again (twice at once, too) and restarting the worker pays
nothing twice. A share for a new account below the base reserve is held before signing with
the reason, stays owed (nothing signed, nothing lost), and is paid once after an operator
funds the account and releases it. Issued currency (USD) shares go over trust lines.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from settlement.distributions.book import DistributionRequest, create_distribution, get_distribution
from settlement.distributions.push import push, sync
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from settlement.payouts.operator import held_payouts, release_batch
from settlement.reconcile.runs import reconcile_once
from tests.integration.settlement.payouts.xrpl.test_pipeline import (  # noqa: F401 (ledger: a fixture)
    CHAIN,
    HOT,
    ISSUER,
    ledger,
    running,
    until,
    xrp_of,
)
from tests.support.config import make_settings
from tests.support.ledger import balance_parts
from tests.support.xrpl import XRP, Driver, wallet

POOL = "app:pool"
NATIVE, USD = f"{CHAIN}:native", f"{CHAIN}:USD"
POOL_XRP = 500 * XRP
POOL_USD = 1_000_000_000  # 1000 USD, 6 decimals


def settings_for(tmp_path, url: str):
    return make_settings(tmp_path, {
        "chains": [{"name": CHAIN, "preset": "xrpl", "rpc": [url], "start_ledger": 1, "poll_interval": 0.05,
                    "wallets": [{"name": "hot", "address": HOT.classic_address, "assets": ["native", "USD"]}]}],
        "ledger": {"assets": [{"chain": CHAIN, "name": "USD", "currency": "USD", "issuer": ISSUER.classic_address,
                               "decimals": 6}],
                   "accounts": [{"code": POOL}],
                   "funders": [{"chain": CHAIN, "address": ISSUER.classic_address, "account": POOL}]},
        "payouts": {"require_balance": True, "poll_interval": 0.05, "max_recipients": 10,
                    "chains": [{"chain": CHAIN, "seed": "env:TEST_XRPL_HOT_SEED", "last_ledger_offset": 10,
                                "retry_wait_seconds": 0, "assets": [{"name": "native"}, {"name": "USD"}]}]},
    })


@pytest.fixture
def funded(ledger):
    """test_pipeline's ledger (its issuer's 1000 USD to the hot wallet, booked to the pool here: the
    issuer is this config's funder), plus the funder's XRP for the pool."""
    server, d = ledger
    d.pay(ISSUER, HOT.classic_address, str(POOL_XRP))
    d.close()
    return server, d


async def pool_funded(pool) -> None:
    for _ in range(600):
        if ((await balance_parts(pool, POOL, NATIVE))["available"] == POOL_XRP
                and (await balance_parts(pool, POOL, USD))["available"] == POOL_USD):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the funder's payments were not booked to {POOL}")


async def shares_of(pool, distribution_id: str) -> dict:
    async with pool.acquire() as conn:
        return (await get_distribution(conn, distribution_id))["shares"]


async def requests_of(pool, distribution_id: str) -> dict[str, dict]:
    async with pool.acquire() as conn:
        return {r["idempotency_key"]: dict(r) for r in await conn.fetch(
            "SELECT id, idempotency_key, recipient, amount, state, reason, from_account FROM payout_requests "
            "WHERE idempotency_key LIKE $1", f"distribution:{distribution_id}:%")}


def payments_to(d: Driver, address: str) -> list[dict]:
    """Payments from the hot wallet to `address` in validated ledgers, by the ledger's own history."""
    return [rec.tx for rec in d.ledger.history.get(address, [])
            if rec.tx["TransactionType"] == "Payment" and rec.tx["Account"] == HOT.classic_address
            and rec.tx["Destination"] == address and rec.ledger_index <= d.ledger.validated.index]


def usd_of(d: Driver, address: str) -> Decimal:
    return sum((Decimal(str(ln.holds(address))) for ln in d.ledger.validated.state.lines_of(address)), Decimal(0))


async def test_xrp_and_usd_shares_are_paid_once_on_the_ledger(funded, pool, tmp_path):
    server, d = funded
    settings = settings_for(tmp_path, server.http_url)
    alice, bob, carol, dave = (wallet(n) for n in (101, 102, 103, 104))
    d.fund(alice, bob, carol, drops=50 * XRP)
    d.close()
    d.trust(bob, ISSUER.classic_address, "500")
    d.trust(carol, ISSUER.classic_address, "500")
    d.close()
    start = {w.classic_address: xrp_of(d, w.classic_address) for w in (alice, bob, carol)}
    # dave has no account yet: his share (above the 1 XRP base reserve) creates it.
    weights = {alice.classic_address: 5, bob.classic_address: 3, carol.classic_address: 2, dave.classic_address: 1}
    total = 110 * XRP + 3  # 3 drops of dust, placed by the seeded largest-remainder tie-break
    usd_total = 100_000_001  # 100.000001 USD

    async with running(settings, pool):
        await pool_funded(pool)
        snap, _ = await create_snapshot(pool, settings, SnapshotRequest("holders", "list", tuple(weights.items())),
                                        "t")
        assert snap["holders"] == 4  # r-addresses kept as given (base58 is case-sensitive)
        await create_snapshot(pool, settings, SnapshotRequest(
            "lines", "list", ((bob.classic_address, 1), (carol.classic_address, 2))), "t")
        await create_distribution(pool, settings, DistributionRequest("x", "holders", POOL, NATIVE, total), "t")
        await create_distribution(pool, settings, DistributionRequest("u", "lines", POOL, USD, usd_total), "t")
        assert (await balance_parts(pool, POOL, NATIVE))["available"] == POOL_XRP - total
        assert (await balance_parts(pool, POOL, USD))["available"] == POOL_USD - usd_total

        # Two pushes at once: every share is requested exactly once between them.
        a, b = await asyncio.gather(push(pool, settings, "x", "t"), push(pool, settings, "x", "t"))
        assert a.requested + b.requested == 4 and a.refused == b.refused == []
        u = await push(pool, settings, "u", "t")
        assert (u.requested, u.refused) == (2, [])
        await until(pool, "SELECT count(*) = 6 FROM payout_requests WHERE state = 'paid'")
        assert await sync(pool, "x") and await sync(pool, "u")

    reqs = await requests_of(pool, "x")
    async with pool.acquire() as conn:
        shares = {r["recipient"]: int(r["amount"]) for r in await conn.fetch(
            "SELECT recipient, amount FROM distribution_shares WHERE distribution_id = 'x' AND state = 'paid'")}
        usd_shares = {r["recipient"]: int(r["amount"]) for r in await conn.fetch(
            "SELECT recipient, amount FROM distribution_shares WHERE distribution_id = 'u' AND state = 'paid'")}
        states = {i: await conn.fetchval("SELECT state FROM distributions WHERE id = $1", i) for i in ("x", "u")}
    assert states == {"x": "paid", "u": "paid"}
    assert set(shares) == set(weights) and sum(shares.values()) == total
    assert await shares_of(pool, "x") == {"paid": {"count": 4, "amount": str(total)}}
    assert await shares_of(pool, "u") == {"paid": {"count": 2, "amount": str(usd_total)}}
    assert sorted(reqs) == [f"distribution:x:{i}" for i in range(4)]
    assert {r["state"] for r in reqs.values()} == {"paid"}
    assert {r["recipient"]: int(r["amount"]) for r in reqs.values()} == shares
    # On the ledger: each recipient received exactly its share, in one Payment.
    for w in (alice, bob, carol):
        assert xrp_of(d, w.classic_address) == start[w.classic_address] + shares[w.classic_address]
    assert xrp_of(d, dave.classic_address) == shares[dave.classic_address]
    usd_paid = {bob.classic_address: "33.333334", carol.classic_address: "66.666667"}
    for w in (alice, bob, carol, dave):
        a = w.classic_address
        assert [p["Amount"] if isinstance(p["Amount"], str) else p["Amount"]["value"]
                for p in payments_to(d, a)] == [str(shares[a]), *([usd_paid[a]] if a in usd_paid else [])]
    assert usd_shares == {bob.classic_address: 33_333_334, carol.classic_address: 66_666_667}
    assert usd_of(d, bob.classic_address) == Decimal("33.333334")
    assert usd_of(d, carol.classic_address) == Decimal("66.666667")

    # Again: pushing finds nothing owed; a restarted worker signs nothing new.
    async with pool.acquire() as conn:
        signed = await conn.fetchval("SELECT count(*) FROM xrpl_payments")
    validated = d.ledger.validated.index
    async with running(settings, pool):
        again = await push(pool, settings, "x", "t")
        assert (again.requested, again.replayed, again.refused) == (0, 0, [])
        assert not await sync(pool, "x")  # paid already: not paid "now" a second time
        while d.ledger.validated.index < validated + 5:  # several ledgers with the worker running
            await asyncio.sleep(0.1)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM xrpl_payments") == signed == 6
        assert await conn.fetchval("SELECT count(*) FROM payout_requests") == 6
    for w in (alice, bob, carol, dave):
        assert len(payments_to(d, w.classic_address)) == 1 + (w.classic_address in usd_paid)
    report = await reconcile_once(settings, pool)
    assert all(r.difference == 0 for r in report.runs[0].results), report.to_json()


async def test_a_share_below_the_reserve_is_held_with_the_reason_then_paid_once(funded, pool, tmp_path):
    server, d = funded
    settings = settings_for(tmp_path, server.http_url)
    alice, erin = wallet(111), wallet(112)  # erin has no account on the ledger
    d.fund(alice, drops=50 * XRP)
    d.close()
    total = 2 * XRP
    async with running(settings, pool):
        await pool_funded(pool)
        await create_snapshot(pool, settings, SnapshotRequest(
            "s", "list", ((alice.classic_address, 3999), (erin.classic_address, 1))), "t")
        await create_distribution(pool, settings, DistributionRequest("tiny", "s", POOL, NATIVE, total), "t")
        out = await push(pool, settings, "tiny", "t")
        assert (out.requested, out.refused) == (2, [])
        reqs = await requests_of(pool, "tiny")
        erin_key = next(k for k, r in reqs.items() if r["recipient"] == erin.classic_address)
        erin_share = int(reqs[erin_key]["amount"])
        assert erin_share == 500  # drops: below the 1 XRP base reserve a new account needs
        await until(pool, "SELECT count(*) = 1 FROM payout_requests WHERE state = 'paid'")
        await until(pool, "SELECT count(*) = 1 FROM payout_requests WHERE state = 'held'")
        assert not await sync(pool, "tiny")
        reqs = await requests_of(pool, "tiny")
        assert reqs[erin_key]["state"] == "held"
        assert "below the base reserve" in reqs[erin_key]["reason"]
        # Nothing signed for erin, nothing arrived; the share is still owed (requested, not paid).
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM xrpl_payments WHERE destination = $1",
                                       erin.classic_address) == 0
            assert await conn.fetchval("SELECT state FROM distributions WHERE id = 'tiny'") == "open"
            held = await held_payouts(conn, CHAIN)
        assert xrp_of(d, erin.classic_address) is None
        assert await shares_of(pool, "tiny") == {
            "paid": {"count": 1, "amount": str(total - erin_share)},
            "requested": {"count": 1, "amount": str(erin_share)}}
        again = await push(pool, settings, "tiny", "t")  # a held share is not requested a second time
        assert (again.requested, again.replayed) == (0, 0)

        # The operator sees why, the account gets funded by someone, the request is released: paid once.
        [h] = held
        d.fund(erin, drops=20 * XRP)
        d.close()
        await release_batch(pool, settings, h["batch_id"], "ops", reason="erin's account exists now")
        await until(pool, "SELECT count(*) = 2 FROM payout_requests WHERE state = 'paid'")
        assert await sync(pool, "tiny")
    assert xrp_of(d, erin.classic_address) == 20 * XRP + erin_share
    assert [p["Amount"] for p in payments_to(d, erin.classic_address)] == [str(erin_share)]
    assert xrp_of(d, alice.classic_address) == 50 * XRP + total - erin_share
    assert await shares_of(pool, "tiny") == {"paid": {"count": 2, "amount": str(total)}}
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payout_requests") == 2
        assert await conn.fetchval("SELECT count(*) FROM xrpl_payments WHERE purpose = 'payout'") == 2
    report = await reconcile_once(settings, pool)
    assert all(r.difference == 0 for r in report.runs[0].results), report.to_json()
