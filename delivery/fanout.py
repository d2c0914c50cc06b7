"""Fan-out: a subscription's share of the sources, copied into its queue in commit order.

One short transaction per batch: lock the subscription row, read the three
sources after its cursor up to the horizon (the oldest running transaction,
so nothing that commits later can land behind the cursor), keep what the
filter and finality mode want, insert those messages and move the cursor.
No network call happens inside it.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from db import Queries

from .messages import (
    EVENT,
    FINAL,
    LIFECYCLE,
    OUTBOX,
    Message,
    Position,
    from_event,
    from_lifecycle,
    from_outbox,
)

Q = Queries(Path(__file__).with_name("queries.sql"))
MAX_BIGINT = 2**63 - 1
FINAL_WINDOW = 4  # ids read per wanted final event: a range's ids are mostly its own events


@dataclass(frozen=True)
class Filter:
    chains: frozenset[str] = frozenset()
    contracts: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> "Filter":
        doc = doc or {}
        return cls(**{k: frozenset(str(x).lower() if k in ("contracts", "accounts") else str(x)
                                   for x in doc.get(k) or []) for k in cls.__dataclass_fields__})

    def matches(self, m: Message) -> bool:
        # Something about every chain (a global kill switch) passes a chain filter.
        if self.chains and m.chain is not None and m.chain not in self.chains:
            return False
        if self.types and m.type not in self.types and m.kind not in self.types:
            return False
        if self.contracts and (m.address is None or m.address not in self.contracts):
            return False
        if self.events and (m.event_name is None or m.event_name not in self.events):
            return False
        if self.accounts and not (m.accounts & self.accounts):
            return False
        return True


@dataclass
class Subscription:
    id: str
    sink: str
    url: str
    stream: str | None
    filter: Filter
    finality: str
    ordering: str
    state: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> "Subscription":
        return cls(row["id"], row["sink"], row["url"], row["stream"], Filter.from_json(row["filter"]),
                   row["finality"], row["ordering"], row["state"])

    def wants(self, m: Message) -> bool:
        # `final`: only what can no longer change. A chain event only at its
        # final stage (so never one a reorg removes); state changes of
        # payouts and reconciliation are facts once committed.
        if self.finality == "final" and m.kind == "chain_event" and m.stage != "final":
            return False
        return self.filter.matches(m)


@dataclass(frozen=True)
class _Skip:
    """A source row with nothing to deliver; only its position counts."""

    position: Position
    kind: str = "skip"


def _after(pos: Position, source: int) -> tuple[str, int]:
    tx, src, row = pos
    return str(tx), row if src == source else (0 if src < source else MAX_BIGINT)


async def _final_events(conn: asyncpg.Connection, r: Any, floor: int, want: int) -> list[Any]:
    """The first `want` events of finality row `r` with id above `floor`.

    Read in windows of ids, so each query's work is bounded whatever plan
    Postgres picks (without statistics it sorts what it fetched), and a
    page costs about its own rows, not the rest of a 200,000-event range.
    """
    out: list[Any] = []
    lo, top = max(floor, r["id_lo"] - 1), r["id_hi"]
    while lo < top and len(out) < want:
        hi = min(top, lo + FINAL_WINDOW * want)
        out += await conn.fetch(Q.source_final_events, r["chain"], lo, hi, r["above_block"], r["upto_block"],
                                want - len(out))
        lo = hi
    return out


async def _finals_after(conn: asyncpg.Connection, pos: Position, horizon: str, limit: int) -> list[Message]:
    """Source 3: finality rows expanded to their events, up to `limit`, complete up to the last.

    Transaction by transaction in commit order, each one's rows merged by
    event id; an event two rows cover (overlapping bounds) comes once. A
    row's events are read in pages of what is still wanted, so a 20,000
    event backfill range costs its events, not a sort per page.
    """
    start_tx, after_id = _after(pos, FINAL)
    out: list[Message] = []
    while len(out) < limit:
        inclusive = after_id < MAX_BIGINT
        rows = await conn.fetch(Q.source_finality_after, start_tx, horizon, limit, inclusive)
        if not rows:
            break
        for tx, group in itertools.groupby(rows, key=lambda r: r["tx"]):
            floor = after_id if tx == start_tx and inclusive else 0
            want = limit - len(out)
            found: dict[int, Any] = {}
            for r in group:
                for e in await _final_events(conn, r, floor, want):
                    found.setdefault(e["id"], (r, e["event"]))
            for event_id in sorted(found)[:want]:
                r, event = found[event_id]
                m = from_lifecycle({"tx": tx, "id": event_id, "event_id": event_id, "stage": "final",
                                    "chain": r["chain"], "payload": None, "event": event, "at": r["at"]}, FINAL)
                out.append(m or _Skip((int(tx), FINAL, event_id)))
            if len(out) >= limit:
                return out
        if len(rows) < limit:
            break
        # Rows whose events are gone (removed by hand) filled no page: go on
        # after the last transaction read, never short of `limit` while
        # rows remain (a short list is taken as complete to the horizon).
        start_tx, after_id = rows[-1]["tx"], MAX_BIGINT
    return out


async def read_after(conn: asyncpg.Connection, pos: Position, horizon: str, limit: int) -> list[Message]:
    """Up to `limit` messages after `pos` in commit order, complete up to the last one returned."""
    lists = [await _finals_after(conn, pos, horizon, limit)]
    for source, query, build in ((EVENT, Q.source_events_after, from_event),
                                 (OUTBOX, Q.source_feed_after, from_outbox),
                                 (LIFECYCLE, Q.source_lifecycle_after, from_lifecycle)):
        tx, row = _after(pos, source)
        rows = await conn.fetch(query, tx, row, horizon, limit)
        # A row that builds no message still moves the cursor: keep a stand-in.
        lists.append([build(r) or _Skip((int(r["tx"]), source, int(r["id"]))) for r in rows])
    # A full page of one source is complete only up to its last row; the
    # first `limit` of the merge never pass it (as api/feed.py argues).
    merged = heapq.merge(*lists, key=lambda m: m.position)
    return list(itertools.islice(merged, limit))


async def fan_out_once(pool: asyncpg.Pool, sub: Subscription, limit: int) -> tuple[int, int, str | None]:
    """One batch for one subscription; returns (source items read, messages queued, horizon)."""
    async with pool.acquire() as conn, conn.transaction():
        # Before the row lock: this transaction has no xid yet, so it does not
        # hold its own horizon back (an earlier horizon is only more careful).
        horizon = await conn.fetchval(Q.horizon)
        row = await conn.fetchrow(Q.lock_subscription, sub.id)
        if row is None:
            return 0, 0, None
        pos = (int(row["cursor_tx"]), row["cursor_source"], row["cursor_id"])
        items = await read_after(conn, pos, horizon, limit)
        if not items:
            return 0, 0, horizon
        wanted = [m for m in items if isinstance(m, Message) and sub.wants(m)]
        if wanted:
            await conn.executemany(Q.insert_message, [
                (sub.id, m.msg_id, m.event_id, m.type, m.key, m.chain, m.block_number, str(m.position[0]),
                 m.position[1], m.position[2], m.body(), m.at) for m in wanted])
        last = items[-1].position
        await conn.execute(Q.set_cursor, sub.id, str(last[0]), last[1], last[2])
    return len(items), len(wanted), horizon


async def fan_out(pool: asyncpg.Pool, sub: Subscription, limit: int) -> tuple[int, bool]:
    """Until the subscription's cursor reaches the horizon; returns (messages queued, work held back)."""
    queued = 0
    while True:
        read, added, horizon = await fan_out_once(pool, sub, limit)
        queued += added
        if read < limit:
            held = horizon is not None and bool(await pool.fetchval(Q.held_back, horizon))
            return queued, held
