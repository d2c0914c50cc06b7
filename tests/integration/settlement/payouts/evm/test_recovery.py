"""Recovery paths: dead batches proven by expiry, nonce gaps, a nonce used by
someone else, a restarted worker rebroadcasting stored bytes, and the
state machine's CHECK constraints."""

from __future__ import annotations

import asyncpg
import pytest

from settlement.payouts import metrics as pm
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_pipeline import (  # noqa: F401  (fixture)
    Env,
    credit_users,
    env,
)
from tests.support.batcher import balance, fresh_address, is_executed


async def _request(e: Env, key: str, amount: int = 10**15) -> str:
    to = fresh_address().lower()
    await credit_users(e.pool, "anvil", {to: amount})
    await request_payout(e.pool, e.settings, chain="anvil", asset="native", to=to, amount=amount, key=key)
    return to


async def test_expired_batch_is_proven_dead_and_its_requests_requeued(anvil, pool, tmp_path):
    e = Env(anvil, pool, tmp_path, dry_run=True, batch_expiry_seconds=120)
    await e.start()
    try:
        await _request(e, "exp")
        await e.worker.step()
        first = await e.val("SELECT batch_id FROM payout_batches")
        assert await e.val("SELECT state FROM payout_batches") == "dry_run"
        await e.worker.step()  # not expired yet: nothing changes
        assert await e.val("SELECT count(*) FROM payout_batches") == 1
        anvil.rpc("evm_increaseTime", [500])
        anvil.rpc("evm_mine", [])
        await e.index()
        await e.worker.step()
        rows = {r["batch_id"]: r for r in await e.fetch("SELECT * FROM payout_batches")}
        assert rows[first]["state"] == "expired" and "executed() is false" in rows[first]["reason"]
        assert not is_executed(anvil, e.batcher, bytes.fromhex(first[2:]))
        # Requeued and carried by a new batch under a new id.
        (new,) = [b for b in rows if b != first]
        assert await e.val("SELECT batch_id FROM payout_requests") == new
        assert await e.val("SELECT count(*) FROM audit_log WHERE action = 'payout.batch_expired'") == 1
    finally:
        await e.close()


async def test_nonce_gap_is_detected_and_filled(env):  # noqa: F811
    to1 = await _request(env, "a")
    await env.worker.step()
    await env.worker.step()
    # A claim lost behind our back (a restored database, a hand edit): the next nonce skips one.
    async with env.pool.acquire() as conn:
        await conn.execute("UPDATE evm_nonces SET next_nonce = next_nonce + 1")
    to2 = await _request(env, "b")
    await env.worker.step()
    stuck = (await env.fetch("SELECT * FROM evm_txs WHERE purpose = 'batch' ORDER BY nonce DESC LIMIT 1"))[0]
    assert env.anvil.rpc("eth_getTransactionReceipt", [stuck["tx_hash"]]) is None  # queued behind the gap
    gaps_before = pm.NONCE_GAPS.labels("anvil")._value.get()
    assert await env.worker.sender.fill_gaps() == 1
    assert pm.NONCE_GAPS.labels("anvil")._value.get() == gaps_before + 1
    await env.worker.step()
    await env.worker.step()
    await env.index()
    fills = await env.fetch("SELECT * FROM evm_txs WHERE purpose = 'gap_fill'")
    assert len(fills) == 1 and fills[0]["nonce"] == stuck["nonce"] - 1 and fills[0]["state"] == "mined"
    assert balance(env.anvil, to1) == balance(env.anvil, to2) == 10**15
    assert await env.val("SELECT count(*) FROM payout_batches WHERE state = 'confirmed'") == 2


async def test_restarted_worker_broadcasts_stored_bytes_without_resigning(env):  # noqa: F811
    to = await _request(env, "r")
    env.anvil.rpc("evm_setAutomine", [False])
    try:
        await env.worker.step()
        tx = (await env.fetch("SELECT * FROM evm_txs"))[0]
        # The node lost it (a restart): only our database still has the bytes.
        env.anvil.rpc("anvil_dropAllTransactions", [])
        fresh = EvmPayoutWorker(env.settings, env.pool, env.settings.payouts.chains[0])
        try:
            await fresh.step()
        finally:
            await fresh.close()
        env.anvil.rpc("evm_mine", [])
    finally:
        env.anvil.rpc("evm_setAutomine", [True])
    await env.worker.step()
    await env.index()
    txs = await env.fetch("SELECT * FROM evm_txs")
    assert [(t["tx_hash"], t["state"]) for t in txs] == [(tx["tx_hash"], "mined")]
    assert balance(env.anvil, to) == 10**15


async def test_nonce_used_by_someone_else_resends_the_same_batch(env):  # noqa: F811
    to = await _request(env, "n")
    env.anvil.rpc("evm_setAutomine", [False])
    try:
        await env.worker.step()
        ours = (await env.fetch("SELECT * FROM evm_txs"))[0]
        env.anvil.rpc("anvil_dropAllTransactions", [])
        # Someone else spends the sender's nonce (the sender is an unlocked dev account).
        sender = env.worker.sender.address
        env.anvil.rpc("eth_sendTransaction", [{"from": sender, "to": sender, "value": "0x0", "nonce": hex(ours["nonce"])}])
        env.anvil.rpc("evm_mine", [])
    finally:
        env.anvil.rpc("evm_setAutomine", [True])
    await env.index()
    await env.worker.step()  # finds the nonce used, resends the same signed batch at a new nonce
    await env.worker.step()
    await env.index()
    txs = await env.fetch("SELECT nonce, state FROM evm_txs ORDER BY id")
    assert [t["state"] for t in txs] == ["dropped", "mined"] and txs[1]["nonce"] == ours["nonce"] + 1
    assert await env.val("SELECT count(*) FROM payout_batches") == 1
    assert await env.val("SELECT state FROM payout_batches") == "confirmed"
    assert balance(env.anvil, to) == 10**15


async def test_state_machine_constraints(pool):
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by) "
                           "VALUES ('k', 'c', 'native', '0x' || repeat('1', 40), 5, 't')")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE payout_requests SET state = 'paid'")  # paid needs its batch
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE payout_requests SET state = 'held'")  # held needs a reason
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE payout_requests SET state = 'sent'")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by) "
                               "VALUES ('z', 'c', 'native', '0x' || repeat('1', 40), 0, 't')")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by) "
                               "VALUES ('k', 'c', 'native', '0x' || repeat('1', 40), 5, 't')")
        bid = "0x" + "ab" * 32
        args = (bid, "c", "native", "0x" + "0" * 40, 0, "0x" + "0" * 40, "0x" + "1" * 40, 1, 5, 100000, 1)
        sql = ("INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total, "
               "gas_limit, expiry, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(sql, *args, "signed")  # signed needs a signature
        await conn.execute(sql, *args, "ready")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE payout_batches SET state = 'confirmed', signature = '0x00'")  # needs its block
