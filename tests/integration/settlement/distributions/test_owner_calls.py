"""The ClaimDistributor owner's calls sent by the daemon itself, on anvil and real Postgres.

The contract is deployed by the chain's payout SENDER (so it is the owner); the payout
worker of the chain sends the queued calls through the same nonce allocator and tracking
as batches, each once, each after its predecessor's receipt is FINAL: an ERC-20 epoch is
created, approved and funded, holders claim, after the deadline the sweep goes out once
and equals the unclaimed rest; a revoke makes the voucher revoked (settled by the existing
code from the final VoucherRevoked); a worker that dies between storing and broadcasting
leaves bytes that are broadcast as they are, never signed again; a contract owned by
another address is refused naming `contract`, with the calldata still given."""

from __future__ import annotations

import pytest

from daemon.followers import make_follower
from settlement.distributions import claim_abi as ca
from settlement.distributions import vouchers
from settlement.distributions.book import DistributionRequest, create_distribution
from settlement.distributions.claims import proof_of, settle
from settlement.distributions.owner import OwnerRefused, cancel_call, retry_call, send_epoch, send_revoke
from settlement.distributions.owner_send import OwnerCalls, refresh_owner_gauges
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot
from settlement.payouts import metrics as pm
from settlement.payouts.evm.worker import EvmPayoutWorker
from tests.integration.contracts.test_claim_distributor import tx, warp
from tests.integration.settlement.payouts.evm.test_pipeline import OWNER, deploy_funded_batcher, head, payout_config
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import balance, fresh_address, latest_timestamp
from tests.support.config import make_settings
from tests.support.evm import call, deploy, deploy_token, send, token_balance, token_transfer
from tests.support.ledger import fund

SENDER = DEV_ACCOUNTS[2][0].lower()
SIGNER = DEV_ACCOUNTS[1][0]
POOL = "app:pool"
UNIT = 10**15


class OwnerEnv:
    def __init__(self, anvil, pool, tmp_path, api: dict | None = None) -> None:
        self.anvil, self.pool = anvil, pool
        batcher = deploy_funded_batcher(anvil)
        self.token = deploy_token(anvil.url).lower()
        token_transfer(anvil.url, self.token, OWNER, SENDER, 10**24)  # the owner funds epochs from its own tokens
        self.contract = deploy(anvil.url, "ClaimDistributor", SIGNER, frm=SENDER).lower()
        self.foreign = deploy(anvil.url, "ClaimDistributor", SIGNER, frm=OWNER).lower()  # owned by another
        start = head(anvil) + 1
        cfg = payout_config(anvil.url, batcher, start)
        chain = cfg["chains"][0]
        chain["contracts"] += [{"name": "claims", "address": self.contract, "abi": "claim_distributor",
                                "start_block": start},
                               {"name": "tok", "address": self.token, "abi": "erc20", "start_block": start}]
        chain["wallets"][1]["assets"] = ["native", "tok"]
        cfg["ledger"] = {"accounts": [{"code": POOL}]}
        if api is not None:
            cfg["api"] = {"rate_limit_per_second": 1000.0, "rate_limit_burst": 1000, **api}
        self.settings = make_settings(tmp_path, cfg)
        self.follower = make_follower(self.settings.chain("anvil"), pool, self.settings)
        self.worker = self.new_worker()

    def new_worker(self) -> EvmPayoutWorker:
        w = EvmPayoutWorker(self.settings, self.pool, self.settings.payouts.chains[0])
        w.after_track.append(OwnerCalls(self.pool, w.sender).step)  # as daemon/payouts.py wires it
        return w

    async def start(self) -> None:
        send(self.anvil.url, OWNER, OWNER, value=1)
        await self.follower.backfill()
        await fund(self.pool, POOL, 10**6 * UNIT, asset="anvil:native")
        await fund(self.pool, POOL, 10**6 * UNIT, asset="anvil:tok")

    async def val(self, sql: str, *args):
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def rows(self, sql: str, *args):
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def states(self) -> dict[str, str]:
        return {r["id"]: r["state"] for r in await self.rows("SELECT id, state FROM distribution_owner_calls")}

    async def run_until(self, done, rounds: int = 30) -> None:
        """Worker steps, a block on top (so the last one's block is final at depth 1), index; until `done`."""
        for _ in range(rounds):
            await self.worker.step()
            send(self.anvil.url, OWNER, OWNER, value=1)
            await self.follower.backfill()
            if await done():
                return
        raise AssertionError(f"owner calls did not get there: {await self.states()}")

    async def close(self) -> None:
        await self.follower.close()
        await self.worker.close()


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = OwnerEnv(anvil, pool, tmp_path)
    await e.start()
    yield e
    await e.close()


