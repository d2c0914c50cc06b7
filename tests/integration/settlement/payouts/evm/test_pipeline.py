"""The payout pipeline end to end on anvil and real Postgres:
request -> batch -> sign -> send -> indexed -> confirmed -> ledger postings,
plus idempotency, approval, kill switch and dry run.

The worker is driven step by step and the follower by `backfill`, so each
test controls exactly when a batch is cut, sent and seen final.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from daemon.followers import make_follower
from settlement.ledger.books import Posting, post_transaction
from settlement.payouts import requests as preq
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.payouts.requests import IdempotencyConflict, PayoutError, request_payout
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import balance, fresh_address, is_executed
from tests.support.config import evm_chain, make_settings
from tests.support.evm import deploy, send

OWNER = DEV_ACCOUNTS[0][0]
SIGNER_KEY = DEV_ACCOUNTS[1][1]
SIGNER = DEV_ACCOUNTS[1][0]
ETHER = 10**18
GWEI = 10**9


def payout_config(url: str, batcher: str, start: int, *, sender: tuple[str, str] = DEV_ACCOUNTS[2], **payouts) -> dict:
    """Config of one anvil chain with the batcher indexed, and the env the keys come from."""
    os.environ["CS_TEST_SIGNER_KEY"] = SIGNER_KEY
    os.environ["CS_TEST_SENDER_KEY"] = sender[1]
    assets = payouts.pop("assets", [{"name": "native"}])
    chain_payouts = {
        "chain": "anvil", "batcher": batcher, "signer": {"key": "env:CS_TEST_SIGNER_KEY"},
        "sender": {"key": "env:CS_TEST_SENDER_KEY"}, "max_fee_per_gas": payouts.pop("max_fee_per_gas", 100 * GWEI),
        "assets": assets,
    }
    for k in ("kill_switch", "max_priority_fee_per_gas"):
        if k in payouts:
            chain_payouts[k] = payouts.pop(k)
    return {
        "database": {"url": "postgresql://unused"},
        "chains": [evm_chain(
            "anvil", url, finality_depth=1, poll_interval=0.2, start_block=start,
            contracts=[{"name": "batcher", "address": batcher, "abi": "payout_batcher", "start_block": start}],
            wallets=[{"name": "batcher", "address": batcher, "assets": ["native"]},
                     {"name": "sender", "address": sender[0], "assets": ["native"]}],
        )],
        "payouts": {"poll_interval": 0.1, "bump_interval_seconds": 3600, **payouts, "chains": [chain_payouts]},
    }


def deploy_funded_batcher(anvil, funds: int = 100 * ETHER) -> str:
    batcher = deploy(anvil.url, "PayoutBatcher", OWNER, SIGNER)
    send(anvil.url, OWNER, batcher, value=funds)
    return to_checksum_address(batcher).lower()


def head(anvil) -> int:
    return int(anvil.rpc("eth_blockNumber", []), 16)


async def credit_users(pool, chain: str, amounts: dict[str, int], asset: str = "native") -> None:
    """What the ledger owes each user, as a manual entry at the final height."""
    async with pool.acquire() as conn:
        final = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = $1", chain)
        aid = f"{chain}:{asset}"
        postings = [Posting(preq.user_account(chain, a), aid, -v) for a, v in amounts.items()]
        postings.append(Posting(f"adjustment:{chain}:seed", aid, sum(amounts.values())))
        await post_transaction(conn, key=f"seed:{os.urandom(8).hex()}", cause_kind="manual",
                               cause={"why": "test seed"}, chain=chain, block_number=final, postings=postings,
                               author="test", reason="seed user balances")


class Env:
    def __init__(self, anvil, pool, tmp_path: Path, **payouts) -> None:
        self.anvil = anvil
        self.pool = pool
        self.batcher = deploy_funded_batcher(anvil)
        start = head(anvil) + 1
        api = payouts.pop("api", None)
        cfg = payout_config(anvil.url, self.batcher, start, **payouts)
        if api is not None:
            cfg["api"] = api
        self.settings = make_settings(tmp_path, cfg)
        self.cfg = self.settings.chain("anvil")
        self.follower = make_follower(self.cfg, pool, self.settings)
        self.worker = EvmPayoutWorker(self.settings, pool, self.settings.payouts.chains[0])

    async def start(self) -> None:
        send(self.anvil.url, OWNER, OWNER, value=1)  # a block for the follower to start from
        await self.index()

    async def index(self) -> None:
        await self.follower.backfill()

    async def close(self) -> None:
        await self.follower.close()
        await self.worker.close()

    async def fetch(self, sql: str, *args):
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)

    async def val(self, sql: str, *args):
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path)
    await e.start()
    yield e
    await e.close()


async def test_request_to_confirmed_with_ledger_postings(env):
    recipients = {fresh_address().lower(): (i + 1) * 10**15 for i in range(5)}
    await credit_users(env.pool, "anvil", recipients)
    for i, (to, amount) in enumerate(recipients.items()):
        _, created = await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to,
                                          amount=amount, key=f"k{i}")
        assert created
    batcher_before = balance(env.anvil, env.batcher)
    await env.worker.step()
    batches = await env.fetch("SELECT * FROM payout_batches")
    assert len(batches) == 1 and batches[0]["state"] == "signed" and batches[0]["item_count"] == 5
    txs = await env.fetch("SELECT * FROM evm_txs")
    assert len(txs) == 1 and txs[0]["state"] == "broadcast" and txs[0]["raw"].startswith("0x02")
    # Not final in the index yet: nothing is confirmed or booked.
    assert await env.val("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == 0
    await env.worker.step()  # sees the receipt
    assert await env.val("SELECT state FROM evm_txs") == "mined"
    await env.index()
    batch = (await env.fetch("SELECT * FROM payout_batches"))[0]
    assert batch["state"] == "confirmed" and batch["executed_tx"] == txs[0]["tx_hash"]
    assert is_executed(env.anvil, env.batcher, bytes.fromhex(batch["batch_id"][2:]))
    assert await env.val("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == 5
    for to, amount in recipients.items():
        assert balance(env.anvil, to) == amount
        owed = await env.val(
            "SELECT COALESCE(-sum(p.amount), 0) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id "
            "WHERE a.code = $1", preq.user_account("anvil", to))
        assert owed == 0
    assert balance(env.anvil, env.batcher) == batcher_before - sum(recipients.values())
    booked = await env.fetch(
        "SELECT t.cause_kind, t.payout_id, sum(p.amount) FILTER (WHERE a.kind = 'wallet') AS wallet "
        "FROM ledger_transactions t JOIN postings p ON p.transaction_id = t.id "
        "JOIN ledger_accounts a ON a.id = p.account_id WHERE t.cause_kind = 'payout' GROUP BY 1, 2")
    assert [(b["payout_id"], int(b["wallet"])) for b in booked] == [(batch["batch_id"], -sum(recipients.values()))]
    # The sender's gas is booked once, by the ledger's native-fee rule from the NativeFee event.
    fee = await env.val(
        "SELECT sum(p.amount) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id WHERE a.code = 'fee:anvil'")
    receipt = env.anvil.rpc("eth_getTransactionReceipt", [txs[0]["tx_hash"]])
    assert fee is not None and int(fee) >= int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    # Replaying the range books nothing more.
    await env.follower.backfill(from_block=int(receipt["blockNumber"], 16))
    assert await env.val("SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'payout'") == 1
    audit = {r["action"] for r in await env.fetch("SELECT action FROM audit_log")}
    assert {"payout.requested", "payout.batch_created", "payout.batch_signed", "payout.tx_broadcast",
            "payout.tx_mined", "payout.batch_confirmed"} <= audit


async def test_same_key_twice_is_one_payout_and_balance_is_enforced(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 5 * 10**15})
    first, created = await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to,
                                          amount=3 * 10**15, key="same")
    again, created_again = await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to,
                                                amount=3 * 10**15, key="same")
    assert created and not created_again and first["id"] == again["id"]
    with pytest.raises(IdempotencyConflict):
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=1, key="same")
    # 3 of 5 are reserved: another 3 is more than the ledger owes.
    with pytest.raises(PayoutError, match="amount:"):
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=3 * 10**15, key="other")
    with pytest.raises(PayoutError, match="to:"):
        await request_payout(env.pool, env.settings, chain="anvil", asset="native", to="0x123", amount=1, key="bad")
    with pytest.raises(PayoutError, match="asset:"):
        await request_payout(env.pool, env.settings, chain="anvil", asset="Nope", to=to, amount=1, key="bad2")
    for _ in range(2):
        await env.worker.step()
    await env.index()
    assert balance(env.anvil, to) == 3 * 10**15
    assert await env.val("SELECT count(*) FROM payout_requests") == 1


async def test_kill_switch_stops_signing_and_resume_signs(env):
    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 10**15})
    await preq.set_kill_switch(env.pool, "anvil", True, "incident drill", "tester")
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=to, amount=10**15, key="k")
    await env.worker.step()
    await env.worker.step()
    assert await env.val("SELECT state FROM payout_batches") == "ready"
    assert await env.val("SELECT count(*) FROM evm_txs") == 0
    assert balance(env.anvil, to) == 0
    await preq.set_kill_switch(env.pool, "anvil", False, "drill over", "tester")
    await env.worker.step()
    assert await env.val("SELECT state FROM payout_batches") == "signed"
    actions = [r["action"] for r in await env.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert "payout.kill_switch" in actions and "payout.resumed" in actions


async def test_approval_needed_above_threshold(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, assets=[{"name": "native", "approval_threshold": 10**15}])
    await e.start()
    try:
        small, big = fresh_address().lower(), fresh_address().lower()
        await credit_users(pool, "anvil", {small: 10**15, big: 2 * 10**15})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=big, amount=2 * 10**15, key="big")
        await e.worker.step()
        batch_id = await e.val("SELECT batch_id FROM payout_batches")
        assert await e.val("SELECT state FROM payout_batches") == "awaiting_approval"
        await e.worker.step()
        assert await e.val("SELECT count(*) FROM evm_txs") == 0
        with pytest.raises(PayoutError, match="approver"):
            await preq.approve_batch(pool, batch_id, " ")
        await preq.approve_batch(pool, batch_id, "alice")
        with pytest.raises(PayoutError, match="not awaiting approval"):
            await preq.approve_batch(pool, batch_id, "alice")
        await e.worker.step()
        await e.worker.step()
        await e.index()
        row = (await e.fetch("SELECT state, approved_by FROM payout_batches"))[0]
        assert (row["state"], row["approved_by"]) == ("confirmed", "alice")
        assert balance(anvil, big) == 2 * 10**15
    finally:
        await e.close()


async def test_dry_run_signs_but_never_broadcasts(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, dry_run=True)
    await e.start()
    try:
        to = fresh_address().lower()
        await credit_users(pool, "anvil", {to: 10**15})
        await request_payout(pool, e.settings, chain="anvil", asset="native", to=to, amount=10**15, key="dry")
        nonce_before = anvil.rpc("eth_getTransactionCount", [DEV_ACCOUNTS[2][0], "latest"])
        for _ in range(3):
            await e.worker.step()
        row = (await e.fetch("SELECT state, signature, signer FROM payout_batches"))[0]
        assert row["state"] == "dry_run" and len(bytes.fromhex(row["signature"][2:])) == 65
        assert row["signer"] == SIGNER
        assert await e.val("SELECT count(*) FROM evm_txs") == 0
        assert anvil.rpc("eth_getTransactionCount", [DEV_ACCOUNTS[2][0], "latest"]) == nonce_before
        assert balance(anvil, to) == 0
    finally:
        await e.close()


def cli(tmp_path: Path, db_url: str, *args: str) -> tuple[int, str, str]:
    import subprocess
    import sys

    env = dict(os.environ, DATABASE_URL=db_url)
    root = Path(__file__).resolve().parents[5]
    out = subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(tmp_path / "chainsettle.toml"), *args],
                         cwd=root, env=env, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


async def test_cli_request_twice_and_list_json(env, db_url, tmp_path):
    import json

    to = fresh_address().lower()
    await credit_users(env.pool, "anvil", {to: 10**15})
    args = ("payouts", "request", "--chain", "anvil", "--asset", "native", "--to", to, "--amount", str(10**15),
            "--key", "cli-1")
    code, out, err = cli(tmp_path, db_url, *args)
    assert code == 0, err
    assert json.loads(out)["created"] is True
    code, out, _ = cli(tmp_path, db_url, *args)
    assert code == 0 and json.loads(out)["created"] is False
    code, _, err = cli(tmp_path, db_url, *args[:-1], "cli-2")
    assert code == 1 and "amount:" in err  # nothing left to pay this recipient
    code, _, err = cli(tmp_path, db_url, "payouts", "request", "--chain", "anvil", "--asset", "native", "--to", "0xzz",
                       "--amount", "1", "--key", "x")
    assert code == 1 and "to:" in err
    await env.worker.step()
    code, out, err = cli(tmp_path, db_url, "payouts", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [(r["idempotency_key"], r["state"]) for r in listed["requests"]] == [("cli-1", "batched")]
    assert [b["state"] for b in listed["batches"]] == ["signed"]
    assert listed["transactions"][0]["state"] in ("broadcast", "mined")
    assert SIGNER_KEY[2:] not in out and DEV_ACCOUNTS[2][1][2:] not in out + err


async def test_cli_deploy_batcher_signs_with_the_sender_key(env, db_url, tmp_path):
    import json

    from settlement.payouts.evm import batcher_abi
    from tests.support.batcher import raw_view

    code, out, err = cli(tmp_path, db_url, "contracts", "deploy-batcher", "--chain", "anvil")
    assert code == 0, err
    address = json.loads(out)["address"]
    assert env.anvil.rpc("eth_getCode", [address, "latest"]) not in ("0x", "0x0")
    assert int.from_bytes(raw_view(env.anvil, address, batcher_abi.is_signer_calldata(SIGNER)), "big") == 1
    owner = raw_view(env.anvil, address, batcher_abi.view_calldata("owner"))
    assert "0x" + owner[-20:].hex() == DEV_ACCOUNTS[2][0]  # the sender deployed it and owns it
