"""Helpers for delivery tests: rows written the way the indexer writes them, a relay in-process."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from delivery.admin import sync_config
from delivery.relay import Relay
from tests.support.config import make_settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = {"poll_interval": 0.2, "retry_schedule": [0.1, 0.2, 0.2, 0.3, 0.3, 0.5, 0.5], "jitter": 0.1,
        "timeout": 0.5, "allow_loopback": True}


async def ensure_chain(pool, chain: str = "local") -> None:
    await pool.execute("INSERT INTO chain_state (chain, kind, chain_id) VALUES ($1, 'evm', 31337) "
                       "ON CONFLICT DO NOTHING", chain)


async def insert_events(conn, chain: str, rows: list[tuple[int, int, str]]) -> list[int]:
    """Events (block, log_index, contract) in the caller's transaction; returns their ids."""
    ids = []
    for block, log_index, address in rows:
        ids.append(await conn.fetchval(
            "INSERT INTO events (chain, block_number, block_hash, tx_hash, tx_index, log_index, address, event, args) "
            "VALUES ($1, $2, $3, $4, 0, $5, $6, 'Transfer', $7) RETURNING id",
            chain, block, f"0x{block:064x}", f"0x{block * 1000 + log_index:064x}", log_index, address,
            {"from": "0x" + "11" * 20, "to": "0x" + f"{log_index:02x}" * 20, "value": str(10**18 + log_index)}))
    return ids


async def set_final(pool, chain: str, number: int) -> None:
    await pool.execute("UPDATE chain_state SET final_number = $2 WHERE chain = $1", chain, number)


def settings_for(tmp_path: Path, deliveries: list[dict], **delivery):
    return make_settings(tmp_path, {"delivery": {**FAST, **delivery}, "deliveries": deliveries})


@contextlib.asynccontextmanager
async def running_relay(settings, pool, db_url):
    await sync_config(pool, settings)  # subscriptions exist before the test writes
    stop = asyncio.Event()
    relay = Relay(settings, pool, db_url, stop)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def webhook(sub_id: str, url: str, **extra) -> dict:
    return {"id": sub_id, "sink": "webhook", "url": url, "secrets": ["env:WH_SECRET"], **extra}
