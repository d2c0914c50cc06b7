"""A pushed distribution on anvil: every share paid once through the payout pipeline from the
recipients' entitlement accounts, with the pushing process SIGKILLed at random points."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.followers import make_follower
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.push import push, sync
from settlement.distributions.snapshots import SnapshotRefused, SnapshotRequest, create_snapshot
from settlement.ledger.transfers import Transfer, TransferRefused, create_transfers
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.payouts.operator import cancel_batch
from settlement.payouts.requests import PayoutError, approve_batch, request_payout
from tests.integration.settlement.payouts.evm.test_pipeline import OWNER, deploy_funded_batcher, head, payout_config
from tests.support.batcher import balance, fresh_address
from tests.support.config import make_settings
from tests.support.evm import send
from tests.support.ledger import balance_parts, fund

ROOT = Path(__file__).resolve().parents[4]
POOL = "app:pool"
UNIT = 10**12


class PushEnv:
    def __init__(self, anvil, pool, tmp_path: Path, **payouts) -> None:
        self.anvil, self.pool, self.tmp = anvil, pool, tmp_path
        batcher = deploy_funded_batcher(anvil)
        cfg = payout_config(anvil.url, batcher, head(anvil) + 1, max_recipients=120, **payouts)
        cfg["ledger"] = {"accounts": [{"code": POOL}]}
        self.settings = make_settings(tmp_path, cfg)
        self.follower = make_follower(self.settings.chain("anvil"), pool, self.settings)
        self.worker = EvmPayoutWorker(self.settings, pool, self.settings.payouts.chains[0])

    async def start(self) -> None:
        send(self.anvil.url, OWNER, OWNER, value=1)
        await self.follower.backfill()
        await fund(self.pool, POOL, 10**6 * UNIT, asset="anvil:native")

    async def val(self, sql: str, *args):
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def close(self) -> None:
        await self.follower.close()
        await self.worker.close()


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = PushEnv(anvil, pool, tmp_path)
    await e.start()
    yield e
    await e.close()


async def pay_all(env: PushEnv, n: int) -> None:
    for _ in range(40):
        if await env.val("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == n:
            return
        await env.worker.step()
        await env.worker.step()
        send(env.anvil.url, OWNER, OWNER, value=1)  # a block above, so the batch's is final
        await env.follower.backfill()
    raise AssertionError("payouts did not all confirm")


async def test_push_500_holders_once_across_sigkills(env, db_url):
    rng = random.Random(int(os.environ.get("CS_KILL_SEED", "28")))
    holders = {fresh_address().lower(): rng.randrange(1, 1000) for _ in range(500)}
    await create_snapshot(env.pool, env.settings, SnapshotRequest("h", "list", tuple(holders.items())), "t")
    total = 500 * UNIT + 17
    view, _ = await create_distribution(env.pool, env.settings, DistributionRequest("d", "h", POOL, "anvil:native",
                                                                                    total), "t")
    assert view["recipients"] == 500
    args = [sys.executable, "-m", "tests.integration.settlement.distributions.push_child", db_url,
            str(env.tmp / "chainsettle.toml"), "d"]
    kills = 0
    for _ in range(30):
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout=rng.uniform(0.3, 1.5))
        except asyncio.TimeoutError:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
        break
    assert kills >= 1
    again = await push(env.pool, env.settings, "d", "t")  # nothing left to request
    assert again.requested == 0 and again.refused == []
    assert await env.val("SELECT count(*) FROM payout_requests") == 500
    assert await env.val("SELECT count(*) FROM distribution_shares WHERE state = 'requested'") == 500
    await pay_all(env, 500)
    assert await sync(env.pool, "d")
    async with env.pool.acquire() as conn:
        shares = {r["recipient"]: int(r["amount"]) for r in await conn.fetch(
            "SELECT recipient, amount FROM distribution_shares WHERE state = 'paid'")}
        owed = await conn.fetchval(
            "SELECT COALESCE(-sum(p.amount), 0) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id "
            "WHERE a.code = 'app:dist.d' OR a.code LIKE 'entitlement:d:%'")
        debited = await conn.fetchval(  # each payout was paid from its recipient's own entitlement
            "SELECT count(*) FROM payout_requests WHERE from_account = 'entitlement:d:' || recipient")
    assert len(shares) == 500 and sum(shares.values()) == total and owed == 0 and debited == 500
    for to in rng.sample(sorted(holders), 25):
        assert balance(env.anvil, to) == shares[to]
    assert await env.val("SELECT state FROM distributions WHERE id = 'd'") == "paid"


async def test_push_refuses_pull_mode_and_bad_recipients(env):
    await create_snapshot(env.pool, env.settings, SnapshotRequest("s", "list", (("not-an-address", 1),
                                                                                (fresh_address(), 1))), "t")
    await create_distribution(env.pool, env.settings, DistributionRequest("p", "s", POOL, "anvil:native", 10,
                                                                          mode="pull"), "t")
    with pytest.raises(SnapshotRefused):
        await push(env.pool, env.settings, "p", "t")
    await create_distribution(env.pool, env.settings, DistributionRequest("q", "s", POOL, "anvil:native", 10), "t")
    out = await push(env.pool, env.settings, "q", "t")
    assert out.requested == 1 and [r["recipient"] for r in out.refused] == ["not-an-address"]


async def test_an_entitlement_pays_its_own_share_to_its_own_recipient_once(env):
    a, b = fresh_address().lower(), fresh_address().lower()
    await create_snapshot(env.pool, env.settings, SnapshotRequest("s2", "list", ((a, 1), (b, 3))), "t")
    await create_distribution(env.pool, env.settings, DistributionRequest("e", "s2", POOL, "anvil:native", 400), "t")
    ent = f"entitlement:e:{a}"
    assert (await balance_parts(env.pool, ent, "anvil:native"))["available"] == 100
    with pytest.raises(PayoutError) as exc:  # a share pays its own recipient only
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=b, amount=1, key="x1",
                             from_account=ent)
    assert exc.value.field == "from_account" and a in exc.value.reason
    with pytest.raises(TransferRefused) as texc:  # and takes no app transfer
        await create_transfers(env.pool, env.settings, [Transfer("t1", ent, POOL, "anvil:native", 1)], "t")
    assert texc.value.result == "account_kind"
    await push(env.pool, env.settings, "e", "t")
    assert (await balance_parts(env.pool, ent, "anvil:native"))["available"] == 0
    with pytest.raises(PayoutError) as exc:  # the same share again under another key: nothing is left
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=a, amount=100, key="x2",
                             from_account=ent)
    assert exc.value.field == "amount" and ent in exc.value.reason
    await pay_all(env, 2)
    assert await sync(env.pool, "e")
    assert balance(env.anvil, a) == 100 and balance(env.anvil, b) == 300
    for r in (a, b):
        parts = await balance_parts(env.pool, f"entitlement:e:{r}", "anvil:native")
        assert parts["final"] == 0 and parts["reserved"] == 0


async def test_a_share_whose_payout_was_cancelled_is_owed_again_and_paid_once(anvil, pool, tmp_path):
    env = PushEnv(anvil, pool, tmp_path, assets=[{"name": "native", "approval_threshold": 0}])
    await env.start()
    try:
        a = fresh_address().lower()
        await create_snapshot(pool, env.settings, SnapshotRequest("s3", "list", ((a, 1),)), "t")
        await create_distribution(pool, env.settings, DistributionRequest("c", "s3", POOL, "anvil:native", 50), "t")
        assert (await push(pool, env.settings, "c", "t")).requested == 1
        await env.worker.step()  # a batch that waits for approval: the operator cancels it instead
        first = await env.val("SELECT batch_id FROM payout_batches WHERE state = 'awaiting_approval'")
        await cancel_batch(pool, env.settings, first, "op", reason="wrong batch")
        assert not await sync(pool, "c")
        assert not await sync(pool, "c")  # once
        async with pool.acquire() as conn:
            share = await conn.fetchrow("SELECT state, attempts, payout_key FROM distribution_shares")
            reopened = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'distribution.reopened'")
        assert (share["state"], share["attempts"], share["payout_key"], reopened) == ("owed", 1, None, 1)
        assert (await balance_parts(pool, f"entitlement:c:{a}", "anvil:native"))["available"] == 50
        out = await push(pool, env.settings, "c", "t")  # the next key, from the same entitlement
        assert out.requested == 1
        assert await env.val("SELECT payout_key FROM distribution_shares") == "distribution:c:0:1"
        await env.worker.step()
        second = await env.val("SELECT batch_id FROM payout_batches WHERE state = 'awaiting_approval'")
        await approve_batch(pool, second, "op")
        await pay_all(env, 1)
        assert await sync(pool, "c")
        assert balance(anvil, a) == 50  # paid once
        assert (await balance_parts(pool, f"entitlement:c:{a}", "anvil:native"))["final"] == 0
    finally:
        await env.close()
