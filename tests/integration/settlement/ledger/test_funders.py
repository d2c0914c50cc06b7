"""[[ledger.funders]] on anvil, through the real follower and the daemon's hooks.

A funder's deposit to a watched wallet lands in its app account, never in
a user account; a non-funder's deposit still lands in the sender's user
account; the wallet's transfer back to the funder is a defunding of the app
account; a reorg removes a funding booking like any other entry. On XRPL
(through the real Store), a funder's payment wins over its destination tag.
"""

from __future__ import annotations

import orjson
import pytest

from indexer.models import BlockRow, Cursor, EventRow
from indexer.store import Store
from settlement.ledger.books import balances_as_of
from settlement.ledger.hook import LedgerHook
from tests.integration.settlement.invoices.support import until
from tests.integration.settlement.invoices.test_evm import following, mine, payer
from tests.support.anvil import DEV_ACCOUNTS, Anvil, rpc_sync
from tests.support.config import evm_chain, make_settings
from tests.support.evm import DEPLOYER, calldata, deploy_token, send, token_transfer

CHAIN = "local"  # the name the shared `following` helper follows
HOT = DEV_ACCOUNTS[1][0].lower()  # anvil holds its key: it can send the defunding itself
TREASURY = "app:treasury"
TOK = f"{CHAIN}:Token"


@pytest.fixture
def node():
    with Anvil() as a:
        yield a


async def balances(pool) -> dict:
    async with pool.acquire() as conn:
        return await balances_as_of(conn, CHAIN, 10**9)


async def booked(pool, n: int) -> None:
    await until(pool, "SELECT count(*) = $1 FROM ledger_transactions WHERE cause_kind = 'event' AND cause->>'rule' LIKE '%Token%'", n)


async def test_funding_lands_in_the_app_account_and_a_reorg_removes_it(node, pool, tmp_path):
    url = node.url
    token = deploy_token(url)
    settings = make_settings(tmp_path, {
        "chains": [evm_chain(CHAIN, url, token, finality_depth=3, poll_interval=0.05,
                             wallets=[{"name": "hot", "address": HOT, "assets": ["Token"]}])],
        "ledger": {"funders": [{"chain": CHAIN, "address": DEPLOYER, "account": TREASURY}]},
    })
    p1 = payer(url, 0xD1)
    token_transfer(url, token, DEPLOYER, p1, 10**6)
    async with following(settings, pool):
        token_transfer(url, token, p1, HOT, 100)                # a user's deposit
        token_transfer(url, token, DEPLOYER, HOT, 10**24)       # the funder's
        await booked(pool, 2)
        b = await balances(pool)
        assert b[(TREASURY, TOK)] == -10**24                   # owed to the app: a credit balance
        assert (f"user:{CHAIN}:{DEPLOYER.lower()}", TOK) not in b
        assert b[(f"user:{CHAIN}:{p1}", TOK)] == -100
        assert b[(f"wallet:{CHAIN}:{HOT}", TOK) ] == 10**24 + 100
        rules = {r["rule"] for r in await pool.fetch("SELECT cause->>'rule' AS rule FROM ledger_transactions")}
        assert rules == {f"{CHAIN}.Token.deposit"}
        kind = await pool.fetchval("SELECT kind FROM ledger_accounts WHERE code = $1", TREASURY)
        assert kind == "app"

        # The wallet sends part of it back: a defunding, not an unexplained outflow.
        send(url, HOT, token, calldata("transfer(address,uint256)", ["address", "uint256"], [DEPLOYER, 250]))
        await booked(pool, 3)
        b = await balances(pool)
        assert b[(TREASURY, TOK)] == -(10**24 - 250)
        assert b[(f"wallet:{CHAIN}:{HOT}", TOK)] == 10**24 + 100 - 250

        # A second funding, reorged out: its entry goes with its block.
        token_transfer(url, token, DEPLOYER, HOT, 7)
        await booked(pool, 4)
        rpc_sync(url, "anvil_reorg", [1, []])
        mine(url, 1)
        await booked(pool, 3)
        b = await balances(pool)
        assert b[(TREASURY, TOK)] == -(10**24 - 250)
        assert b[(f"user:{CHAIN}:{p1}", TOK)] == -100
        assert sum(b.values()) == 0


XW = "rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe"     # the watched XRPL wallet
XFUNDER = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
XUSER = "rGWrZyQqhTp9Xu7G5Pkayo7bXjH4k4QYpf"


def payment(n: int, i: int, direction: str, counterparty: str, drops: int, **extra) -> EventRow:
    args = {"direction": direction, "status": "success", "counterparty": counterparty, "role": "affected",
            "delivered_amount": str(drops), "fee": "0", **extra}
    return EventRow("x", n, "0x" + f"{n:064x}", f"{n:032X}{i:032X}", i, i, XW, "Payment", orjson.dumps(args).decode())


async def test_xrpl_funder_credits_its_app_account_even_with_a_tag(pool, tmp_path):
    settings = make_settings(tmp_path, {
        "chains": [{"name": "x", "preset": "xrpl-testnet", "rpc": ["http://127.0.0.1:2"],
                    "wallets": [{"name": "hot", "address": XW, "assets": ["native"]}]}],
        "ledger": {"funders": [{"chain": "x", "address": XFUNDER, "account": "app:xrpl-float"}]},
    })
    store = Store(pool, "x", [LedgerHook(settings)])
    await store.ensure_chain("xrpl", 0)
    n = 7
    await store.commit_range(from_block=n, to_block=n, events=[
        payment(n, 0, "in", XFUNDER, 5_000_000, destination_tag="9"),   # funding, tag or not
        payment(n, 1, "in", XUSER, 300, destination_tag="9"),           # a user's deposit by tag
        payment(n, 2, "out", XFUNDER, 1_000),                           # defunding
        payment(n, 3, "out", XUSER, 20),                                # out, no rule: reconciliation's job
    ], blocks=[BlockRow(n, "0x" + f"{n:064x}", "0x" + f"{n - 1:064x}", None)], expected=None,
        cursor=Cursor(n, "0x" + f"{n:064x}"))
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, "x", n)
    assert b[("app:xrpl-float", "x:native")] == -(5_000_000 - 1_000)
    assert b[("user:x:tag:9", "x:native")] == -300
    assert b[(f"wallet:x:{XW}", "x:native")] == 5_000_000 + 300 - 1_000
    assert (f"user:x:{XFUNDER}", "x:native") not in b and sum(b.values()) == 0
