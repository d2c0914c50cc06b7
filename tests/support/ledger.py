"""A chain with assets and a final height, and helpers to fund ledger accounts (no node needed)."""

from __future__ import annotations

import os

from indexer.store import Store
from settlement.ledger.books import Posting, post_transaction, sync_ledger
from tests.support.config import make_settings

CHAIN = "local"
ASSET = f"{CHAIN}:native"
BATCHER = "0x" + "b7" * 20


def ledger_settings(tmp_path, *, accounts=(), create_app_accounts=False, payouts=False, api=None,
                    require_balance=True, contracts=(), **ledger):
    chain = {"name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:1"],
             "wallets": [{"name": "hot", "address": "0x" + "a1" * 20, "assets": ["native"]}]}
    if contracts:
        chain["contracts"] = list(contracts)
    data: dict = {"chains": [chain], "ledger": {"accounts": list(accounts),
                                                 "create_app_accounts": create_app_accounts, **ledger}}
    if api is not None:
        data["api"] = {"rate_limit_per_second": 100000.0, "rate_limit_burst": 100000, **api}
    if payouts:
        os.environ.setdefault("CS_TEST_SIGNER_KEY", "0x" + "11" * 32)
        os.environ.setdefault("CS_TEST_SENDER_KEY", "0x" + "22" * 32)
        data["payouts"] = {"require_balance": require_balance, "chains": [{
            "chain": CHAIN, "batcher": BATCHER, "signer": {"key": "env:CS_TEST_SIGNER_KEY"},
            "sender": {"key": "env:CS_TEST_SENDER_KEY"}, "max_fee_per_gas": 10**11,
            "assets": [{"name": "native"}]}]}
    return make_settings(tmp_path, data)


async def ready_chain(pool, settings, final: int = 100) -> None:
    """The chain row, its assets and accounts, and a final height."""
    store = Store(pool, CHAIN, [])
    await store.ensure_chain("evm", 31337)
    async with pool.acquire() as conn:
        await sync_ledger(conn, settings, CHAIN)
        await conn.execute("UPDATE chain_state SET final_number = $2, cursor_number = $2 WHERE chain = $1",
                           CHAIN, final)


async def fund(pool, account: str, amount: int, *, block: int | None = None, asset: str = ASSET) -> None:
    """Chain-derived value for `account` (a manual entry), at `block` (default: the final height)."""
    chain = asset.split(":")[0]
    async with pool.acquire() as conn:
        if block is None:
            block = await conn.fetchval("SELECT final_number FROM chain_state WHERE chain = $1", chain)
        await post_transaction(conn, key=f"fund:{os.urandom(8).hex()}", cause_kind="manual",
                               cause={"why": "test funds"}, chain=chain, block_number=block,
                               postings=[Posting(account, asset, -amount),
                                         Posting(f"adjustment:{chain}:seed", asset, amount)],
                               author="test", reason="fund an account")


async def balance_parts(pool, account: str, asset: str = ASSET) -> dict:
    """final / held / reserved / available of one account, and the row's posted checked against the postings."""
    from settlement.ledger.transfers import account_balances

    async with pool.acquire() as conn:
        rows = await account_balances(conn, account)
        internal = await conn.fetchval(
            "SELECT COALESCE(sum(p.amount), 0) FROM postings p JOIN ledger_accounts a ON a.id = p.account_id "
            "WHERE a.code = $1 AND p.asset_id = $2 AND p.internal", account, asset)
        posted = await conn.fetchval(
            "SELECT COALESCE(b.posted, 0) FROM ledger_account_balances b JOIN ledger_accounts a "
            "ON a.id = b.account_id WHERE a.code = $1 AND b.asset_id = $2", account, asset)
        held = await conn.fetchval(
            "SELECT COALESCE(sum(h.amount), 0) FROM ledger_holds h JOIN ledger_accounts a "
            "ON a.id = h.debit_account_id WHERE a.code = $1 AND h.asset_id = $2 AND h.state = 'pending'",
            account, asset)
    assert int(internal) == int(posted or 0), f"{account}: balance row posted {posted} != transfer postings {internal}"
    row = next((r for r in rows if r["asset_id"] == asset), None)
    if row is None:
        return {"final": 0, "held": 0, "reserved": 0, "pending": 0, "available": 0}
    assert int(row["held"]) == int(held), f"{account}: balance row held {row['held']} != pending holds {held}"
    return {k: int(row[k]) for k in ("final", "held", "reserved", "pending", "available")}
