"""Wallet balance metrics from reconciliation, and the low-balance flag."""

from __future__ import annotations

from prometheus_client import REGISTRY

from daemon.followers import make_follower
from settlement.reconcile.runs import reconcile_once
from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import deploy_token, token_transfer


async def test_reconcile_exports_wallet_balances_and_flags_low_ones(anvil, pool, tmp_path):
    token = deploy_token(anvil.url)
    hot, cold = DEV_ACCOUNTS[1][0], "0x" + "c0" * 20
    start = int(rpc_sync(anvil.url, "eth_blockNumber"), 16) + 1
    token_transfer(anvil.url, token, DEV_ACCOUNTS[0][0], hot, 5 * 10**18)
    token_transfer(anvil.url, token, DEV_ACCOUNTS[0][0], cold, 50 * 10**18)
    chain = evm_chain("low", anvil.url, finality_depth=1, start_block=start)
    chain["contracts"] = [{"name": "Token", "address": token, "abi": "erc20", "start_block": start}]
    chain["wallets"] = [{"name": "hot", "address": hot, "assets": ["Token"]},
                        {"name": "cold", "address": cold, "assets": ["Token"]}]
    settings = make_settings(tmp_path, {"chains": [chain], "reconcile": {"min_balances": {"low:Token": str(10 * 10**18)}}})
    follower = make_follower(settings.chain("low"), pool, settings)
    try:
        await follower.backfill()
    finally:
        await follower.close()
    report = await reconcile_once(settings, pool)
    assert report.exit_code == 0, report.to_json()

    def sample(name, wallet):
        return REGISTRY.get_sample_value(name, {"chain": "low", "wallet": wallet, "asset": "low:Token"})

    assert sample("chainsettle_wallet_balance", "hot") == 5 * 10**18
    assert sample("chainsettle_wallet_balance", "cold") == 50 * 10**18
    assert sample("chainsettle_wallet_low", "hot") == 1
    assert sample("chainsettle_wallet_low", "cold") == 0
