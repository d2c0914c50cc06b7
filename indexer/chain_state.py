"""What other packages may read of a follower's state (chain_state is the
indexer's table: only the follower and its store write it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from db import Queries

Q = Queries(Path(__file__).with_name("chain_state.sql"))


@dataclass(frozen=True)
class Heights:
    cursor: int | None
    final: int | None
    halted_reason: str | None


async def final_height(conn: asyncpg.Connection, chain: str) -> int | None:
    return await conn.fetchval(Q.final_height, chain)


async def heights(conn: asyncpg.Connection, chain: str) -> Heights | None:
    row = await conn.fetchrow(Q.heights, chain)
    if row is None:
        return None
    return Heights(row["cursor_number"], row["final_number"], row["halted_reason"])


async def factory_children(conn: asyncpg.Connection, chain: str, factory: str | None, after: str | None,
                           limit: int) -> list[dict]:
    """A page of the chain's factory children (indexer/evm/factory.py), by address."""
    return [dict(r) for r in await conn.fetch(Q.factory_children, chain, factory, after, limit)]
