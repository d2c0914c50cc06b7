"""Transfers between user and app accounts: limits, linked all-or-nothing,
idempotent ids, unfinal value never available. Real Postgres."""

from __future__ import annotations

import pytest

from settlement.ledger.transfers import Transfer, TransferConflict, TransferRefused, create_transfers
from tests.support.ledger import ASSET, CHAIN, balance_parts, fund, ledger_settings, ready_chain

A = f"user:{CHAIN}:0x" + "0a" * 20
B = f"user:{CHAIN}:0x" + "0b" * 20
C = f"user:{CHAIN}:0x" + "0c" * 20


@pytest.fixture
async def settings(pool, tmp_path):
    s = ledger_settings(tmp_path, accounts=[{"code": "app:prizes", "overdraft": "5"},
                                            {"code": "app:treasury", "overdraft": "unlimited"}])
    await ready_chain(pool, s)
    return s


def t(id_, debit, credit, amount, **kw) -> Transfer:
    return Transfer(id_, debit, credit, ASSET, amount, **kw)


async def count(pool, sql: str) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval(sql)


async def test_transfer_moves_value_and_replays_by_id(pool, settings):
    await fund(pool, A, 10)
    out, created = await create_transfers(pool, settings, [t("t1", A, B, 3, code=7, memo="prize")], "test")
    assert created and out[0]["amount"] == "3" and out[0]["code"] == 7
    assert (await balance_parts(pool, A))["available"] == 7
    assert (await balance_parts(pool, B))["final"] == 3
    again, created = await create_transfers(pool, settings, [t("t1", A, B, 3, code=7, memo="prize")], "test")
    assert not created and again == out
    for changed, field in ((t("t1", A, B, 4, code=7, memo="prize"), "amount"),
                           (t("t1", A, C, 3, code=7, memo="prize"), "credit_account"),
                           (t("t1", A, B, 3, code=7, memo="other"), "memo")):
        with pytest.raises(TransferConflict) as exc:
            await create_transfers(pool, settings, [changed], "test")
        assert exc.value.field == f"transfers[0].{field}"
    assert await count(pool, "SELECT count(*) FROM ledger_transactions WHERE cause_kind = 'transfer'") == 1
    assert (await balance_parts(pool, A))["available"] == 7


async def test_limits_name_the_account_and_reason(pool, settings, tmp_path):
    await fund(pool, A, 10)
    with pytest.raises(TransferRefused) as exc:
        await create_transfers(pool, settings, [t("x1", A, B, 11)], "test")
    assert (exc.value.result, exc.value.account, exc.value.field) == (
        "exceeds_available", A, "transfers[0].debit_account")
    # An app account may go its overdraft below zero, not one unit more.
    await create_transfers(pool, settings, [t("p1", "app:prizes", B, 5)], "test")
    with pytest.raises(TransferRefused) as exc:
        await create_transfers(pool, settings, [t("p2", "app:prizes", B, 1)], "test")
    assert (exc.value.result, exc.value.account) == ("exceeds_available", "app:prizes")
    assert (await balance_parts(pool, "app:prizes"))["final"] == -5
    await create_transfers(pool, settings, [t("u1", "app:treasury", C, 10**30)], "test")  # unlimited
    cases = [
        (t("k1", "app:nobody", B, 1), "unknown_account", "transfers[0].debit_account"),
        (t("k2", A, f"user:other:0x{'0d' * 20}", 1), "asset_mismatch", "transfers[0].credit_account"),
        (t("k3", f"wallet:{CHAIN}:0x{'a1' * 20}", B, 1), "account_kind", "transfers[0].debit_account"),
        (Transfer("k4", A, B, "local:nope", 1), "unknown_asset", "transfers[0].asset"),
        (t("k5", A, A, 1), "same_account", "transfers[0].credit_account"),
    ]
    for transfer, result, field in cases:
        with pytest.raises(TransferRefused) as exc:
            await create_transfers(pool, settings, [transfer], "test")
        assert (exc.value.result, exc.value.field) == (result, field)
    # With create_app_accounts, an unlisted app account is created on first use (overdraft 0).
    open_settings = ledger_settings(tmp_path, create_app_accounts=True)
    await create_transfers(pool, open_settings, [t("n1", A, "app:pool", 2)], "test")
    with pytest.raises(TransferRefused) as exc:
        await create_transfers(pool, open_settings, [t("n2", "app:pool", B, 3)], "test")
    assert exc.value.result == "exceeds_available"


async def test_linked_request_with_one_bad_transfer_writes_nothing(pool, settings):
    await fund(pool, A, 10)
    before = [await count(pool, f"SELECT count(*) FROM {table}")
              for table in ("postings", "ledger_accounts", "ledger_account_balances")]
    batch = [t("l1", A, B, 4), t("l2", B, C, 4), t("l3", A, C, 7)]  # l3: 6 left
    with pytest.raises(TransferRefused) as exc:
        await create_transfers(pool, settings, batch, "test")
    assert (exc.value.index, exc.value.result) == (2, "exceeds_available")
    after = [await count(pool, f"SELECT count(*) FROM {table}")
             for table in ("postings", "ledger_accounts", "ledger_account_balances")]
    assert after == before  # not even the accounts B and C it named
    assert await count(pool, "SELECT count(*) FROM ledger_transfers") == 0
    assert [(await balance_parts(pool, x))["final"] for x in (A, B, C)] == [10, 0, 0]
    # In order: B spends what the first transfer of the request credited it.
    out, _ = await create_transfers(pool, settings, batch[:2], "test")
    assert [o["id"] for o in out] == ["l1", "l2"]
    assert [(await balance_parts(pool, x))["final"] for x in (A, B, C)] == [6, 0, 4]
    # A replay must name the same linked set.
    with pytest.raises(TransferConflict):
        await create_transfers(pool, settings, batch[:1], "test")


async def test_unfinal_value_is_pending_not_available(pool, settings):
    await fund(pool, A, 10)
    await fund(pool, A, 50, block=101)  # above the final height (100)
    parts = await balance_parts(pool, A)
    assert (parts["final"], parts["available"], parts["pending"]) == (10, 10, 50)
    with pytest.raises(TransferRefused):
        await create_transfers(pool, settings, [t("f1", A, B, 11)], "test")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE chain_state SET final_number = 101 WHERE chain = $1", CHAIN)
    await create_transfers(pool, settings, [t("f1", A, B, 11)], "test")
    assert (await balance_parts(pool, A))["available"] == 49
