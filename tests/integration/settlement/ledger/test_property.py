"""Property: random sequences of blocks, replays and reorg rollbacks keep
every ledger transaction balanced, the balances equal an independent model
of the configured rules over the surviving events, and a rollback restores
the balances exactly as they were at the common ancestor.

Real Postgres through the real Store and LedgerHook; examples stay modest.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from indexer.models import BlockRow, Cursor, EventRow
from indexer.store import Store
from settlement.ledger.books import balances_as_of
from settlement.ledger.hook import LedgerHook
from tests.support.config import make_settings

ROOT = Path(__file__).resolve().parents[4]
CHAIN = "prop"
TOKEN = "0x" + "70" * 20
BATCHER = "0x" + "b0" * 20
W1, W2 = "0x" + "a1" * 20, "0x" + "a2" * 20
S1, S2, X = "0x" + "51" * 20, "0x" + "52" * 20, "0x" + "ee" * 20
WALLETS = {W1, W2, BATCHER}
PARTIES = [W1, W2, BATCHER, S1, S2, X]
ZERO = "0x" + "0" * 40
START = 100
TOK, NAT = f"{CHAIN}:Token", f"{CHAIN}:native"


def make_config(tmp_path):
    return make_settings(tmp_path, {
        "chains": [{
            "name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:1"], "start_block": START,
            "contracts": [
                {"name": "Token", "address": TOKEN, "abi": "erc20"},
                {"name": "batcher", "address": BATCHER, "abi": str(ROOT / "contracts/artifacts/PayoutBatcher.json")},
            ],
            "wallets": [
                {"name": "w1", "address": W1, "assets": ["Token", "native"]},
                {"name": "w2", "address": W2, "assets": ["Token", "native"]},
                {"name": "batcher", "address": BATCHER, "assets": ["Token", "native"]},
            ],
        }],
        "ledger": {"rules": [{
            "name": "payouts", "chain": CHAIN, "source": "batcher", "event": "PayoutSent", "wallet": "address",
            "amount": "amount", "asset": "{asset}", "debit": "user:{chain}:{recipient}", "credit": "{wallet}",
        }]},
    })


movement = st.tuples(
    st.sampled_from(["Transfer", "NativeTransfer", "NativeFee", "PayoutSent"]),
    st.sampled_from(PARTIES), st.sampled_from(PARTIES),
    st.integers(min_value=0, max_value=10**30),
    st.booleans(),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("block"), st.lists(movement, max_size=5)),
        st.tuples(st.just("rollback"), st.integers(min_value=1, max_value=4)),
        st.tuples(st.just("replay"), st.integers(min_value=0, max_value=6)),
    ),
    min_size=1, max_size=12,
)


def to_event(n: int, block_hash: str, i: int, mv) -> EventRow:
    kind, a, b, amount, native_payout = mv
    if kind == "Transfer":
        address, args = TOKEN, {"from": a, "to": b, "value": str(amount)}
    elif kind == "NativeTransfer":
        address, args = "native", {"from": a, "to": b, "value": str(amount)}
    elif kind == "NativeFee":
        address, args = "native", {"from": a, "fee": str(amount)}
    else:
        address = BATCHER
        args = {"batchId": "0x" + "11" * 32, "index": str(i), "recipient": b,
                "asset": ZERO if native_payout else TOKEN, "amount": str(amount)}
    return EventRow(CHAIN, n, block_hash, "0x" + block_hash[4:34] + f"{i:034x}", i, i, address, kind,
                    orjson.dumps(args).decode())


def model_balances(events: list[EventRow]) -> dict[tuple[str, str], int]:
    """The configured rules, re-derived by hand."""
    out: Counter = Counter()
    w = lambda a: f"wallet:{CHAIN}:{a}"  # noqa: E731
    u = lambda a: f"user:{CHAIN}:{a}"  # noqa: E731

    def book(debit, credit, asset, amount):
        if amount > 0:
            out[(debit, asset)] += amount
            out[(credit, asset)] -= amount

    for e in events:
        args = orjson.loads(e.args)
        if e.event in ("Transfer", "NativeTransfer"):
            asset = TOK if e.event == "Transfer" else NAT
            frm, to, v = args["from"], args["to"], int(args["value"])
            if to in WALLETS:
                book(w(to), w(frm) if frm in WALLETS else u(frm), asset, v)
        elif e.event == "NativeFee":
            if args["from"] in WALLETS:
                book(f"fee:{CHAIN}", w(args["from"]), NAT, int(args["fee"]))
        elif e.event == "PayoutSent":
            asset = NAT if args["asset"] == ZERO else TOK
            book(u(args["recipient"]), w(BATCHER), asset, int(args["amount"]))
    return {k: v for k, v in out.items() if v != 0}


async def ledger_state(pool) -> tuple[dict, list]:
    async with pool.acquire() as conn:
        b = await balances_as_of(conn, CHAIN, 10**12)
        unbalanced = await conn.fetch(
            """SELECT t.id FROM ledger_transactions t LEFT JOIN postings p ON p.transaction_id = t.id
               GROUP BY t.id HAVING count(p.id) < 2
               UNION ALL
               SELECT transaction_id FROM postings GROUP BY transaction_id, asset_id HAVING sum(amount) <> 0""")
    return {k: v for k, v in b.items() if v != 0}, unbalanced


async def reset(pool) -> None:
    async with pool.acquire() as conn:
        for sql in ("DELETE FROM ledger_transactions", "DELETE FROM events", "DELETE FROM blocks",
                    "DELETE FROM reorgs", "DELETE FROM ledger_wallets", "DELETE FROM chain_state"):
            await conn.execute(sql)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=ops)
async def test_random_blocks_and_rollbacks_keep_books_balanced_and_exact(pool, tmp_path, script):
    await reset(pool)
    store = Store(pool, CHAIN, [LedgerHook(make_config(tmp_path))])
    await store.ensure_chain("evm", 31337)
    chain: list[tuple[int, str, list[EventRow]]] = []  # the canonical blocks, in order
    snapshots = {START - 1: {}}  # cursor height -> balances right after it was committed
    fork = 0
    cursor: Cursor | None = None
    for op in script:
        if op[0] == "block":
            n = chain[-1][0] + 1 if chain else START
            h = "0x" + f"{fork:04x}{n:060x}"
            events = [to_event(n, h, i, mv) for i, mv in enumerate(op[1])]
            parent = chain[-1][1] if chain else "0x" + "0" * 64
            await store.commit_range(from_block=n, to_block=n, events=events, blocks=[BlockRow(n, h, parent, None)],
                                     expected=cursor, cursor=Cursor(n, h))
            cursor = Cursor(n, h)
            chain.append((n, h, events))
            balances, bad = await ledger_state(pool)
            snapshots[n] = balances
        elif op[0] == "rollback":
            if not chain:
                continue
            keep = max(0, len(chain) - op[1])
            ancestor = Cursor(chain[keep - 1][0], chain[keep - 1][1]) if keep else Cursor(START - 1, "0x" + "0" * 64)
            await store.rollback_to(ancestor, expected=cursor)
            cursor = ancestor
            del chain[keep:]
            fork += 1  # the new branch has other hashes
            balances, bad = await ledger_state(pool)
            assert balances == snapshots[ancestor.number], "a rollback must restore the balances exactly"
            for k in [k for k in snapshots if k > ancestor.number]:
                del snapshots[k]
        else:  # replay an already committed block: nothing changes
            if not chain:
                continue
            n, h, events = chain[op[1] % len(chain)]
            before, _ = await ledger_state(pool)
            await store.commit_range(from_block=n, to_block=n, events=events, expected=None, cursor=None)
            balances, bad = await ledger_state(pool)
            assert balances == before
        assert bad == [], f"unbalanced or empty ledger transactions: {bad}"
        assert balances == model_balances([e for _, _, evs in chain for e in evs])
        assert sum(balances.values()) == 0
