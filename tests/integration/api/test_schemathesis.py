"""schemathesis against /openapi.json of a live `chainsettle api` process on a real database.

Every documented operation gets generated valid and invalid input; the run
fails on any 5xx and on any response that does not match the document.
/v1/stream is left out: it never ends (tests/integration/test_api.py covers it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from daemon.devchain import free_port
from settlement.ledger.pauses import pause_asset
from tests.support.api_data import BATCH, USER, chain_cfg, seed_settlement, seeded
from tests.support.config import write_config

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TOKEN = "schemathesis-admin-token"
SIGNIN_KEY = "schemathesis-signin-key"
SHOP = "0x" + "5b" * 20
APPROVABLE = "0x" + "ef" * 32
MAX_EXAMPLES = 50
# Constraints OpenAPI cannot state: from_block <= to_block, a replay only
# of an indexed range, a payout within the caps and not reusing a key, a
# batch or pause in the right state. Schema-valid input may get a 400
# naming the field there; everywhere else a 400 for schema-valid input is
# a failure. The admin routes run against the live test database.
# Half of the generated ids are ones the database holds, so the 200
# answers of the by-id routes get checked against the document too.
SCHEMATHESIS_TOML = """
[dictionaries.seeded]
values = [{ids}]

[dictionaries.batches]
values = ["{batch}", "{approvable}"]

[dictionaries.assets]
values = ["anvil:native"]

[[operations]]
include-path = ["/v1/events", "/v1/admin/replay", "/v1/admin/payouts", "/v1/admin/payouts/pause",
                "/v1/admin/payouts/resume"]
checks.positive_data_acceptance.expected-statuses = [200, 201, 202, 400, 404, 409, 429]

[[operations]]
include-path-regex = "^/v1/admin/batches/"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404, 409, 429]
parameters = {{ "path.id" = {{ dictionary = "batches", probability = 0.5 }} }}

[[operations]]
include-path-regex = "^/v1/admin/assets/"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404, 409, 429]
parameters = {{ "path.asset_id" = {{ dictionary = "assets", probability = 0.5 }} }}

[[operations]]
include-path = ["/v1/admin/invoices", "/v1/verify-payment", "/v1/auth/challenge", "/v1/auth/verify"]
checks.positive_data_acceptance.expected-statuses = [200, 201, 400, 401, 404, 409, 429]

[[operations]]
include-path-regex = "^/v1/admin/invoices/"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404, 429]

[[operations]]
include-path = ["/v1/admin/ledger/adjustments"]
checks.positive_data_acceptance.expected-statuses = [200, 201, 400, 409, 429]

[[operations]]
include-path-regex = "^/v1/admin/replay/"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404, 429]

[[operations]]
include-path-regex = "^/v1/admin/deliveries"
checks.positive_data_acceptance.expected-statuses = [200, 201, 202, 400, 404, 409, 429]

[[operations]]
include-path-regex = "^/v1/admin/ledger/"
checks.positive_data_acceptance.expected-statuses = [200, 201, 400, 404, 409, 422, 429]

[[operations]]
include-path-regex = "intent"
checks.positive_data_acceptance.expected-statuses = [200, 201, 400, 404, 409, 429]

[[operations]]
include-path-regex = "^/v1/(admin/)?(distributions|snapshots|vouchers)"
checks.positive_data_acceptance.expected-statuses = [200, 201, 400, 404, 409, 422, 429]

