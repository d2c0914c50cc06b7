"""Reconciliation on anvil, end to end through the real follower.

Deposits (ERC-20 and native) reconcile to zero difference, opening balances
included; blocks mined after H change nothing at H; transfers out of the
wallet made behind the daemon's back show up in the next run with the exact
difference, pause the asset and write audit rows; an operator's adjustment
and resolution bring it back to zero.
"""

from __future__ import annotations

import orjson
import pytest

from indexer.evm.follower import EvmFollower
from indexer.evm.native_scan import NativeTransferSource
from settlement.ledger.books import Posting, book_adjustment
from settlement.ledger.hook import LedgerHook
from settlement.ledger.pauses import is_paused, resolve_pause
from settlement.reconcile.runs import EXIT_MISMATCH, EXIT_OK, reconcile_once
from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import (
    batch_transfer,
    calldata,
    deploy_token,
    send,
    token_balance,
)

HOT = DEV_ACCOUNTS[1][0]   # a configured wallet whose key anvil holds: "behind our back" is easy
COLD = DEV_ACCOUNTS[3][0]  # a second configured wallet (native only)
PAYER = DEV_ACCOUNTS[2][0]
OUTSIDER = "0x" + "ee" * 20
ETH = 10**18


def head(url: str) -> int:
    return int(rpc_sync(url, "eth_blockNumber"), 16)


def native(url: str, addr: str, block: int) -> int:
    return int(rpc_sync(url, "eth_getBalance", [addr, hex(block)]), 16)


def by_key(report) -> dict:
    return {(r.wallet, r.asset): r for run in report.runs for r in run.results}


def hot_wallet_chain(anvil, tmp_path, assets: list[str], reconcile: dict):
    """A fresh token and settings with only the hot wallet, starting at the next block."""
    token = deploy_token(anvil.url)
    start = head(anvil.url) + 1
    return token, make_settings(tmp_path, {
        "chains": [evm_chain("anvil", anvil.url, token, finality_depth=1, start_block=start,
                             wallets=[{"name": "hot", "address": HOT, "assets": assets}])],
        "reconcile": reconcile,
    })


async def index(settings, pool) -> int:
    cfg = settings.chains[0]
    wallets = [w.address for w in cfg.wallets if "native" in w.assets]
    follower = EvmFollower(cfg, pool, hooks=[LedgerHook(settings)], sources=[NativeTransferSource(cfg.name, wallets)])
    try:
        await follower.backfill()
    finally:
        await follower.close()
    return follower.final_number


@pytest.fixture
def chain(anvil, tmp_path):
    url = anvil.url
    token = deploy_token(url)
    batch_transfer(url, token, [HOT], [500])  # before the start block: part of the opening balance
    start = head(url) + 1
    settings = make_settings(tmp_path, {
        "chains": [evm_chain("anvil", url, token, finality_depth=1, start_block=start, wallets=[
            {"name": "hot", "address": HOT, "assets": ["Token", "native"]},
            {"name": "cold", "address": COLD, "assets": ["native"]},
        ])],
    })
    return url, token, settings, start


