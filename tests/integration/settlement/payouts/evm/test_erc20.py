"""ERC-20 payouts end to end, from the batcher's own balance and from a treasury."""

from __future__ import annotations

import pytest

from daemon.followers import make_follower
from settlement.payouts.evm.worker import EvmPayoutWorker
from settlement.payouts.requests import request_payout
from settlement.reconcile.runs import reconcile_once
from tests.integration.settlement.payouts.evm.test_pipeline import (
    OWNER,
    credit_users,
    deploy_funded_batcher,
    head,
    payout_config,
)
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import fresh_address, is_executed
from tests.support.config import make_settings
from tests.support.evm import (
    calldata,
    deploy_token,
    send,
    token_balance,
    token_transfer,
)

TREASURY = DEV_ACCOUNTS[3][0]


@pytest.mark.parametrize("source", ["contract", "treasury"])
async def test_erc20_payouts_confirm_and_move_exact_amounts(anvil, pool, tmp_path, source):
    token = deploy_token(anvil.url).lower()
    batcher = deploy_funded_batcher(anvil)
    if source == "contract":
        token_transfer(anvil.url, token, OWNER, batcher, 10**24)
        funder = batcher
        asset = {"name": "Token"}
    else:
        token_transfer(anvil.url, token, OWNER, TREASURY, 10**24)
        send(anvil.url, TREASURY, token, calldata("approve(address,uint256)", ["address", "uint256"], [batcher, 2**256 - 1]))
        funder = TREASURY
        asset = {"name": "Token", "source": "treasury", "treasury": TREASURY}
    start = head(anvil) + 1
    data = payout_config(anvil.url, batcher, start, assets=[asset])
    chain = data["chains"][0]
    chain["contracts"].append({"name": "Token", "address": token, "abi": "erc20", "start_block": start})
    if source == "contract":
        chain["wallets"][0]["assets"] = ["native", "Token"]  # wallets[0] is the batcher: it holds both
    else:
        chain["wallets"].append({"name": "treasury", "address": TREASURY, "assets": ["Token"]})
    settings = make_settings(tmp_path, data)
    follower = make_follower(settings.chain("anvil"), pool, settings)
    worker = EvmPayoutWorker(settings, pool, settings.payouts.chains[0])
    try:
        send(anvil.url, OWNER, OWNER, value=1)
        await follower.backfill()
        recipients = {fresh_address().lower(): (i + 1) * 10**18 for i in range(4)}
        await credit_users(pool, "anvil", recipients, asset="Token")
        for i, (to, amount) in enumerate(recipients.items()):
            await request_payout(pool, settings, chain="anvil", asset="Token", to=to, amount=amount, key=f"t{i}")
        before = token_balance(anvil.url, token, funder)
        await worker.step()  # batch, sign, broadcast
        await worker.step()  # receipt
        await follower.backfill()  # final events confirm
        batch = await pool.fetchrow("SELECT batch_id, state FROM payout_batches")
        assert batch["state"] == "confirmed"
        assert is_executed(anvil, batcher, bytes.fromhex(batch["batch_id"][2:]))
        for to, amount in recipients.items():
            assert token_balance(anvil.url, token, to) == amount
        assert token_balance(anvil.url, token, funder) == before - sum(recipients.values())
        assert await pool.fetchval("SELECT count(*) FROM payout_requests WHERE state = 'paid'") == 4
        report = await reconcile_once(settings, pool)
        assert report.exit_code == 0, report.to_json()  # every wallet and asset matches at H
    finally:
        await follower.close()
        await worker.close()