[[operations]]
include-path-regex = "^/v1/(accounts|payouts|batches)/"
parameters = {{ "path.id" = {{ dictionary = "seeded", probability = 0.5 }} }}
"""


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, deadline: float = 30.0) -> None:
    async def _poll() -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"chainsettle api exited with {proc.returncode}")
                try:
                    async with session.get(url + "/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)

    await asyncio.wait_for(_poll(), deadline)


async def test_schemathesis_finds_no_server_errors_or_schema_violations(tmp_path, pool, db_url, anvil):
    await seeded(pool, "anvil", blocks=12, head=14, final=6)
    ids = await seed_settlement(pool)
    seeded_ids = [f"user:anvil:{USER}", str(ids["wallet"]), str(ids["batched"]), "req-1", BATCH]
    # A batch to approve and an open pause to resolve: the 200 answers get checked too.
    await pool.execute(
        "INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total,"
        " gas_limit, expiry, state) VALUES ($1, 'anvil', 'native', $2, 0, $2, $2, 1, 5, 90000, 2000000000,"
        " 'awaiting_approval')", APPROVABLE, "0x" + "00" * 20)
    async with pool.acquire() as conn:
        await pause_asset(conn, "anvil:native", "seeded mismatch", "test")
    port = free_port()
    batcher = "0x" + "5a" * 20
    config = write_config(tmp_path / "chainsettle.toml", {
        "database": {"url": db_url},
        "api": {"listen": f"127.0.0.1:{port}", "admin_token": "env:CS_SCHEMATHESIS_TOKEN",
                "rate_limit_per_second": 10000.0, "rate_limit_burst": 10000},
        # A live node: verify-payment asks the chain for transactions the index does not hold.
        "chains": [chain_cfg("anvil", rpc=[anvil.url], max_attempts=1, contracts=[
            {"name": "batcher", "address": batcher, "abi": "payout_batcher", "start_block": 0}],
            wallets=[{"name": "shop", "address": SHOP, "assets": ["native"]}])],
        "invoices": {"signin": {"domain": "shop.example", "uri": "https://shop.example",
                                "token_key": "env:CS_SCHEMATHESIS_SIGNIN_KEY"}},
        # Payouts without a balance check, so generated requests get stored, not only refused.
        # Generated `from_account` app accounts are opened on first use, so those requests get stored too.
        "ledger": {"create_app_accounts": True},
        "payouts": {"require_balance": False, "chains": [{
            "chain": "anvil", "batcher": batcher, "signer": {"key": "env:CS_UNUSED_KEY"},
            "sender": {"key": "env:CS_UNUSED_KEY"}, "max_fee_per_gas": 10**11,
            "assets": [{"name": "native", "max_batch_total": 10**30}]}]},
    })
    env = {**os.environ, "CS_SCHEMATHESIS_TOKEN": TOKEN, "CHAINSETTLE_LOG__FORMAT": "json",
           "CS_SCHEMATHESIS_SIGNIN_KEY": SIGNIN_KEY,
           # The code of this checkout, not whatever the venv's install points at.
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    server = await asyncio.create_subprocess_exec(
        str(BIN / "chainsettle"), "--config", str(config), "api",
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, server)
        (tmp_path / "schemathesis.toml").write_text(
            SCHEMATHESIS_TOML.format(ids=", ".join(f'"{i}"' for i in seeded_ids), batch=BATCH, approvable=APPROVABLE))
        run = await asyncio.create_subprocess_exec(
            str(BIN / "schemathesis"), "--config-file", str(tmp_path / "schemathesis.toml"),
            "run", f"{base}/openapi.json",
            "--checks", "all", "--exclude-path", "/v1/stream",
            "--max-examples", str(MAX_EXAMPLES), "--seed", "20240601", "--workers", "1",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--request-timeout", "10", "--report", "junit", "--report-junit-path", str(tmp_path / "junit.xml"),
            cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        )
        out, _ = await asyncio.wait_for(run.communicate(), 240)
        report = out.decode(errors="replace")
        assert run.returncode == 0, report[-6000:]
        tested = (tmp_path / "junit.xml").read_text()
        assert "GET /v1/events" in tested and "POST /v1/admin/replay" in tested
        for op in ("POST /v1/admin/payouts", "POST /v1/admin/batches/{id}/approve", "POST /v1/admin/payouts/pause",
                   "POST /v1/admin/payouts/resume", "POST /v1/admin/assets/{asset_id}/resolve",
                   "GET /v1/admin/replay/{id}", "POST /v1/admin/invoices", "GET /v1/admin/invoices/{id}",
                   "POST /v1/verify-payment", "POST /v1/auth/challenge", "POST /v1/auth/verify",
                   "POST /v1/admin/ledger/adjustments"):
            assert op in tested, op
        # Generated payouts were stored, by the token's label, each with its audit row.
        stored = await pool.fetch("SELECT requested_by FROM payout_requests WHERE requested_by LIKE 'api:%'")
        assert stored and await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'payout.requested' AND actor LIKE 'api:%'") == len(stored)
        approved = await pool.fetchval("SELECT approved_by FROM payout_batches WHERE batch_id = $1", APPROVABLE)
        resolved = await pool.fetchval("SELECT resolved_by FROM asset_pauses WHERE asset_id = 'anvil:native'")
        assert approved.startswith("api:") and resolved == approved
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(server.wait(), 30)
        log = (await server.stderr.read()).decode(errors="replace")
    assert code == 0, log[-3000:]
    assert "api.unhandled_error" not in log
    assert TOKEN not in log and SIGNIN_KEY not in log
