"""The dead end of issue 25, on anvil and real Postgres, through the CLI.

One token moved out of a watched hot wallet by hand (outside the daemon):
reconciliation pauses the asset. Lifting the pause alone does not help (the
next run pauses it again). `chainsettle ledger adjust`, citing the
transaction, books the movement; `ledger resolve` lifts the pause; the next
run is ok and the asset stays unpaused.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from settlement.ledger.pauses import is_paused
from settlement.reconcile.runs import EXIT_MISMATCH, EXIT_OK, reconcile_once
from tests.integration.settlement.reconcile.test_evm import HOT, OUTSIDER, head, index
from tests.support.config import evm_chain, make_settings, write_config
from tests.support.evm import batch_transfer, calldata, deploy_token, send

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent
TOK = "anvil:Token"
ONE = 10**18


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "chainsettle"), "--config", str(config), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_adjustment_then_resolve_keeps_the_asset_unpaused(anvil, tmp_path, pool, db_url):
    url = anvil.url
    token = deploy_token(url)
    batch_transfer(url, token, [HOT], [5 * ONE])
    data = {"chains": [evm_chain("anvil", url, token, finality_depth=1, start_block=head(url) + 1,
                                 wallets=[{"name": "hot", "address": HOT, "assets": ["Token"]}])]}
    settings = make_settings(tmp_path, data)
    config = write_config(tmp_path / "cli.toml", {**data, "database": {"url": db_url}})
    batch_transfer(url, token, [HOT], [2 * ONE])
    await index(settings, pool)
    assert (await reconcile_once(settings, pool)).exit_code == EXIT_OK

    # One token out of the hot wallet, sent with its own key: no rule books it.
    tx_hash = send(url, HOT, token, calldata("transfer(address,uint256)", ["address", "uint256"], [OUTSIDER, ONE]))["transactionHash"]
    await index(settings, pool)
    report = await reconcile_once(settings, pool)
    assert report.exit_code == EXIT_MISMATCH
    assert [r.difference for run in report.runs for r in run.results] == [-ONE]
    async with pool.acquire() as conn:
        assert await is_paused(conn, TOK)

    # Bad input is refused naming the field; nothing is booked.
    wallet = f"wallet:anvil:{HOT.lower()}"
    base = ["ledger", "adjust", "--chain", "anvil", "--debit", "adjustment:anvil:manual-transfers",
            "--credit", wallet, "--asset", TOK, "--author", "ops-alice"]
    for extra, field in ((["--amount", "1e18", "--reason", "x"], "amount"),
                         (["--amount", str(ONE), "--reason", " "], "reason"),
                         (["--amount", str(ONE), "--reason", "x", "--tx-hash", "0x12"], "tx_hash")):
        code, _, err = await cli(config, *base, *extra)
        assert code == 1 and f"error: {field}:" in err, err
    code, _, err = await cli(config, *[("user:anvil:0x" + "99" * 20) if a == "adjustment:anvil:manual-transfers" else a
                                       for a in base], "--amount", str(ONE), "--reason", "x")
    assert code == 1 and "error: debit: no ledger account" in err, err
    assert await pool.fetchval("SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'manual'") == 0

    # The operator explains the difference, citing the transaction.
    args = [*base, "--amount", str(ONE), "--reason", "moved to the exchange by hand", "--tx-hash", tx_hash,
            "--key", "ticket-25"]
    code, out, err = await cli(config, *args)
    assert code == 0, err
    booked = json.loads(out)
    assert booked["created"] is True
    adj = booked["adjustment"]
    assert (adj["amount"], adj["debit"], adj["credit"], adj["tx_hash"], adj["author"]) == (
        str(ONE), "adjustment:anvil:manual-transfers", wallet, tx_hash, "ops-alice")
    code, out, _ = await cli(config, *args)  # the same key and arguments: booked once
    assert code == 0 and json.loads(out)["created"] is False
    code, _, err = await cli(config, *[a if a != str(ONE) else str(2 * ONE) for a in args])
    assert code == 1 and "error: key:" in err
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'manual'") == 1
        audit = await conn.fetchrow("SELECT actor, details FROM audit_log WHERE action = 'ledger.adjustment'")
        assert audit["actor"] == "ops-alice" and audit["details"]["tx_hash"] == tx_hash

    code, _, err = await cli(config, "ledger", "resolve", TOK, "--reason", "booked as adjustment ticket-25")
    assert code == 0, err
    for _ in range(2):  # the next runs stay ok and the asset stays unpaused
        report = await reconcile_once(settings, pool)
        assert report.exit_code == EXIT_OK, report.to_json()
        async with pool.acquire() as conn:
            assert not await is_paused(conn, TOK)

    # The CLI's balances read like the API's: held and owed positive, exact integers, and in units.
    code, out, err = await cli(config, "ledger", "balances", "--chain", "anvil")
    assert code == 0, err
    rows = {r["account"]: r for r in json.loads(out)["balances"]}
    assert rows[wallet]["balance"] == str(6 * ONE) and rows["adjustment:anvil:manual-transfers"]["balance"] == str(ONE)
    assert all(not r["balance"].startswith("-") for r in rows.values()), rows
