"""distribution.* and voucher.* state changes reach webhooks: the feed_outbox rows the 0024
triggers write, delivered by the real relay to aiohttp receivers on loopback.

Driven by the real code paths on anvil and real Postgres: a pushed distribution (created,
paid), a pulled one (created, claimed per settled claim, expired at the deadline), vouchers
issued then used, revoked and expired (from final events and a final block's time). One
endpoint subscribed to the eight types the issue names receives each change exactly once,
with a valid Standard Webhooks signature, amounts as exact integer strings, in order per
subject; an endpoint subscribed to other types receives none of them.
"""

from __future__ import annotations

import re
import tomllib

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from daemon.followers import make_follower
from delivery import admin
from settlement.distributions import claim_abi as ca
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.claims import open_epoch, proof_of
from settlement.distributions.claims import settle as settle_claims
from settlement.distributions.push import push, sync
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from settlement.distributions.vouchers import VoucherRequest, issue_voucher, request_revoke
from settlement.distributions.vouchers import settle as settle_vouchers
from settlement.payouts.evm.signer import LocalKeySigner
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.payouts.requests import set_kill_switch
from tests.integration.contracts.test_claim_distributor import OWNER, tx, warp
from tests.integration.settlement.distributions.test_claims import ASSET, POOL, UNIT, ClaimEnv
from tests.integration.settlement.payouts.evm.test_pipeline import deploy_funded_batcher, head, payout_config
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import fresh_address, latest_timestamp
from tests.support.config import make_settings
from tests.support.delivery import FAST, SECRET, running_relay, webhook
from tests.support.ledger import fund
from tests.support.receiver import Receiver

TYPES = ["distribution.created", "distribution.paid", "distribution.claimed", "distribution.expired",
         "voucher.issued", "voucher.used", "voucher.expired", "voucher.revoked"]
BIG = 10**30 + 7  # far above 2**64 and float precision: must leave as the exact digits
INTEGER = re.compile(r"^[0-9]+$")


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("WH_SECRET", SECRET)


