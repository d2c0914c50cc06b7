"""The event store: events, raw logs, the block window, the cursor.

Everything one range produces (events, block hashes, derived rows from the
hooks, the cursor) commits in ONE transaction, so a crash loses at most
uncommitted work and a replay inserts nothing. No network call ever happens
while a transaction is open: callers fetch first, then call in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import asyncpg
import orjson

from db import Queries, audit
from indexer.errors import ReorgBeyondFinality, ReplayRefused, StaleCursor
from indexer.models import BlockRow, ChainState, ChildRow, Cursor, EventRow, RawLogRow

Q = Queries(Path(__file__).with_name("store.sql"))
EVENT_COLUMNS = ("chain", "block_number", "block_hash", "tx_hash", "tx_index", "log_index", "address", "event", "args")


class StoreHook(Protocol):
    """Derived data that must commit and roll back with the events.

    The indexer knows nothing of what derives from events; the daemon
    plugs the ledger (and payout confirmation) in here.
    """

    async def on_range(self, conn: asyncpg.Connection, chain: str, from_block: int, to_block: int) -> None: ...

    async def on_rollback(self, conn: asyncpg.Connection, chain: str, ancestor: int) -> None: ...


class Store:
    def __init__(self, pool: asyncpg.Pool, chain: str, hooks: Sequence[StoreHook] = ()) -> None:
        self.pool = pool
        self.chain = chain
        self.hooks = list(hooks)

    async def ensure_chain(self, kind: str, chain_id: int) -> ChainState:
        async with self.pool.acquire() as conn:
            await conn.execute(Q.ensure_chain, self.chain, kind, chain_id)
            row = await conn.fetchrow(Q.chain_identity_and_state, self.chain)
        if (row["kind"], row["chain_id"]) != (kind, chain_id):
            # Same name, other network: refusing beats mixing two chains' data.
            raise StaleCursor(
                f"chain {self.chain!r} is stored as {row['kind']} id {row['chain_id']}, "
                f"but configured as {kind} id {chain_id}"
            )
        return self._state(row)

    async def load_state(self) -> ChainState:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(Q.load_state, self.chain)
        return self._state(row)

    def _state(self, row: asyncpg.Record) -> ChainState:
        cursor = Cursor(row["cursor_number"], row["cursor_hash"]) if row["cursor_number"] is not None else None
        return ChainState(self.chain, cursor, row["final_number"], row["halted_reason"], row["status"] or {})

    async def commit_range(
        self,
        *,
        from_block: int,
        to_block: int,
        events: Sequence[EventRow],
        raw_logs: Sequence[RawLogRow] = (),
        blocks: Sequence[BlockRow] = (),
        expected: Cursor | None,
        cursor: Cursor | None,
        final_number: int | None = None,
        prune_below: int | None = None,
        fence_final: int | None = None,
        children: Sequence[ChildRow] = (),
    ) -> int:
        """Write one range atomically; return how many events were new.

        `expected` is the cursor this range was fetched against: if the
        stored one differs (a rewind, or a second writer) nothing is written.
        `cursor=None` writes without moving the cursor (a replay below it).
        `fence_final=N` (replays) writes only while block N is still final
        and the chain is not halted: a rewind meanwhile fences the replay out.
        `children` are contracts factories announced in the range (factory_children).
        """
        try:
            return await self._commit_range(from_block, to_block, events, raw_logs, blocks, expected, cursor,
                                            final_number, prune_below, fence_final, children,
                                            direct=cursor is not None)
        except asyncpg.UniqueViolationError:
            # Rows above the cursor that the direct path did not expect
            # (written by hand, or by a tool): take the idempotent path.
            return await self._commit_range(from_block, to_block, events, raw_logs, blocks, expected, cursor,
                                            final_number, prune_below, fence_final, children, direct=False)

    async def _commit_range(self, from_block, to_block, events, raw_logs, blocks, expected, cursor,
                            final_number, prune_below, fence_final, children, direct) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q.lock_state, self.chain)
            stored = Cursor(row["cursor_number"], row["cursor_hash"]) if row["cursor_number"] is not None else None
            if cursor is not None and stored != expected:
                raise StaleCursor(f"{self.chain}: cursor is {stored}, range was fetched after {expected}")
            if fence_final is not None and (row["halted_reason"] is not None or row["final_number"] is None
                                            or row["final_number"] < fence_final):
                raise ReplayRefused(f"{self.chain}: replay of ..{fence_final} fenced out: the final height is now "
                                    f"{row['final_number']}{' and the chain is halted' if row['halted_reason'] else ''}")
            # Past the cursor nothing is stored (cursor and rows commit together),
            # so a fresh range can COPY straight into events; the unique key
            # still guards it and a clash falls back to the staging path.
            if direct and events:
                direct = (stored is None or from_block > stored.number) and not await conn.fetchval(
                    Q.events_exist_from, self.chain, from_block)
            if direct and events and (row["final_number"] is None
                                   or min(e[1] for e in events) > row["final_number"]):  # block_number
                # Every row is above the final height: nothing in it can be
                # final already, and the delivery trigger may skip looking.
                await conn.execute(Q.events_above_final)
            inserted = await self._insert_events(conn, events, direct)
            if raw_logs:
                await conn.executemany(Q.insert_raw_log, raw_logs)
            if children:
                await conn.executemany(Q.insert_child, [(self.chain, *c) for c in children])
            if blocks:
                await conn.executemany(
                    Q.upsert_block, [(self.chain, b.number, b.hash, b.parent_hash, b.timestamp) for b in blocks]
                )
            # Hooks that act only on final data (payout confirmation) read
            # final_number: it moves before them, inside this transaction.
            if final_number is not None:
                await conn.execute(Q.set_final, self.chain, final_number)
            for hook in self.hooks:
                await hook.on_range(conn, self.chain, from_block, to_block)
            if cursor is not None:
                fin = final_number if final_number is not None else row["final_number"]
                await conn.execute(Q.set_cursor, self.chain, cursor.number, cursor.hash, fin)
            elif final_number is not None:
                await conn.execute(Q.set_final, self.chain, final_number)
            if prune_below is not None:
                await conn.execute(Q.prune_blocks, self.chain, prune_below)
        return inserted

    async def _insert_events(self, conn: asyncpg.Connection, events: Sequence[EventRow], direct: bool) -> int:
        if not events:
            return 0
        if direct:
            status = await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
            return int(status.rsplit(" ", 1)[1])
        await conn.execute(Q.create_events_in)
        await conn.copy_records_to_table("events_in", records=events, columns=EVENT_COLUMNS)
        status = await conn.execute(Q.insert_events_from_staging)
        return int(status.rsplit(" ", 1)[1])

    async def load_children(self) -> list[asyncpg.Record]:
        """The stored children of this chain's factories: (address, factory_address, block_number)."""
        async with self.pool.acquire() as conn:
            return await conn.fetch(Q.load_children, self.chain)

    async def stored_blocks(self, high: int, low: int) -> list[BlockRow]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.stored_blocks_desc, self.chain, high, low)
        return [BlockRow(r["number"], r["hash"], r["parent_hash"], None) for r in rows]

    async def stored_block(self, number: int) -> BlockRow | None:
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(Q.stored_block, self.chain, number)
        return BlockRow(r["number"], r["hash"], r["parent_hash"], None) if r else None

    async def canonical_hashes(self, low: int, high: int) -> dict[int, str]:
        """The block hash we hold for each number in [low, high] (window, events, raw logs)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.canonical_hashes, self.chain, low, high)
        out: dict[int, str] = {}
        for r in rows:
            if out.setdefault(r["number"], r["hash"]) != r["hash"]:
                raise ReplayRefused(f"{self.chain}: two hashes stored for block {r['number']}; resolve with "
                                    f"`chainsettle chains unhalt {self.chain} --rewind-to N`")
        return out

    async def final_log_keys(self, low: int, high: int, addresses: Sequence[str]) -> set[tuple]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.final_log_keys, self.chain, low, high, [a.lower() for a in addresses])
        return {tuple(r) for r in rows}

    async def rollback_to(self, ancestor: Cursor, expected: Cursor) -> int:
        """Delete everything above `ancestor` in one transaction; return events deleted.

        Refuses to go below the final height: final data is never rewritten.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q.lock_state, self.chain)
            stored = Cursor(row["cursor_number"], row["cursor_hash"]) if row["cursor_number"] is not None else None
            if stored != expected:
                raise StaleCursor(f"{self.chain}: cursor is {stored}, rollback planned from {expected}")
            final = row["final_number"]
            if final is not None and ancestor.number < final:
                raise ReorgBeyondFinality(
                    f"{self.chain}: common ancestor {ancestor.number} is below the final height {final}"
                )
            for hook in self.hooks:
                await hook.on_rollback(conn, self.chain, ancestor.number)
            status = await conn.execute(Q.delete_events_above, self.chain, ancestor.number)
            deleted = int(status.rsplit(" ", 1)[1])
            await conn.execute(Q.delete_children_above, self.chain, ancestor.number)
            await conn.execute(Q.delete_raw_logs_above, self.chain, ancestor.number)
            await conn.execute(Q.delete_blocks_above, self.chain, ancestor.number)
            await conn.execute(
                Q.record_reorg, self.chain, ancestor.number, expected.number, expected.number - ancestor.number, deleted
            )
            await conn.execute(Q.rewind_cursor, self.chain, ancestor.number, ancestor.hash)
        return deleted

    async def rewind(self, to: BlockRow, *, actor: str, reason: str) -> int:
        """Operator rewind below final: delete everything above `to` in one transaction, audited.

        The one way final data is ever rewritten: a contradiction below final
        halted the chain and a human chose the height to re-index from. The
        derived rows go with the events (hooks), the halt is cleared, and the
        follower re-indexes from `to` + 1 against `to`'s hash.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q.lock_state, self.chain)
            old = row["cursor_number"]
            for hook in self.hooks:
                await hook.on_rollback(conn, self.chain, to.number)
            status = await conn.execute(Q.delete_events_above, self.chain, to.number)
            deleted = int(status.rsplit(" ", 1)[1])
            await conn.execute(Q.delete_children_above, self.chain, to.number)
            await conn.execute(Q.delete_raw_logs_above, self.chain, to.number)
            await conn.execute(Q.delete_blocks_above, self.chain, to.number)
            await conn.execute(Q.upsert_block, self.chain, to.number, to.hash, to.parent_hash, to.timestamp)
            if old is not None:
                await conn.execute(Q.record_reorg, self.chain, to.number, old, max(0, old - to.number), deleted)
            await conn.execute(Q.rewind_below_final, self.chain, to.number, to.hash)
            await audit(conn, actor, "chain.rewind", f"chain:{self.chain}", {
                "rewind_to": to.number, "hash": to.hash, "old_cursor": old, "old_final": row["final_number"],
                "previous_reason": row["halted_reason"], "deleted_events": deleted, "note": reason,
            })
        return deleted

    async def set_halted(self, reason: str | None) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(Q.set_halted, self.chain, reason)

    async def set_status(self, status: dict, head: int | None = None, finalized: int | None = None) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(Q.set_status, self.chain, orjson.dumps(status).decode(), head, finalized)
