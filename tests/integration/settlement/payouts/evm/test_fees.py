"""Fee bumping on anvil: a payout sent below the market confirms after a
base-fee spike through replacements within the cap; when the next
replacement would pass the cap it stops, flags the transaction and alerts.

Mining is manual here: each block's base fee is set just before it is mined
(anvil_setNextBlockBaseFeePerGas), so the spike holds until we lift it.
"""

from __future__ import annotations

import asyncio

import pytest

from settlement.payouts import metrics as pm
from settlement.payouts.requests import request_payout
from tests.integration.settlement.payouts.evm.test_pipeline import (
    GWEI,
    Env,
    credit_users,
)
from tests.support.batcher import balance, fresh_address

SPIKE = 20 * GWEI


@pytest.fixture
def manual_mining(anvil):
    yield lambda: anvil.rpc("evm_setAutomine", [False])
    anvil.rpc("evm_setAutomine", [True])


def mine(anvil, base_fee: int | None = None) -> None:
    if base_fee is not None:
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])
    anvil.rpc("evm_mine", [])


def receipt(anvil, tx_hash: str):
    return anvil.rpc("eth_getTransactionReceipt", [tx_hash])


async def send_one_below_market(e: Env, anvil, manual_mining) -> tuple[str, int]:
    to = fresh_address().lower()
    await credit_users(e.pool, "anvil", {to: 10**15})
    await request_payout(e.pool, e.settings, chain="anvil", asset="native", to=to, amount=10**15, key="fee")
    manual_mining()
    mine(anvil, GWEI)  # a calm market to start from
    await e.worker.step()
    first = (await e.fetch("SELECT tx_hash, max_fee_per_gas FROM evm_txs"))[0]
    assert int(first["max_fee_per_gas"]) < SPIKE
    mine(anvil, SPIKE)
    assert receipt(anvil, first["tx_hash"]) is None  # priced out by the spike
    return to, int(first["max_fee_per_gas"])


async def test_spike_is_outbid_by_bumps_within_the_cap(anvil, pool, tmp_path, manual_mining):
    cap = 3 * SPIKE
    e = Env(anvil, pool, tmp_path, bump_interval_seconds=0.2, max_fee_per_gas=cap)
    await e.start()
    try:
        to, first_fee = await send_one_below_market(e, anvil, manual_mining)
        for _ in range(20):
            await asyncio.sleep(0.25)
            await e.worker.step()
            mine(anvil, SPIKE)
            if await e.val("SELECT count(*) FROM evm_txs WHERE state = 'mined'") or any(
                    receipt(anvil, r["tx_hash"]) for r in await e.fetch("SELECT tx_hash FROM evm_txs")):
                break
        await e.worker.step()
        mined = (await e.fetch("SELECT * FROM evm_txs WHERE state = 'mined'"))[0]
        assert mined["attempt"] >= 2
        assert SPIKE <= int(mined["max_fee_per_gas"]) <= cap
        attempts = await e.fetch("SELECT max_fee_per_gas, max_priority_fee_per_gas FROM evm_txs ORDER BY attempt")
        for a, b in zip(attempts, attempts[1:]):  # both fields up by at least 12.5% each time
            assert int(b["max_fee_per_gas"]) * 8 >= int(a["max_fee_per_gas"]) * 9
            assert int(b["max_priority_fee_per_gas"]) * 8 >= int(a["max_priority_fee_per_gas"]) * 9
        assert await e.val("SELECT count(DISTINCT nonce) FROM evm_txs") == 1
        mine(anvil)
        await e.index()
        assert await e.val("SELECT state FROM payout_batches") == "confirmed"
        assert balance(anvil, to) == 10**15
    finally:
        await e.close()


async def test_above_the_cap_it_stops_and_alerts(anvil, pool, tmp_path, manual_mining):
    cap = SPIKE // 2
    e = Env(anvil, pool, tmp_path, bump_interval_seconds=0.2, max_fee_per_gas=cap)
    await e.start()
    try:
        hits_before = pm.FEE_CAP_HIT.labels("anvil")._value.get()
        to, _ = await send_one_below_market(e, anvil, manual_mining)
        for _ in range(6):
            await asyncio.sleep(0.25)
            await e.worker.step()
            mine(anvil, SPIKE)
        txs = await e.fetch("SELECT * FROM evm_txs ORDER BY attempt")
        assert all(int(t["max_fee_per_gas"]) <= cap for t in txs)
        assert txs[-1]["state"] == "stuck_fee_cap" and "cap" in txs[-1]["last_error"]
        assert pm.FEE_CAP_HIT.labels("anvil")._value.get() == hits_before + 1
        assert await e.val("SELECT count(*) FROM audit_log WHERE action = 'payout.stuck_fee_cap'") == 1
        count = len(txs)
        for _ in range(3):  # no more replacements once flagged
            await asyncio.sleep(0.25)
            await e.worker.step()
            mine(anvil, SPIKE)
        assert await e.val("SELECT count(*) FROM evm_txs") == count
        assert balance(anvil, to) == 0
        # When the market comes back under the cap, the flagged transaction
        # (rebroadcast as stored, never re-signed) still lands.
        mine(anvil, GWEI)
        await asyncio.sleep(0.15)
        await e.worker.step()
        mine(anvil, GWEI)
        await e.worker.step()
        assert await e.val("SELECT count(*) FROM evm_txs WHERE state = 'mined'") == 1
        mine(anvil)
        await e.index()
        assert await e.val("SELECT state FROM payout_batches") == "confirmed"
        assert balance(anvil, to) == 10**15
    finally:
        await e.close()
