"""Ledger entries derived from events, committed and rolled back with them.

`LedgerHook` is a `indexer.store.StoreHook`: the store calls `on_range`
inside the transaction that writes a range's events and moves the cursor,
and `on_rollback` inside the one that deletes events above a reorg's common
ancestor. Both are set-based SQL over the range (settlement/ledger/hook.sql);
no per-event Python runs on the hot path.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import orjson

from config import Settings
from config.logs import get_logger
from db import Queries
from settlement.ledger import metrics as m
from settlement.ledger.books import sync_ledger
from settlement.ledger.rules import check_ledger_config, compile_rules

Q = Queries(Path(__file__).with_name("hook.sql"))
log = get_logger("settlement.ledger.books")


class LedgerHook:
    def __init__(self, settings: Settings) -> None:
        check_ledger_config(settings)
        self.settings = settings
        # Rules as JSON text, compiled once: the SQL joins them with the events.
        self._rules = {c.name: orjson.dumps(compile_rules(settings, c.name)).decode() for c in settings.chains}
        self._synced: set[str] = set()
        self._wallets = {c.name: len(c.wallets) for c in settings.chains}

    async def on_range(self, conn: asyncpg.Connection, chain: str, from_block: int, to_block: int) -> None:
        rules = self._rules.get(chain)
        if rules is None or rules == "[]":
            return
        # Cheap guard: a sync rolled back with a failed range leaves no rows.
        wallets = await conn.fetchval(Q.active_wallets, chain)
        if chain not in self._synced or wallets != self._wallets[chain]:
            await sync_ledger(conn, self.settings, chain)
            self._synced.add(chain)
        await conn.execute(Q.start_tracking, chain, from_block)
        # The staging table empties at commit (and on rollback): one use per transaction.
        await conn.execute(Q.create_staged)
        staged = await conn.execute(Q.stage_matches, chain, rules, from_block, to_block)
        if staged.endswith(" 0"):
            return
        await conn.execute(Q.upsert_staged_accounts)
        status = await conn.execute(Q.book_staged, chain)
        booked = int(status.rsplit(" ", 1)[1]) // 2
        if booked:
            m.LEDGER_BOOKED.labels(chain).inc(booked)
        for r in await conn.fetch(Q.staged_unbookable):
            m.LEDGER_UNBOOKABLE.labels(chain, r["rule"], r["reason"]).inc(r["n"])
            log.warning("ledger.unbookable", chain=chain, rule=r["rule"], reason=r["reason"], count=r["n"],
                        example_tx=r["example_tx"], from_block=from_block, to_block=to_block)

    async def on_rollback(self, conn: asyncpg.Connection, chain: str, ancestor: int) -> None:
        status = await conn.execute(Q.delete_derived_above, chain, ancestor)
        deleted = int(status.rsplit(" ", 1)[1])
        await conn.execute(Q.reopen_wallets_above, chain, ancestor)
        if deleted:
            m.LEDGER_ROLLED_BACK.labels(chain).inc(deleted)
            log.info("ledger.rolled_back", chain=chain, ancestor=ancestor, transactions=deleted)