async def test_deposits_reconcile_then_back_door_transfers_are_caught(chain, pool):
    url, token, settings, start = chain
    tok, nat = "anvil:Token", "anvil:native"
    # Deposits: ERC-20 from the deployer, native from a payer, and one
    # internal move from hot to cold sent by hot (its gas is a booked fee).
    batch_transfer(url, token, [HOT, OUTSIDER], [1000, 5])
    batch_transfer(url, token, [HOT], [234])
    send(url, PAYER, HOT, value=3 * ETH)
    send(url, HOT, COLD, value=ETH)

    h = await index(settings, pool)
    assert h == head(url)
    report = await reconcile_once(settings, pool)
    assert not report.has_mismatch and report.exit_code == EXIT_OK, report.to_json()
    res = by_key(report)
    assert set(res) == {(HOT, tok), (HOT, nat), (COLD, nat)}
    assert res[(HOT, tok)].expected == res[(HOT, tok)].actual == token_balance(url, token, HOT) == 500 + 1000 + 234
    assert res[(HOT, nat)].actual == native(url, HOT, h) and res[(HOT, nat)].difference == 0
    assert res[(COLD, nat)].actual == native(url, COLD, h) and res[(COLD, nat)].difference == 0
    assert report.runs[0].height == h

    # Behind the daemon's back: hot sends tokens and coin straight from its
    # key; more deposits arrive too. Nothing is indexed yet: H stays put and
    # so does every figure at H, although the chain moved on.
    moved_tokens, moved_coin = 321, ETH // 4
    send(url, HOT, token, calldata("transfer(address,uint256)", ["address", "uint256"], [OUTSIDER, moved_tokens]))
    send(url, HOT, OUTSIDER, value=moved_coin)
    batch_transfer(url, token, [HOT], [99])
    rpc_sync(url, "anvil_mine", ["0x3"])
    again = await reconcile_once(settings, pool)
    assert again.runs[0].height == h and again.exit_code == EXIT_OK
    assert {k: (r.expected, r.actual) for k, r in by_key(again).items()} == {k: (r.expected, r.actual) for k, r in res.items()}

    # The next run after indexing sees exactly the back-door amounts.
    h2 = await index(settings, pool)
    assert h2 == head(url) > h
    report = await reconcile_once(settings, pool)
    assert report.has_mismatch and report.exit_code == EXIT_MISMATCH
    res = by_key(report)
    assert res[(HOT, tok)].difference == -moved_tokens and res[(HOT, tok)].status == "mismatch"
    assert res[(HOT, tok)].actual == token_balance(url, token, HOT, hex(h2))
    assert res[(HOT, nat)].difference == -moved_coin  # its gas was booked as a fee; the value was not
    assert res[(COLD, nat)].difference == 0 and res[(COLD, nat)].status == "ok"
    assert all(mv["booked_by"] == ["anvil.Token.deposit"] for mv in res[(HOT, tok)].movements if mv["booked"])
    unbooked = [mv for mv in res[(HOT, tok)].movements if not mv["booked"]]
    assert [(mv["event"], mv["args"]["to"], mv["args"]["value"]) for mv in unbooked] == [("Transfer", OUTSIDER, str(moved_tokens))]

    out = orjson.loads(report.to_json())
    assert out["status"] == "mismatch"
    hot_tok = next(r for r in out["chains"][0]["results"] if r["asset"] == tok)
    assert hot_tok["difference"] == str(-moved_tokens)
    async with pool.acquire() as conn:
        assert await is_paused(conn, tok) and await is_paused(conn, nat)
        audits = await conn.fetch("SELECT subject, details FROM audit_log WHERE action = 'reconcile.mismatch' ORDER BY id")
        assert sorted((a["subject"], a["details"]["difference"]) for a in audits) == sorted(
            [(tok, str(-moved_tokens)), (nat, str(-moved_coin))])
        stored = await conn.fetch(
            """SELECT x.asset_id, x.expected, x.actual, x.difference, x.status FROM reconciliation_results x
               WHERE x.run_id = $1 ORDER BY x.asset_id, x.account_id""", report.runs[0].run_id)
        assert len(stored) == 3 and sum(r["status"] == "mismatch" for r in stored) == 2
        runs = await conn.fetch("SELECT status, height FROM reconciliation_runs ORDER BY id")
        assert [(r["status"], r["height"]) for r in runs] == [("ok", h), ("ok", h), ("mismatch", h2)]

    # The operator books what happened and lifts the pauses.
    w = f"wallet:anvil:{HOT}"
    await book_adjustment(pool, chain="anvil", author="ops", reason="manual withdrawal to cold storage",
                          postings=[Posting(w, tok, -moved_tokens), Posting(f"external:anvil:{OUTSIDER}", tok, moved_tokens),
                                    Posting(w, nat, -moved_coin), Posting(f"external:anvil:{OUTSIDER}", nat, moved_coin)])
    await resolve_pause(pool, tok, "ops", "booked as external withdrawal")
    await resolve_pause(pool, nat, "ops", "booked as external withdrawal")
    final = await reconcile_once(settings, pool)
    assert final.exit_code == EXIT_OK, final.to_json()
    async with pool.acquire() as conn:
        assert not await is_paused(conn, tok)


