"""The audit log: who did what to which subject, with the evidence.

Every layer writes it (the indexer when it halts a chain, settlement when it
pauses or pays, the API and CLI for operator actions), so it sits with the
database access that all of them may import.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from .queries import Queries

Q = Queries(Path(__file__).with_name("audit.sql"))


async def audit(conn: asyncpg.Connection, actor: str, action: str, subject: str | None, details: dict) -> asyncpg.Record:
    """Insert one audit row in the caller's transaction; returns its id and time."""
    return await conn.fetchrow(Q.insert_audit, actor, action, subject, details)
