"""The CLI end to end: index, then `reconcile --once` exit codes and JSON report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.config import evm_chain, write_config
from tests.support.evm import deploy_token, token_transfer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def cli(config, db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=db_url, CHAINSETTLE_LOG__LEVEL="warning")
    return subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_index_then_reconcile_matches_then_detects_a_transfer_behind_our_back(anvil, db_url, tmp_path):
    token = deploy_token(anvil.url)
    wallet, user = DEV_ACCOUNTS[1][0], DEV_ACCOUNTS[2][0]
    token_transfer(anvil.url, token, DEV_ACCOUNTS[0][0], user, 10**21)
    start = int(rpc_sync(anvil.url, "eth_blockNumber"), 16)
    token_transfer(anvil.url, token, user, wallet, 5 * 10**18)  # a deposit
    rpc_sync(anvil.url, "anvil_mine", ["0x3"])
    chain = evm_chain("local", anvil.url, finality_depth=2, start_block=start)
    chain["contracts"] = [{"name": "Token", "address": token, "abi": "erc20", "start_block": start}]
    chain["wallets"] = [{"name": "hot", "address": wallet, "assets": ["Token"]}]
    config = write_config(tmp_path / "c.toml", {"chains": [chain]})

    out = cli(config, db_url, "index", "--chain", "local")
    assert out.returncode == 0, out.stderr
    out = cli(config, db_url, "reconcile", "--once")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert json.dumps(report).count("mismatch") == 0

    # 3 tokens leave the wallet without the daemon: the next run says exactly that.
    token_transfer(anvil.url, token, wallet, user, 3 * 10**18)
    rpc_sync(anvil.url, "anvil_mine", ["0x3"])
    assert cli(config, db_url, "index", "--chain", "local").returncode == 0
    out = cli(config, db_url, "reconcile", "--once")
    assert out.returncode == 3, out.stdout + out.stderr
    assert str(-3 * 10**18) in out.stdout