async def pull(env: OwnerEnv, id_: str, asset: str, holders: list[str], total: int) -> None:
    await create_snapshot(env.pool, env.settings, SnapshotRequest(f"s{id_}", "list", tuple((h, 1) for h in holders)),
                          "t")
    await create_distribution(env.pool, env.settings, DistributionRequest(id_, f"s{id_}", POOL, asset, total,
                                                                          mode="pull"), "t")


async def test_erc20_epoch_created_funded_claimed_and_swept_once(env):
    holders = [fresh_address().lower() for _ in range(4)]
    total = 4 * UNIT + 3
    await pull(env, "d", "anvil:tok", holders, total)
    sweep_to = fresh_address().lower()
    deadline = latest_timestamp(env.anvil) + 3600
    out = await send_epoch(env.pool, env.settings, "d", contract=env.contract, epoch=7, deadline=deadline,
                           sweep_to=sweep_to, auto_sweep=True, actor="t")
    assert [c["id"] for c in out["owner_calls"]] == ["epoch:d:create", "epoch:d:approve", "epoch:d:fund"]
    assert out["owner_calls"][1]["to"] == env.token and out["owner_calls"][2]["value"] == "0"
    again = await send_epoch(env.pool, env.settings, "d", contract=env.contract, epoch=7, deadline=deadline,
                             sweep_to=sweep_to, auto_sweep=True, actor="t")  # replays: queued once
    assert [c["id"] for c in again["owner_calls"]] == [c["id"] for c in out["owner_calls"]]
    assert await env.val("SELECT count(*) FROM distribution_owner_calls") == 3

    async def funded() -> bool:
        return (await env.states())["epoch:d:fund"] == "confirmed"

    await env.run_until(funded)
    assert token_balance(env.anvil.url, env.token, env.contract) == total
    # Each sent once, each only after its predecessor was confirmed from a final receipt.
    assert await env.val("SELECT count(*) FROM evm_txs WHERE purpose = 'owner_call'") == 3
    audit = {(r["action"], r["subject"]): r["id"] for r in await env.rows(
        "SELECT id, action, subject FROM audit_log WHERE action LIKE 'owner_call.%'")}
    for prev, nxt in (("create", "approve"), ("approve", "fund")):
        assert audit[("owner_call.confirmed", f"owner_call:epoch:d:{prev}")] < \
            audit[("owner_call.sent", f"owner_call:epoch:d:{nxt}")]
    calls = {r["id"]: r for r in await env.rows("SELECT * FROM distribution_owner_calls")}
    final = await env.val("SELECT final_number FROM chain_state WHERE chain = 'anvil'")
    assert all(c["block_number"] <= final and c["tx_hash"] for c in calls.values())
    mined = await env.rows("SELECT owner_call_id, tx_hash, final, receipt_status FROM evm_txs "
                           "WHERE purpose = 'owner_call'")
    assert all(m["final"] and m["receipt_status"] == 1 and calls[m["owner_call_id"]]["tx_hash"] == m["tx_hash"]
               for m in mined)

    # Claims then work on chain.
    async with env.pool.acquire() as conn:
        proofs = {h: await proof_of(conn, "d", h) for h in holders}
    for h in holders[:2]:
        q = proofs[h]
        tx(env.anvil, env.contract, ca.claim(7, q["index"], h, int(q["amount"]), q["proof"]))
        assert token_balance(env.anvil.url, env.token, h) == int(q["amount"])

    # After the deadline (a final block past it) the distribution closes; the sweep is queued and sent once.
    warp(env.anvil, 3601)
    send(env.anvil.url, OWNER, OWNER, value=1)
    await env.follower.backfill()
    assert (await settle(env.pool, env.settings, "d"))["closed"]

    async def swept() -> bool:
        return (await env.states()).get("epoch:d:sweep") == "confirmed"

    await env.run_until(swept)
    for _ in range(3):
        await env.worker.step()
    rest = total - sum(int(proofs[h]["amount"]) for h in holders[:2])
    assert token_balance(env.anvil.url, env.token, sweep_to) == rest
    assert token_balance(env.anvil.url, env.token, env.contract) == 0
    assert await env.val("SELECT count(*) FROM distribution_owner_calls WHERE kind = 'sweep'") == 1
    assert await env.val("SELECT count(*) FROM evm_txs WHERE owner_call_id = 'epoch:d:sweep'") == 1
    assert await env.val("SELECT count(*) FROM final_events WHERE event = 'Swept' AND address = $1",
                         env.contract) == 1


