"""Mined is not final: a payout transaction reorged out with anvil_reorg is
sent again (the same bytes) and confirmed exactly once; the nonces after it
are not stranded; a transaction is watched until its block is final."""

from __future__ import annotations

from settlement.payouts import metrics as pm
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_kill import executed_on_chain
from tests.integration.settlement.payouts.evm.test_pipeline import (  # noqa: F401  (fixture)
    Env,
    credit_users,
    env,
)
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import balance, fresh_address
from tests.support.evm import send, wait_receipt

UNIT = 10**15


async def test_reorged_payout_is_rebroadcast_and_confirmed_once(env):
    start = int(env.anvil.rpc("eth_blockNumber", []), 16)
    first, second = fresh_address().lower(), fresh_address().lower()
    await credit_users(env.pool, "anvil", {first: UNIT, second: UNIT})
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=first, amount=UNIT, key="one")
    await env.worker.step()  # signed, sent, mined at once (automine)
    tx = (await env.fetch("SELECT * FROM evm_txs"))[0]
    receipt = wait_receipt(env.anvil.url, tx["tx_hash"])
    await env.worker.step()  # receipt seen: mined, not final yet (the follower has not seen the block)
    row = (await env.fetch("SELECT state, final, mined_block_hash FROM evm_txs"))[0]
    assert (row["state"], row["final"], row["mined_block_hash"]) == ("mined", False, receipt["blockHash"])

    env.anvil.rpc("anvil_reorg", [1, []])  # its block replaced by one without it
    assert env.anvil.rpc("eth_getTransactionReceipt", [tx["tx_hash"]]) is None
    assert balance(env.anvil, first) == 0
    reorged_before = pm.REORGED.labels("anvil")._value.get()
    await request_payout(env.pool, env.settings, chain="anvil", asset="native", to=second, amount=UNIT, key="two")
    await env.worker.step()  # the first is sent again (same bytes, same nonce); the second takes the next nonce
    assert pm.REORGED.labels("anvil")._value.get() == reorged_before + 1
    for _ in range(3):
        await env.worker.step()
    send(env.anvil.url, DEV_ACCOUNTS[0][0], DEV_ACCOUNTS[0][0], value=1)  # a block above, so both are final
    await env.index()
    await env.worker.step()
    txs = await env.fetch("SELECT tx_hash, nonce, state, final FROM evm_txs ORDER BY nonce")
    assert [t["tx_hash"] for t in txs][0] == tx["tx_hash"]  # never re-signed
    assert [(t["nonce"], t["state"], t["final"]) for t in txs] == [(tx["nonce"], "mined", True),
                                                                   (tx["nonce"] + 1, "mined", True)]
    assert await env.val("SELECT count(*) FROM payout_batches WHERE state = 'confirmed'") == 2
    assert balance(env.anvil, first) == UNIT and balance(env.anvil, second) == UNIT
    assert len(executed_on_chain(env.anvil, env.batcher, start)) == 2  # each batch once
    assert await env.val("SELECT count(*) FROM audit_log WHERE action = 'payout.tx_reorged'") == 1
    assert await env.val("SELECT count(*) FROM evm_txs WHERE state = 'mined' AND NOT final") == 0