async def test_the_unbooked_cause_of_a_difference_leads_its_stored_evidence(anvil, tmp_path, pool):
    # Issue 30: on a busy wallet the newest 20 movements were all booked and the cause fell out of the list.
    from tests.support.api_data import client_for, published

    url = anvil.url
    token, settings = hot_wallet_chain(anvil, tmp_path, ["Token"], {"max_movements": 3})
    batch_transfer(url, token, [HOT], [1000])
    await index(settings, pool)
    assert (await reconcile_once(settings, pool)).exit_code == EXIT_OK
    send(url, HOT, token, calldata("transfer(address,uint256)", ["address", "uint256"], [OUTSIDER, 7]))
    for amount in (10, 500, 20, 30, 40):  # newer, booked, and most of them larger than the cause
        batch_transfer(url, token, [HOT], [amount])
    await index(settings, pool)
    report = await reconcile_once(settings, pool)
    res = by_key(report)[(HOT, "anvil:Token")]
    assert (res.difference, res.movements_total) == (-7, 6)
    assert [(mv["booked"], mv["amount"]) for mv in res.movements] == [(False, "7"), (True, "500"), (True, "40")]
    assert res.movements[0]["args"]["to"] == OUTSIDER
    async with client_for(published(settings, "reconciliation"), pool) as client:
        body = await (await client.get("/v1/reconciliation", params={"status": "mismatch"})).json()
    shown = body["runs"][0]["results"][0]
    assert shown["movements_total"] == 6 and shown["movements"] == orjson.loads(orjson.dumps(res.movements))
    out = orjson.loads(report.to_json())  # what `chainsettle reconcile --once` prints
    assert out["chains"][0]["results"][0]["movements"][0]["amount"] == "7"


async def test_opening_balance_is_read_at_the_start_height(chain, pool):
    url, token, settings, start = chain
    before = native(url, HOT, start - 1)
    send(url, PAYER, HOT, value=ETH)  # the start block itself moves the balance: not in the opening
    await index(settings, pool)
    await reconcile_once(settings, pool)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT t.cause, t.block_number, p.amount FROM ledger_transactions t
               JOIN postings p ON p.transaction_id = t.id
               JOIN ledger_accounts a ON a.id = p.account_id
               WHERE t.cause_kind = 'opening' AND a.code = $1 ORDER BY p.asset_id""", f"wallet:anvil:{HOT}")
    assert [(r["cause"]["asset"], r["block_number"], int(r["amount"])) for r in rows] == [
        ("anvil:Token", start - 1, token_balance(url, token, HOT, hex(start - 1))),
        ("anvil:native", start - 1, before),
    ]


async def test_tolerance_separates_noise_from_mismatch(anvil, tmp_path, pool):
    url = anvil.url
    token, settings = hot_wallet_chain(anvil, tmp_path, ["Token", "native"], {"tolerance": 1000})
    batch_transfer(url, token, [HOT], [50])
    send(url, HOT, token, calldata("transfer(address,uint256)", ["address", "uint256"], [OUTSIDER, 7]))
    send(url, HOT, OUTSIDER, value=10**6)
    await index(settings, pool)
    report = await reconcile_once(settings, pool)
    res = by_key(report)
    assert (res[(HOT, "anvil:Token")].difference, res[(HOT, "anvil:Token")].status) == (-7, "within_tolerance")
    assert (res[(HOT, "anvil:native")].difference, res[(HOT, "anvil:native")].status) == (-10**6, "mismatch")
    async with pool.acquire() as conn:
        assert not await is_paused(conn, "anvil:Token")
        assert await is_paused(conn, "anvil:native")


async def test_unreadable_chain_is_an_error_run_not_a_match(tmp_path, pool):
    from indexer.models import Cursor
    from indexer.store import Store

    settings = make_settings(tmp_path, {"chains": [evm_chain(
        "dead", "http://127.0.0.1:9/v1/SECRETAPIKEY", max_attempts=1, request_timeout=2,
        wallets=[{"name": "hot", "address": HOT, "assets": ["native"]}])]})
    report = await reconcile_once(settings, pool)  # nothing indexed yet
    assert report.exit_code == 2 and not report.has_mismatch
    assert "no final, indexed height" in report.runs[0].error

    store = Store(pool, "dead", [LedgerHook(settings)])
    await store.ensure_chain("evm", 31337)
    await store.commit_range(from_block=5, to_block=5, events=[], expected=None, cursor=Cursor(5, "0x" + "5" * 64),
                             final_number=5)
    report = await reconcile_once(settings, pool)
    assert report.exit_code == 2 and report.runs[0].status == "error" and report.runs[0].height == 5
    assert "BalanceError" in report.runs[0].error
    assert "SECRETAPIKEY" not in report.to_json()  # providers put keys in the URL
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, height, error FROM reconciliation_runs ORDER BY id")
    assert [(r["status"], r["height"]) for r in rows] == [("error", None), ("error", 5)]
    assert all("SECRETAPIKEY" not in r["error"] for r in rows)