async def test_revoke_sent_by_the_daemon_settles_the_voucher_revoked(env):
    signer, chain_id = await vouchers.voucher_signer(env.pool, env.settings, "anvil")
    now = latest_timestamp(env.anvil)
    req = vouchers.VoucherRequest("v1", POOL, "anvil:native", fresh_address(), 5 * UNIT, now - 10, now + 86400,
                                  env.contract)
    v, _ = await vouchers.issue_voucher(env.pool, env.settings, signer, req, chain_id=chain_id, actor="t")
    out = await send_revoke(env.pool, env.settings, "v1", "t")
    assert out["owner_call"]["id"] == "voucher:v1:revoke" and out["revoke_requested"]
    assert out["owner_call"]["calldata"] == out["revoke_calldata"]

    async def revoked() -> bool:
        await vouchers.settle(env.pool, env.settings, "anvil")
        return (await env.val("SELECT state FROM distribution_vouchers WHERE id = 'v1'") == "revoked"
                and (await env.states())["voucher:v1:revoke"] == "confirmed")

    await env.run_until(revoked)
    assert await env.val("SELECT count(*) FROM evm_txs WHERE owner_call_id = 'voucher:v1:revoke'") == 1
    nonce = bytes.fromhex(v["nonce"][2:])
    state = call(env.anvil.url, env.contract, "voucherState(bytes32)", ["bytes32"], [nonce])
    assert int(state, 16) == 2  # revoked on chain, by the daemon's own transaction


async def test_a_worker_killed_between_store_and_broadcast_does_not_send_twice(env):
    holders = [fresh_address().lower() for _ in range(3)]
    await pull(env, "k", "anvil:native", holders, 3 * UNIT)
    await send_epoch(env.pool, env.settings, "k", contract=env.contract, epoch=9,
                     deadline=latest_timestamp(env.anvil) + 3600, sweep_to=SENDER, auto_sweep=False, actor="t")

    class Killed(BaseException):
        pass

    async def die(*_args) -> None:
        raise Killed  # the process ends after the commit, before any node saw the bytes

    env.worker.sender.broadcast = die
    with pytest.raises(Killed):
        await env.worker.step()
    stored = await env.rows("SELECT id, tx_hash, raw, state FROM evm_txs WHERE owner_call_id = 'epoch:k:create'")
    assert len(stored) == 1 and stored[0]["state"] == "signed"
    assert (await env.states())["epoch:k:create"] == "sent"
    assert env.anvil.rpc("eth_getTransactionByHash", [stored[0]["tx_hash"]]) is None  # never on the wire
    await env.worker.close()
    env.worker = env.new_worker()  # the restarted process

    async def funded() -> bool:
        return (await env.states())["epoch:k:fund"] == "confirmed"

    await env.run_until(funded)
    after = await env.rows("SELECT tx_hash, raw FROM evm_txs WHERE owner_call_id = 'epoch:k:create'")
    assert [(r["tx_hash"], r["raw"]) for r in after] == [(stored[0]["tx_hash"], stored[0]["raw"])]  # rebroadcast
    assert await env.val("SELECT sends FROM distribution_owner_calls WHERE id = 'epoch:k:create'") == 1
    assert balance(env.anvil, env.contract) == 3 * UNIT
    # Not queued twice either: the key is unique, a second queueing replays the first.
    assert await env.val("SELECT count(*) FROM distribution_owner_calls WHERE distribution_id = 'k'") == 2
    assert await env.val("SELECT count(*) FROM distribution_owner_calls WHERE kind = 'sweep'") == 0  # auto_sweep off


