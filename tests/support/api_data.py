"""Data and clients for the API tests: rows go in through the real Store."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from api.app import make_app
from config import Settings
from indexer.models import BlockRow, Cursor, EventRow
from indexer.store import Store
from tests.support.config import make_settings

ZERO_HASH = "0x" + "00" * 32


@contextlib.asynccontextmanager
async def client_for(settings, pool, headers: dict[str, str] | None = None):
    """The app as `run` builds it, served on a loopback port for one test (`headers` on every request)."""
    client = TestClient(TestServer(make_app(settings, pool)), headers=headers)
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def block_hash(chain: str, number: int) -> str:
    return "0x" + hashlib.sha256(f"{chain}:{number}".encode()).hexdigest()


def address(i: int) -> str:
    return "0x" + f"{i:040x}"


def event_row(chain: str, block: int, log_index: int, *, addr: str, event: str = "Transfer",
              args: dict | None = None, tx_index: int = 0) -> EventRow:
    args = args if args is not None else {"from": address(1), "to": address(2), "value": str(block * 1000 + log_index)}
    tx = "0x" + hashlib.sha256(f"{chain}:{block}:{tx_index}".encode()).hexdigest()
    return EventRow(chain, block, block_hash(chain, block), tx, tx_index, log_index, addr.lower(), event,
                    orjson.dumps(args).decode())


def block_rows(chain: str, numbers: Iterable[int], timestamp: int | None = None) -> list[BlockRow]:
    ts = timestamp if timestamp is not None else int(time.time())
    return [BlockRow(n, block_hash(chain, n), block_hash(chain, n - 1) if n else ZERO_HASH, ts) for n in numbers]


async def commit_blocks(store: Store, from_block: int, to_block: int, events: list[EventRow], *,
                        final_number: int | None = None, timestamp: int | None = None) -> int:
    """Commit (from_block, to_block] the way a follower does, moving the cursor."""
    state = await store.load_state()
    return await store.commit_range(
        from_block=from_block, to_block=to_block, events=events,
        blocks=block_rows(store.chain, range(from_block, to_block + 1), timestamp),
        expected=state.cursor, cursor=Cursor(to_block, block_hash(store.chain, to_block)),
        final_number=final_number,
    )


async def register_chain(pool, chain: str, kind: str = "evm", chain_id: int = 31337) -> Store:
    store = Store(pool, chain)
    await store.ensure_chain(kind, chain_id)
    return store


def api_settings(tmp_path: Path, chains: list[dict], api: dict | None = None, **extra) -> Settings:
    # Tests make many requests from one address: a generous default limit.
    data: dict = {"chains": chains, "api": {"rate_limit_per_second": 1000.0, "rate_limit_burst": 1000, **(api or {})}}
    data.update(extra)
    return make_settings(tmp_path, data)


def chain_cfg(name: str, **extra) -> dict:
    cfg = {"name": name, "preset": "anvil", "rpc": ["http://127.0.0.1:9"]}
    cfg.update(extra)
    return cfg


async def read_sse(resp: ClientResponse, count: int, timeout: float = 15.0,
                   until: Callable[[dict], bool] | None = None) -> list[dict]:
    """The next `count` messages (comments skipped): dicts with id, event, data; or up to the one `until` accepts."""
    out: list[dict] = []

    async def _read() -> None:
        while len(out) < count and not (until is not None and out and until(out[-1])):
            block = await resp.content.readuntil(b"\n\n")
            if not block:
                raise EOFError("stream ended")
            msg: dict = {}
            for line in block.decode().splitlines():
                if not line or line.startswith(":"):
                    continue
                key, _, value = line.partition(": ")
                msg[key] = value
            if "data" in msg:
                msg["data"] = orjson.loads(msg["data"])
                out.append(msg)

    await asyncio.wait_for(_read(), timeout)
    return out


async def seeded(pool, chain: str = "anvil", blocks: int = 10, *, head: int = 12, final: int = 5):
    """A chain indexed up to `blocks` with two events a block, head and status recorded."""
    store = await register_chain(pool, chain)
    evs = [event_row(chain, b, i, addr=address(100 + i)) for b in range(1, blocks + 1) for i in range(2)]
    await commit_blocks(store, 0, blocks, evs, final_number=final)
    await store.set_status({"state": "following", "last_error": "TimeoutError: slow endpoint",
                            "endpoints": [{"endpoint": "http://127.0.0.1:9", "healthy": True}],
                            "head_timestamp": None}, head=head, finalized=final + 2)
    return store, evs


USER = "0x" + "bb" * 20
WALLET = "0x" + "aa" * 20
BATCH = "0x" + "cd" * 32


async def seed_settlement(pool) -> dict[str, int]:
    """Ledger entries at a final and a non-final height, payouts, a batch, a reconciliation run."""
    ids: dict[str, int] = {}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO assets (id, chain, name, kind, symbol, decimals) "
                           "VALUES ('anvil:native', 'anvil', 'native', 'native', 'ETH', 18)")
        for code, kind in ((f"wallet:anvil:{WALLET}", "wallet"), (f"user:anvil:{USER}", "user")):
            ids[kind] = await conn.fetchval(
                "INSERT INTO ledger_accounts (code, kind) VALUES ($1, $2) RETURNING id", code, kind)
        for key, block, amount in (("dep-1", 3, 100), ("dep-2", 8, 50)):
            tx = await conn.fetchval(
                "INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, author, reason, chain, block_number)"
                " VALUES ($1, 'manual', '{}'::jsonb, 'test', 'seed', 'anvil', $2) RETURNING id", key, block)
            await conn.execute(
                "INSERT INTO postings (transaction_id, account_id, asset_id, amount) VALUES "
                "($1, $2, 'anvil:native', $4), ($1, $3, 'anvil:native', -$4::numeric)",
                tx, ids["wallet"], ids["user"], amount)
        await conn.execute(
            "INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total,"
            " gas_limit, expiry, state, signature) VALUES ($1, 'anvil', 'native', $2, 0, $3, $3, 1, 7, 90000,"
            " 2000000000, 'signed', '0xsig')", BATCH, "0x" + "00" * 20, WALLET)
        ids["pending"] = await conn.fetchval(
            "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by)"
            " VALUES ('req-1', 'anvil', 'native', $1, 5, 'test') RETURNING id", USER)
        ids["batched"] = await conn.fetchval(
            "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by, state, batch_id)"
            " VALUES ('req-2', 'anvil', 'native', $1, 7, 'test', 'batched', $2) RETURNING id", USER, BATCH)
        await conn.execute(
            "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by)"
            " VALUES ('req-3', 'anvil', 'native', $1, 9, 'test')", "0x" + "ee" * 20)
        await conn.execute("INSERT INTO payout_items (batch_id, idx, request_id, recipient, amount)"
                           " VALUES ($1, 0, $2, $3, 7)", BATCH, ids["batched"], USER)
        await conn.execute(
            "INSERT INTO evm_txs (chain, sender, nonce, attempt, purpose, batch_id, raw, tx_hash, gas_limit,"
            " max_fee_per_gas, max_priority_fee_per_gas, state) VALUES ('anvil', $1, 4, 1, 'batch', $2, '0xraw',"
            " '0xfeed', 90000, 30000000000, 1000000000, 'broadcast')", WALLET, BATCH)
        for status, mismatches in (("ok", 0), ("mismatch", 1)):
            run = await conn.fetchval(
                "INSERT INTO reconciliation_runs (chain, height, status, checked, mismatches)"
                " VALUES ('anvil', 5, $1, 1, $2) RETURNING id", status, mismatches)
            ids[f"run_{status}"] = run
            await conn.execute(
                "INSERT INTO reconciliation_results (run_id, account_id, asset_id, expected, actual, difference,"
                " tolerance, status) VALUES ($1, $2, 'anvil:native', 100, $3::numeric, $3::numeric - 100, 0, $4)",
                run, ids["wallet"], 100 + mismatches, status)
    return ids


def published(settings, *areas: str):
    """The settings with private read areas published (`[api] public`, README "Read scopes")."""
    return settings.model_copy(update={"api": settings.api.model_copy(update={"public": [*settings.api.public, *areas]})})
