"""Native value paid to a wallet through internal calls: traces on reconcile, traces off show the difference."""

from __future__ import annotations

import asyncio

import pytest

from indexer.evm.follower import EvmFollower
from indexer.evm.native_scan import NativeTransferSource
from indexer.evm.traces import Tracer
from settlement.ledger.hook import LedgerHook
from settlement.reconcile.runs import EXIT_MISMATCH, EXIT_OK, reconcile_once
from tests.integration.indexer.evm.test_reorgs import wait_synced
from tests.support.anvil import DEV_ACCOUNTS, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import calldata, deploy, send

WALLET = DEV_ACCOUNTS[3][0]
PAYER = DEV_ACCOUNTS[2][0]
ETH = 10**18
PAID, REVERTED, DIRECT = 2 * ETH, ETH, ETH // 2


def head(url: str) -> int:
    return int(rpc_sync(url, "eth_blockNumber"), 16)


@pytest.fixture
def paid(anvil):
    """A contract pays WALLET through a call two levels deep; a second inner payment reverts."""
    url = anvil.url
    relay, payer = deploy(url, "TestRelay"), deploy(url, "TestPayer")
    start = head(url) + 1
    data = calldata("payVia(address,address,uint256,uint256)", ["address", "address", "uint256", "uint256"],
                    [relay, WALLET, PAID, REVERTED])
    receipt = send(url, PAYER, payer, data, value=PAID + REVERTED, gas=400_000)
    send(url, PAYER, WALLET, value=DIRECT)  # a plain top-level deposit alongside
    return url, relay, payer, start, receipt


def settings_for(tmp_path, url: str, start: int, traces: str, scope: str = "wallets"):
    return make_settings(tmp_path, {"chains": [evm_chain(
        "anvil", url, finality_depth=1, start_block=start, traces=traces, trace_blocks=scope,
        wallets=[{"name": "prizes", "address": WALLET, "assets": ["native"]}])]})


async def index(settings, pool) -> None:
    cfg = settings.chains[0]
    tracer = Tracer(cfg.name, cfg.traces, cfg.trace_blocks) if cfg.traces != "off" else None
    follower = EvmFollower(cfg, pool, hooks=[LedgerHook(settings)],
                           sources=[NativeTransferSource(cfg.name, [WALLET], tracer=tracer)])
    try:
        await follower.backfill()
    finally:
        await follower.close()


@pytest.mark.parametrize(("traces", "scope"), [("callTracer", "wallets"), ("parity", "all"), ("auto", "wallets")])
async def test_internal_payment_reconciles_with_traces(paid, pool, tmp_path, traces, scope):
    url, relay, payer, start, receipt = paid
    settings = settings_for(tmp_path, url, start, traces, scope)
    await index(settings, pool)
    rows = await pool.fetch("SELECT tx_hash, log_index, args FROM events WHERE event = 'InternalTransfer'")
    # Only the inner call that did not revert: payer -> relay -> wallet, the second frame of the tree.
    assert [(r["tx_hash"], r["log_index"], r["args"]) for r in rows] == [
        (receipt["transactionHash"], -4,
         {"from": relay.lower(), "to": WALLET.lower(), "value": str(PAID), "type": "CALL", "path": "0.0"})]
    report = await reconcile_once(settings, pool)
    assert report.exit_code == EXIT_OK, report.to_json()
    (result,) = [r for run in report.runs for r in run.results]
    assert result.difference == 0 and result.actual == int(rpc_sync(url, "eth_getBalance", [WALLET, hex(head(url))]), 16)
    # Booked like a top-level deposit: to the paying contract's user account.
    credited = await pool.fetchval(
        """SELECT -sum(p.amount) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id
           WHERE a.code = $1""", f"user:anvil:{relay.lower()}")
    assert credited == PAID


async def test_internal_payment_is_a_reconciliation_difference_with_traces_off(paid, pool, tmp_path):
    url, relay, payer, start, _ = paid
    settings = settings_for(tmp_path, url, start, "off")
    await index(settings, pool)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE event = 'InternalTransfer'") == 0
    report = await reconcile_once(settings, pool)
    assert report.exit_code == EXIT_MISMATCH
    (result,) = [r for run in report.runs for r in run.results]
    assert result.difference == PAID  # on chain, not in the books: the documented blind spot


async def test_a_reorg_removes_the_internal_transfer_and_its_booking(anvil, pool, tmp_path):
    url = anvil.url
    relay, payer = deploy(url, "TestRelay"), deploy(url, "TestPayer")
    rpc_sync(url, "anvil_mine", ["0x3"])
    start = head(url) + 1
    settings = make_settings(tmp_path, {"chains": [evm_chain(
        "anvil", url, finality_depth=4, poll_interval=0.05, start_block=start, traces="callTracer",
        wallets=[{"name": "prizes", "address": WALLET, "assets": ["native"]}])]})
    cfg = settings.chains[0]
    follower = EvmFollower(cfg, pool, hooks=[LedgerHook(settings)],
                           sources=[NativeTransferSource(cfg.name, [WALLET], tracer=Tracer(cfg.name, "callTracer"))])
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    data = calldata("payVia(address,address,uint256,uint256)", ["address", "address", "uint256", "uint256"],
                    [relay, WALLET, PAID, 0])
    booked = """SELECT coalesce(sum(p.amount), 0) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id
                WHERE a.code = $1"""
    try:
        rpc_sync(url, "anvil_mine", ["0x2"])  # blocks held below the one that pays: a common ancestor
        await wait_synced(pool, url, chain="anvil")
        send(url, PAYER, payer, data, value=PAID, gas=400_000)
        await wait_synced(pool, url, chain="anvil")
        assert await pool.fetchval("SELECT count(*) FROM events WHERE event = 'InternalTransfer'") == 1
        assert await pool.fetchval(booked, f"user:anvil:{relay.lower()}") == -PAID
        # The block that paid is replaced by one that does not.
        rpc_sync(url, "anvil_reorg", [1, []])
        await wait_synced(pool, url, chain="anvil")
        assert await pool.fetchval("SELECT count(*) FROM events WHERE event = 'InternalTransfer'") == 0
        assert await pool.fetchval(booked, f"user:anvil:{relay.lower()}") == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await follower.close()
