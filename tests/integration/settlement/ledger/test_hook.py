"""The ledger hook books configured movements with the events, exactly once,
and a rollback removes exactly what it booked. Real Postgres, real Store."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from indexer.models import BlockRow, Cursor, EventRow
from indexer.store import Store
from settlement.ledger.books import (
    NoOpenPause,
    Posting,
    UnbalancedTransaction,
    balances_as_of,
    book_adjustment,
    post_transaction,
)
from settlement.ledger.hook import LedgerHook
from settlement.ledger.pauses import is_paused, pause_asset, resolve_pause
from tests.support.config import make_settings

CHAIN = "local"
TOKEN = "0x" + "7" * 40
W1 = "0x" + "a1" * 20
W2 = "0x" + "a2" * 20
S1 = "0x" + "51" * 20
X = "0x" + "ee" * 20


def settings_for(tmp_path, **ledger):
    chain = {
        "name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:1"],
        "contracts": [{"name": "Token", "address": TOKEN, "abi": "erc20"}],
        # Mixed case on purpose: addresses must compare case-insensitively.
        "wallets": [{"name": "hot", "address": W1.upper().replace("0X", "0x"), "assets": ["Token", "native"]},
                    {"name": "cold", "address": W2, "assets": ["Token"]}],
    }
    data = {"chains": [chain]}
    if ledger:
        data["ledger"] = ledger
    return make_settings(tmp_path, data)


def block_hash(n: int, fork: int = 0) -> str:
    return "0x" + f"{fork:02x}{n:062x}"


def ev(n: int, i: int, event: str, args: dict, address: str = TOKEN, fork: int = 0, log_index: int | None = None) -> EventRow:
    return EventRow(CHAIN, n, block_hash(n, fork), "0x" + f"{fork:02x}{n:030x}{i:032x}", i,
                    i if log_index is None else log_index, address, event, orjson.dumps(args).decode())


async def commit(store: Store, n: int, events: list[EventRow], fork: int = 0) -> None:
    st = await store.load_state()
    await store.commit_range(from_block=n, to_block=n, events=events,
                             blocks=[BlockRow(n, block_hash(n, fork), block_hash(n - 1, fork), None)],
                             expected=st.cursor, cursor=Cursor(n, block_hash(n, fork)))


def bal(balances: dict, account: str, asset: str) -> int:
    return balances.get((account, asset), 0)


async def test_deposits_internal_fees_booked_outflow_not(pool, tmp_path):
    settings = settings_for(tmp_path)
    store = Store(pool, CHAIN, [LedgerHook(settings)])
    await store.ensure_chain("evm", 31337)
    await commit(store, 10, [
        ev(10, 0, "Transfer", {"from": S1, "to": W1, "value": "1000"}),          # deposit
        ev(10, 1, "Transfer", {"from": W1, "to": W2, "value": "300"}),           # internal
        ev(10, 2, "Transfer", {"from": W2, "to": X, "value": "50"}),             # out, no rule
        ev(10, 3, "Transfer", {"from": S1, "to": X, "value": "7"}),              # not ours
        ev(10, 4, "Transfer", {"from": S1, "to": W1, "value": "0"}),             # zero: nothing to book
        ev(10, 5, "NativeTransfer", {"from": S1, "to": W1, "value": "5000"}, address="native", log_index=-1),
        ev(10, 6, "NativeFee", {"from": W1, "fee": "21"}, address="native", log_index=-2),
    ])
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, CHAIN, 10)
        count = await conn.fetchval("SELECT count(*) FROM ledger_transactions")
    tok, nat = f"{CHAIN}:Token", f"{CHAIN}:native"
    w1, w2 = f"wallet:{CHAIN}:{W1}", f"wallet:{CHAIN}:{W2}"
    assert bal(b, w1, tok) == 1000 - 300
    assert bal(b, w2, tok) == 300  # the outflow to X is not booked: reconciliation will show it
    assert bal(b, f"user:{CHAIN}:{S1}", tok) == -1000
    assert bal(b, w1, nat) == 5000 - 21
    assert bal(b, f"fee:{CHAIN}", nat) == 21
    assert bal(b, f"user:{CHAIN}:{S1}", nat) == -5000
    assert count == 4
    assert sum(b.values()) == 0

    # A replay of the same range books nothing new.
    await store.commit_range(from_block=10, to_block=10, events=[ev(10, 0, "Transfer", {"from": S1, "to": W1, "value": "1000"})],
                             expected=None, cursor=None)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions") == 4

    # Block 11, then a reorg back to 10: exactly block 11's entries go.
    await commit(store, 11, [ev(11, 0, "Transfer", {"from": S1, "to": W2, "value": "9"})])
    async with pool.acquire() as conn:
        assert bal(await balances_as_of(conn, CHAIN, 11), w2, tok) == 309
    await store.rollback_to(Cursor(10, block_hash(10)), expected=Cursor(11, block_hash(11)))
    async with pool.acquire() as conn:
        assert await balances_as_of(conn, CHAIN, 10**9) == b
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions") == 4


async def test_wallet_books_start_after_its_start_height(pool, tmp_path):
    settings = settings_for(tmp_path)
    store = Store(pool, CHAIN, [LedgerHook(settings)])
    await store.ensure_chain("evm", 31337)
    await commit(store, 5, [ev(5, 0, "Transfer", {"from": S1, "to": W1, "value": "10"})])
    async with pool.acquire() as conn:
        tracked = await conn.fetchval("SELECT tracked_from FROM ledger_wallets WHERE address = $1", W1)
    assert tracked == 4  # the first range started at 5: its opening balance is read at 4


async def test_xrpl_style_rule_with_tag_fallback_and_where(pool, tmp_path):
    rules = [{
        "name": "tagged", "chain": CHAIN, "source": "Token", "event": "Transfer", "wallet": "to",
        "counterparty": "from", "counterparty_is_wallet": False, "where": {"kind": "deposit"},
        "debit": ["{wallet}"], "credit": ["user:{chain}:tag:{memo.tag}", "user:{chain}:{from}"],
    }]
    settings = settings_for(tmp_path, default_rules=False, rules=rules)
    store = Store(pool, CHAIN, [LedgerHook(settings)])
    await store.ensure_chain("evm", 31337)
    await commit(store, 3, [
        ev(3, 0, "Transfer", {"from": S1, "to": W1, "value": "4", "kind": "deposit", "memo": {"tag": "77"}}),
        ev(3, 1, "Transfer", {"from": S1, "to": W1, "value": "6", "kind": "deposit"}),
        ev(3, 2, "Transfer", {"from": S1, "to": W1, "value": "100", "kind": "other"}),
    ])
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, CHAIN, 3)
    assert bal(b, f"user:{CHAIN}:tag:77", f"{CHAIN}:Token") == -4
    assert bal(b, f"user:{CHAIN}:{S1}", f"{CHAIN}:Token") == -6
    assert bal(b, f"wallet:{CHAIN}:{W1}", f"{CHAIN}:Token") == 10


async def test_database_refuses_unbalanced_or_edited_entries(pool, tmp_path):
    settings = settings_for(tmp_path)
    store = Store(pool, CHAIN, [LedgerHook(settings)])
    await store.ensure_chain("evm", 31337)
    await commit(store, 1, [ev(1, 0, "Transfer", {"from": S1, "to": W1, "value": "10"})])
    tok = f"{CHAIN}:Token"
    async with pool.acquire() as conn:
        with pytest.raises(UnbalancedTransaction):
            await post_transaction(conn, key="k1", cause_kind="manual", cause={}, chain=CHAIN, block_number=1,
                                   postings=[Posting("fee:local", tok, 5), Posting("adjustment:x", tok, -4)],
                                   author="a", reason="r")
        # Straight SQL gets the same answer from the database itself.
        with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
            async with conn.transaction():
                tx = await conn.fetchval(
                    "INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, author, reason, chain, block_number)"
                    " VALUES ('k2', 'manual', '{}', 'a', 'r', $1, 1) RETURNING id", CHAIN)
                acc = await conn.fetchval("SELECT id FROM ledger_accounts WHERE code = 'fee:local'")
                await conn.execute("INSERT INTO postings (transaction_id, account_id, asset_id, amount) VALUES ($1, $2, $3, 5)",
                                   tx, acc, tok)
        with pytest.raises(asyncpg.CheckViolationError, match="no postings"):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, author, reason, chain, block_number)"
                    " VALUES ('k3', 'manual', '{}', 'a', 'r', $1, 1)", CHAIN)
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("UPDATE postings SET amount = amount * 2")
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("DELETE FROM postings")
        assert await conn.fetchval("SELECT count(*) FROM postings") == 2


async def test_adjustment_and_pause_lifecycle(pool, tmp_path):
    settings = settings_for(tmp_path)
    store = Store(pool, CHAIN, [LedgerHook(settings)])
    await store.ensure_chain("evm", 31337)
    await store.commit_range(from_block=1, to_block=1, events=[ev(1, 0, "Transfer", {"from": S1, "to": W1, "value": "10"})],
                             expected=None, cursor=Cursor(1, block_hash(1)), final_number=1)
    tok = f"{CHAIN}:Token"
    w1 = f"wallet:{CHAIN}:{W1}"
    tx = await book_adjustment(pool, chain=CHAIN, author="alice", reason="sent out by hand, see ticket 12",
                               postings=[Posting(w1, tok, -3), Posting(f"external:{CHAIN}:{X}", tok, 3)])
    assert tx is not None
    async with pool.acquire() as conn:
        assert bal(await balances_as_of(conn, CHAIN, 1), w1, tok) == 7
        row = await conn.fetchrow("SELECT cause_kind, author, reason, block_number FROM ledger_transactions WHERE id = $1", tx)
        assert tuple(row) == ("manual", "alice", "sent out by hand, see ticket 12", 1)
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'ledger.adjustment'") == 1

        assert not await is_paused(conn, tok)
        assert await pause_asset(conn, tok, "test mismatch", "reconciler") is True
        assert await pause_asset(conn, tok, "again", "reconciler") is False  # one open pause per asset
        assert await is_paused(conn, tok)
    with pytest.raises(NoOpenPause):
        await resolve_pause(pool, f"{CHAIN}:native", "bob", "nothing to resolve")
    out = await resolve_pause(pool, tok, "bob", "booked the adjustment")
    assert out["paused_because"] == "test mismatch"
    async with pool.acquire() as conn:
        assert not await is_paused(conn, tok)
        row = await conn.fetchrow("SELECT resolved_by, resolution FROM asset_pauses WHERE asset_id = $1", tok)
        assert tuple(row) == ("bob", "booked the adjustment")
        actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
        assert actions == ["ledger.adjustment", "asset.paused", "asset.resumed"]


async def test_wallet_added_above_finality_reopens_at_a_reorg_ancestor(pool, tmp_path):
    from settlement.ledger.books import post_opening

    store = Store(pool, CHAIN, [LedgerHook(settings_for(tmp_path))])
    await store.ensure_chain("evm", 31337)
    await commit(store, 10, [])
    await commit(store, 11, [])
    # A third wallet appears in the config while the cursor (11) is not final.
    (tmp_path / "late").mkdir()
    later = settings_for(tmp_path / "late")
    chain = later.chains[0].model_copy(update={"wallets": [
        *later.chains[0].wallets,
        later.chains[0].wallets[0].model_copy(update={"name": "late", "address": X, "assets": ["Token"]})]})
    later = later.model_copy(update={"chains": [chain]})
    store = Store(pool, CHAIN, [LedgerHook(later)])
    await commit(store, 12, [ev(12, 0, "Transfer", {"from": S1, "to": X, "value": "4"})])
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT tracked_from FROM ledger_wallets WHERE address = $1", X) == 11
        await post_opening(conn, CHAIN, X, f"{CHAIN}:Token", 11, 100)  # as read on the old branch
    await store.rollback_to(Cursor(10, block_hash(10)), expected=Cursor(12, block_hash(12)))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT tracked_from FROM ledger_wallets WHERE address = $1", X) == 10
        assert await conn.fetchval("SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'opening'") == 0
    # The new branch's block 11 is booked for the late wallet.
    await commit(store, 11, [ev(11, 0, "Transfer", {"from": S1, "to": X, "value": "6"}, fork=1)], fork=1)
    async with pool.acquire() as conn:
        assert bal(await balances_as_of(conn, CHAIN, 11), f"wallet:{CHAIN}:{X}", f"{CHAIN}:Token") == 6