async def test_funding_waits_while_the_asset_is_paused(env):
    from settlement.ledger.pauses import pause_asset, resolve_pause

    await pull(env, "p", "anvil:native", [fresh_address().lower()], UNIT)
    async with env.pool.acquire() as conn:
        await pause_asset(conn, "anvil:native", "reconciliation mismatch", "test")
    await send_epoch(env.pool, env.settings, "p", contract=env.contract, epoch=21,
                     deadline=latest_timestamp(env.anvil) + 3600, sweep_to=SENDER, auto_sweep=True, actor="t")

    async def created() -> bool:
        return (await env.states())["epoch:p:create"] == "confirmed"

    await env.run_until(created)
    for _ in range(3):
        await env.worker.step()
    assert (await env.states())["epoch:p:fund"] == "queued"  # no value leaves while the asset is paused
    await resolve_pause(env.pool, "anvil:native", "ops", "checked")

    async def funded() -> bool:
        return (await env.states())["epoch:p:fund"] == "confirmed"

    await env.run_until(funded)
    assert balance(env.anvil, env.contract) == UNIT


async def test_a_contract_owned_by_another_is_refused_naming_contract(env):
    await pull(env, "f", "anvil:native", [fresh_address().lower()], UNIT)
    with pytest.raises(OwnerRefused) as exc:
        await send_epoch(env.pool, env.settings, "f", contract=env.foreign, epoch=1,
                         deadline=latest_timestamp(env.anvil) + 600, sweep_to=SENDER, auto_sweep=True, actor="t")
    assert exc.value.field == "contract" and SENDER in exc.value.reason and OWNER.lower() in exc.value.reason
    assert exc.value.calls["create_epoch"].startswith("0x") and exc.value.calls["fund_value"] == str(UNIT)
    assert await env.val("SELECT count(*) FROM distribution_owner_calls") == 0
    key = DEV_ACCOUNTS[2][1][2:]
    assert key not in exc.value.reason


async def test_a_failed_call_is_retried_or_cancelled_by_an_operator(env):
    await pull(env, "x", "anvil:native", [fresh_address().lower()], UNIT)
    past = latest_timestamp(env.anvil) - 10  # createEpoch refuses a deadline already passed: BadEpoch
    await send_epoch(env.pool, env.settings, "x", contract=env.contract, epoch=3, deadline=past, sweep_to=SENDER,
                     auto_sweep=True, actor="t")
    await env.worker.step()
    row = await env.rows("SELECT * FROM distribution_owner_calls WHERE id = 'epoch:x:create'")
    assert row[0]["state"] == "failed" and "BadEpoch" in row[0]["reason"]
    assert await env.val("SELECT count(*) FROM evm_txs WHERE purpose = 'owner_call'") == 0  # nothing signed
    assert (await env.states())["epoch:x:fund"] == "queued"  # blocked behind it
    async with env.pool.acquire() as conn:
        await refresh_owner_gauges(conn, ["anvil"])
    assert pm.OWNER_CALLS.labels("anvil", "failed")._value.get() == 1
    assert (await retry_call(env.pool, "epoch:x:create", "ops", "try again"))["state"] == "queued"
    await env.worker.step()
    assert (await env.states())["epoch:x:create"] == "failed"
    with pytest.raises(OwnerRefused) as exc:
        await retry_call(env.pool, "epoch:x:fund", "ops")
    assert exc.value.code == "conflict"
    assert (await cancel_call(env.pool, "epoch:x:create", "ops", "wrong deadline"))["state"] == "cancelled"
    fund = (await env.rows("SELECT * FROM distribution_owner_calls WHERE id = 'epoch:x:fund'"))[0]
    assert fund["state"] == "cancelled" and fund["reason"] == "cancelled with epoch:x:create: wrong deadline"
    with pytest.raises(OwnerRefused):  # nothing left to cancel
        await cancel_call(env.pool, "epoch:x:fund", "ops")
    await env.pool.execute("UPDATE distributions SET state = 'closed' WHERE id = 'x'")
    await env.worker.step()  # closed, but never funded: no sweep is queued
    assert "epoch:x:sweep" not in await env.states()
    actions = [r["action"] for r in await env.rows(
        "SELECT action FROM audit_log WHERE subject LIKE 'owner_call:epoch:x:%' ORDER BY id")]
    assert actions.count("owner_call.failed") == 2 and "owner_call.retry" in actions
    assert actions.count("owner_call.cancel") == 2
    async with env.pool.acquire() as conn:
        await refresh_owner_gauges(conn, ["anvil"])
    assert pm.OWNER_CALLS.labels("anvil", "failed")._value.get() == 0