class DeliveryEnv(ClaimEnv):
    """ClaimEnv's chain and ClaimDistributor, plus a funded PayoutBatcher indexed and paid from by
    the EVM payout worker (push), and two webhook endpoints."""

    def __init__(self, anvil, pool, tmp_path, subscribed: Receiver, other: Receiver) -> None:
        batcher = deploy_funded_batcher(anvil)
        (tmp_path / "chain").mkdir()
        super().__init__(anvil, pool, tmp_path / "chain", accounts=[{"code": POOL, "voucher_cap": str(10 * UNIT)}])
        self.claims_follower = self.follower
        with open(tmp_path / "chain" / "chainsettle.toml", "rb") as f:
            data = tomllib.load(f)
        pay = payout_config(anvil.url, batcher, head(anvil))
        chain = data["chains"][0]
        chain["contracts"] += pay["chains"][0]["contracts"]
        chain["wallets"] += pay["chains"][0]["wallets"]
        data["payouts"] = pay["payouts"]
        data["delivery"] = FAST
        data["deliveries"] = [webhook("dist", subscribed.url, start="earliest", filter={"types": TYPES}),
                              webhook("other", other.url, start="earliest",
                                      filter={"types": ["payout", "payout_control", "distribution.cancelled"]})]
        self.settings = make_settings(tmp_path, data)
        self.follower = make_follower(self.settings.chain("anvil"), pool, self.settings)
        self.worker = EvmPayoutWorker(self.settings, pool, self.settings.payouts.chains[0])

    async def close(self) -> None:
        await self.claims_follower.close()
        await self.follower.close()
        await self.worker.close()

    async def pay_all(self, n: int) -> None:
        for _ in range(40):
            async with self.pool.acquire() as conn:
                if await conn.fetchval("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == n:
                    return
            await self.worker.step()
            await self.worker.step()
            await self.index(mine=4)
        raise AssertionError("payouts did not all confirm")


def bodies(receiver: Receiver) -> list[dict]:
    return [orjson.loads(r.body) for r in receiver.accepted]


async def test_distribution_and_voucher_changes_reach_the_subscribed_webhook_once(anvil, pool, db_url, tmp_path):
    subscribed, other = await Receiver().start(), await Receiver().start()
    env = DeliveryEnv(anvil, pool, tmp_path, subscribed, other)
    try:
        await env.index(mine=4)
        await fund(pool, POOL, BIG + 100 * UNIT, asset=ASSET)
        async with running_relay(env.settings, pool, db_url):
            expected = await drive(env)
            # A marker after everything: once `other` has it, it has been offered every row before it.
            await set_kill_switch(pool, "anvil", True, "marker", "t")
            await subscribed.wait_for(lambda: len(subscribed.first_seen()) >= len(expected), 60)
            await other.wait_for(lambda: any(b["type"] == "payout_control.killed" for b in bodies(other)), 60)
    finally:
        await env.close()
        await subscribed.stop()
        await other.stop()

    got = bodies(subscribed)
    wh = Webhook(SECRET)
    for r in subscribed.accepted + other.accepted:
        wh.verify(r.body, r.headers)  # raises on a bad signature
    # Exactly once: no message twice, no change twice under two ids, nothing else; the
    # subscription's own queue holds exactly these, each delivered in one attempt.
    assert len({b["id"] for b in got}) == len(got)
    queued = await admin.messages(pool, "dist", limit=1000)
    assert sorted(m["msg_id"] for m in queued) == sorted(b["id"] for b in got)
    assert {(m["state"], m["attempts"]) for m in queued} == {("delivered", 1)}
    assert not [m for m in await admin.messages(pool, "other", limit=1000)
                if m["type"].startswith(("distribution.", "voucher."))]
    seen = [(b["type"], b["data"]["id"], b["data"].get("index")) for b in got]
    assert sorted(seen, key=repr) == sorted(expected, key=repr)
    assert {b["type"] for b in got} == set(TYPES)
    # In order per subject (a claimed share's order among its siblings is the settle order).
    for subject in {s for _, s, _ in expected}:
        assert [t for t, s, _ in seen if s == subject] == [t for t, s, _ in expected if s == subject]
    for b in got:
        assert b["type"] == f"{b['data']['event']}" and b["stage"] == b["type"].split(".", 1)[1]
        for field in ("total", "amount"):
            if field in b["data"]:
                assert isinstance(b["data"][field], str) and INTEGER.match(b["data"][field]), b
    by = {(t, s, i): b["data"] for (t, s, i), b in zip(seen, got)}
    assert by[("distribution.created", "big", None)]["total"] == str(BIG)
    assert by[("distribution.paid", "p", None)]["total"] == str(3 * UNIT + 2)
    assert by[("voucher.used", "v1", None)]["amount"] == str(3 * UNIT)
    claimed = [d for (t, _, _), d in by.items() if t == "distribution.claimed"]
    assert sorted(int(d["amount"]) for d in claimed) == sorted(env.claimed_amounts)
    # The other endpoint: live (payouts, the marker) but none of these kinds.
    other_types = [b["type"] for b in bodies(other)]
    assert "payout_control.killed" in other_types and any(t.startswith("payout.") for t in other_types)
    assert not [t for t in other_types if t.startswith(("distribution.", "voucher."))]


async def drive(env: DeliveryEnv) -> list[tuple[str, str, int | None]]:
    """Every state change through the code that makes it; returns (type, subject, index) expected."""
    pool, settings = env.pool, env.settings
    expected: list[tuple[str, str, int | None]] = []

    # Push: created, then paid once every share's payout is.
    a, b = fresh_address().lower(), fresh_address().lower()
    await create_snapshot(pool, settings, SnapshotRequest("ps", "list", ((a, 1), (b, 2))), "t")
    await create_distribution(pool, settings, DistributionRequest("p", "ps", POOL, ASSET, 3 * UNIT + 2), "t")
    assert (await push(pool, settings, "p", "t")).requested == 2
    await env.pay_all(2)  # the EVM payout worker, confirmed from final PayoutBatcher events
    assert await sync(pool, "p")
    assert not await sync(pool, "p")
    expected += [("distribution.created", "p", None), ("distribution.paid", "p", None)]
    # A total far above 2**64 (never pushed: only its creation is delivered).
    await create_distribution(pool, settings, DistributionRequest("big", "ps", POOL, ASSET, BIG), "t")
    expected.append(("distribution.created", "big", None))

    # Pull: created; two of three holders claim (settled from final Claimed events); the third expires.
    holders = [fresh_address().lower() for _ in range(3)]
    await create_snapshot(pool, settings, SnapshotRequest("cs", "list", tuple((h, 1) for h in holders)), "t")
    await create_distribution(pool, settings, DistributionRequest("d", "cs", POOL, ASSET, 3 * UNIT + 1,
                                                                  mode="pull"), "t")
    expected.append(("distribution.created", "d", None))
    now = latest_timestamp(env.anvil)
    calls = await open_epoch(pool, settings, "d", contract=env.contract, epoch=1, deadline=now + 600,
                             sweep_to=OWNER, actor="t")
    tx(env.anvil, env.contract, bytes.fromhex(calls["create_epoch"][2:]), frm=OWNER)
    tx(env.anvil, env.contract, bytes.fromhex(calls["fund_epoch"][2:]), frm=OWNER, value=int(calls["fund_value"]))
    env.claimed_amounts = []
    async with pool.acquire() as conn:
        proofs = [await proof_of(conn, "d", h) for h in holders[:2]]
    for h, q in zip(holders, proofs):
        tx(env.anvil, env.contract, ca.claim(1, q["index"], h, int(q["amount"]), q["proof"]))
        env.claimed_amounts.append(int(q["amount"]))
    await env.index(mine=4)
    assert sorted((await settle_claims(pool, settings, "d"))["settled"]) == sorted(q["index"] for q in proofs)
    expected += [("distribution.claimed", "d", q["index"]) for q in proofs]

    # Vouchers: v1 used, v2 revoked, v3 expires (by a final block's time).
    signer = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1].removeprefix("0x")))
    chain_id = int(env.anvil.rpc("eth_chainId", []), 16)
    vs = {}
    for vid, amount, before in (("v1", 3 * UNIT, now + 3600), ("v2", 2 * UNIT, now + 3600), ("v3", UNIT, now + 120)):
        vs[vid], _ = await issue_voucher(pool, settings, signer, VoucherRequest(
            vid, POOL, ASSET, fresh_address().lower(), amount, now - 60, before, env.contract),
            chain_id=chain_id, actor="t")
    tx(env.anvil, env.contract, ca.fund_vouchers(ca.NATIVE, 10 * UNIT), frm=OWNER, value=10 * UNIT)
    v1 = vs["v1"]
    tx(env.anvil, env.contract, ca.redeem(ca.Voucher(bytes.fromhex(v1["nonce"][2:]), v1["recipient"], ca.NATIVE,
                                                     int(v1["amount"]), v1["valid_after"], v1["valid_before"]),
                                          bytes.fromhex(v1["signature"][2:])))
    revoke = await request_revoke(pool, "v2", "t")
    tx(env.anvil, env.contract, bytes.fromhex(revoke["revoke_calldata"][2:]), frm=OWNER)
    await env.index(mine=4)
    assert await settle_vouchers(pool, settings, "anvil") == {"used": ["v1"], "revoked": ["v2"], "expired": []}

    # Past the voucher's validity and the claim window: both expire, once.
    warp(env.anvil, 601)
    await env.index(mine=4)
    assert await settle_vouchers(pool, settings, "anvil") == {"used": [], "revoked": [], "expired": ["v3"]}
    out = await settle_claims(pool, settings, "d")
    assert out["expired"] == 1 and out["closed"]
    assert (await settle_claims(pool, settings, "d"))["expired"] == 0
    expected += [("voucher.issued", v, None) for v in ("v1", "v2", "v3")]
    expected += [("voucher.used", "v1", None), ("voucher.revoked", "v2", None), ("voucher.expired", "v3", None),
                 ("distribution.expired", "d", None)]
    return expected