async def test_admin_api_sends_lists_retries_and_cancels(anvil, pool, tmp_path, monkeypatch):
    from tests.integration.api.test_admin import AUTH, TOKEN
    from tests.support.api_data import client_for

    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    env = OwnerEnv(anvil, pool, tmp_path, api={"admin_token": "env:CS_TEST_ADMIN_TOKEN"})
    await env.start()
    try:
        await pull(env, "a", "anvil:native", [fresh_address().lower()], UNIT)
        body = {"contract": env.foreign, "epoch": "4", "deadline": latest_timestamp(env.anvil) - 10,
                "sweep_to": SENDER, "send": True}
        async with client_for(env.settings, pool, headers=AUTH) as client:
            r = await client.post("/v1/admin/distributions/a/epoch", json=body)
            assert r.status == 422 and (await r.json())["field"] == "contract"
            r = await client.post("/v1/admin/distributions/a/epoch", json={**body, "contract": env.contract})
            assert r.status == 422  # the epoch is fixed on the foreign contract by the first call (open_epoch)
            await pull(env, "b", "anvil:native", [fresh_address().lower()], UNIT)
            r = await client.post("/v1/admin/distributions/b/epoch", json={**body, "contract": env.contract})
            out = await r.json()
            assert r.status == 200 and [c["state"] for c in out["owner_calls"]] == ["queued", "queued"], out
            await env.worker.step()  # the deadline is past: createEpoch's simulation reverts, nothing is signed
            r = await client.get("/v1/admin/owner-calls?state=failed")
            failed = (await r.json())["owner_calls"]
            assert [c["id"] for c in failed] == ["epoch:b:create"] and "BadEpoch" in failed[0]["reason"]
            r = await client.post("/v1/admin/owner-calls/epoch:b:create/retry", json={"reason": "once more"})
            assert r.status == 200 and (await r.json())["state"] == "queued"
            r = await client.post("/v1/admin/owner-calls/epoch:b:create/retry")
            assert r.status == 409
            r = await client.post("/v1/admin/owner-calls/epoch:b:fund/cancel")
            assert r.status == 200 and (await r.json())["state"] == "cancelled"
            r = await client.post("/v1/admin/owner-calls/epoch:zz:fund/cancel")
            assert r.status == 404
            r = await client.get("/v1/admin/owner-calls", headers={"Authorization": "Bearer nope"})
            assert r.status in (401, 403)
            text = await (await client.get("/v1/admin/owner-calls")).text()
            assert DEV_ACCOUNTS[2][1][2:] not in text and DEV_ACCOUNTS[1][1][2:] not in text
    finally:
        await env.close()


async def test_cli_send_refusal_prints_calldata_and_owner_calls_lists(env, db_url, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[4]
    text = (tmp_path / "chainsettle.toml").read_text()
    (tmp_path / "cli.toml").write_text(f'[database]\nurl = "{db_url}"\n\n' + text.replace(
        '[database]\nurl = "postgresql://unused"\n', ""))
    await pull(env, "c", "anvil:native", [fresh_address().lower()], UNIT)
    base = [sys.executable, "-m", "daemon.cli", "--config", str(tmp_path / "cli.toml")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(root)})

    deadline = str(latest_timestamp(env.anvil) + 600)
    out = run("distributions", "epoch", "c", "--contract", env.foreign, "--epoch", "5", "--deadline", deadline,
              "--sweep-to", SENDER, "--send")
    assert out.returncode == 1 and "contract: owner() of" in out.stderr, out.stderr
    assert json.loads(out.stdout)["create_epoch"].startswith("0x")  # still printed for the owner to send
    assert DEV_ACCOUNTS[2][1][2:] not in out.stdout + out.stderr
    listed = run("distributions", "owner-calls")
    assert listed.returncode == 0 and json.loads(listed.stdout) == {"owner_calls": []}, listed.stderr
    await pull(env, "c2", "anvil:native", [fresh_address().lower()], UNIT)
    out = run("distributions", "epoch", "c2", "--contract", env.contract, "--epoch", "6", "--deadline", deadline,
              "--sweep-to", SENDER, "--send", "--no-auto-sweep")
    assert out.returncode == 0 and not json.loads(out.stdout)["auto_sweep"], out.stderr
    listed = json.loads(run("distributions", "owner-calls", "--state", "queued").stdout)["owner_calls"]
    assert [c["id"] for c in listed] == ["epoch:c2:create", "epoch:c2:fund"]
    out = run("distributions", "owner-calls", "cancel", "epoch:c2:fund", "--reason", "not yet")
    assert out.returncode == 0 and json.loads(out.stdout)["state"] == "cancelled"
    out = run("distributions", "owner-calls", "retry", "epoch:c2:create")
    assert out.returncode == 1 and "id:" in out.stderr
