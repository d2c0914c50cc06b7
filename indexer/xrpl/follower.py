"""The XRPL follower: validated ledgers only, backfill and live follow in one loop.

Each step asks the endpoints (`server_info`) which of them holds the next
ledger in the history it serves (`complete_ledgers`, the run ending at its
validated ledger) and takes a range from that one server: the ledger hashes
at both ends (the first must extend the cursor), then every watched
account's `account_tx` for the range, all pages. Rows and the cursor
(the range's last ledger index and hash) commit in one transaction, so a
crash loses at most the range in flight and a replay inserts nothing.
Validated ledgers are final: the cursor is also the final height.

A ledger no endpoint holds is a gap: it is never skipped. The follower
waits (another endpoint may fill it, or the server may acquire it) and
says so in its status (`gap`), the `chainsettle_xrpl_gap` metrics and the
`xrpl.gap` log. Live, the `ledger` stream of a WebSocket endpoint wakes it;
without one it polls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from xrpl.core.addresscodec import is_valid_classic_address

from config import ChainConfig, ChainsettleError, ConfigError
from config.logs import get_logger
from indexer import metrics as m
from indexer.errors import (
    BadRpcResponse,
    ChainHalted,
    RpcError,
    RpcErrorKind,
    StaleCursor,
)
from indexer.follow_loop import mark_following, retry_after, sleep_or_stop
from indexer.models import BlockRow, Cursor, EventRow, RawLogRow
from indexer.ranges import RangeSizer
from indexer.store import Store, StoreHook
from indexer.xrpl import metrics as xm
from indexer.xrpl.client import (
    LedgerHeader,
    LedgerSet,
    ServerConn,
    ServerInfo,
    XrplClient,
)
from indexer.xrpl.decode import XrplDecodeError, event_rows, normalize_entry

log = get_logger("indexer.xrpl")
PAGE_LIMIT = 200  # rippled's default account_tx page
KEEP_BLOCKS = 256  # ledger hashes kept in `blocks` below the cursor
TARGET_ROWS = 2_000  # rows per committed range the span adapts towards
STREAM_WAIT = 10.0  # seconds to trust the stream before polling anyway


class LedgerGap(ChainsettleError):
    """No endpoint serves the next ledger: some ledgers at or after it are missing everywhere."""

    def __init__(self, waiting_at: int, missing: LedgerSet, endpoints: dict[str, str]) -> None:
        super().__init__(f"ledger {waiting_at} is on no endpoint; missing {missing}")
        self.waiting_at, self.missing, self.endpoints = waiting_at, missing, endpoints

    @property
    def size(self) -> int:
        return sum(b - a + 1 for a, b in self.missing.runs)


class InconsistentEndpoint(BadRpcResponse):
    """An endpoint contradicts the stored cursor or itself."""


def watched_accounts(cfg: ChainConfig) -> list[str]:
    if not cfg.wallets:
        raise ConfigError(f"chains.{cfg.name}.wallets: an XRPL chain needs at least one watched account")
    out = []
    for i, w in enumerate(cfg.wallets):
        if not is_valid_classic_address(w.address):
            raise ConfigError(f"chains.{cfg.name}.wallets[{i}].address: not a classic XRPL address (r...)")
        if w.address not in out:
            out.append(w.address)
    return out


class XrplFollower:
    def __init__(
        self,
        cfg: ChainConfig,
        pool: asyncpg.Pool,
        *,
        hooks: Sequence[StoreHook] = (),
        base_dir: Path | None = None,
        client: XrplClient | None = None,
    ) -> None:
        # base_dir: the EVM follower resolves ABI paths with it; XRPL needs none.
        if cfg.kind != "xrpl":
            raise ConfigError(f"chains.{cfg.name}.preset: {cfg.preset!r} is not an XRPL preset")
        self.cfg = cfg
        self.chain = cfg.name
        self.watched = watched_accounts(cfg)
        urls = list(cfg.rpc) + ([cfg.ws] if cfg.ws and cfg.ws not in cfg.rpc else [])
        self.client = client or XrplClient(urls, chain=cfg.name, timeout=cfg.request_timeout,
                                           max_attempts=cfg.max_attempts, on_ledger_closed=self._on_ledger_closed)
        self.store = Store(pool, cfg.name, hooks)
        max_range = cfg.effective_max_logs_range
        self.sizer = RangeSizer(min(1_000, max_range), minimum=cfg.min_logs_range, maximum=max_range)
        self.page_limit = PAGE_LIMIT
        self.cursor: Cursor | None = None
        self.head: int | None = None
        self.gap: LedgerGap | None = None
        self.state = "starting"
        self.last_error: str | None = None
        self._start_override: int | None = None
        self._started = False
        self._disagree: set[str] = set()
        self._wake = asyncio.Event()
        self._last_report = 0.0
        self._last_status: dict[str, Any] | None = None
        self._last_stream_try = 0.0
        self._plan: tuple[ServerConn, int] | None = None

    # -- start-up ---------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        st = await self.store.ensure_chain("xrpl", self.cfg.effective_chain_id)
        if st.halted_reason:
            m.FOLLOWER_HALTED.labels(self.chain).set(1)
            raise ChainHalted(f"{self.chain} is halted: {st.halted_reason} "
                              f"(clear it with `chainsettle chains unhalt {self.chain}`)")
        m.FOLLOWER_HALTED.labels(self.chain).set(0)
        self.cursor = st.cursor
        self._started = True

    async def close(self) -> None:
        await self.client.close()

    # -- entry points ----------------------------------------------------------------

    async def backfill(self, from_block: int | None = None, to_block: int | None = None) -> int:
        """Index validated ledgers up to `to_block` (default: the validated head); return new events.

        `from_block` at or below the cursor replays that stretch (inserting
        only what is missing) before going on; a gap waits, as in `run`.
        """
        await self.start()
        new = 0
        c = self.cursor
        if from_block is not None and c is not None and from_block <= c.number:
            new += await self._replay(from_block, c.number if to_block is None else min(to_block, c.number))
        elif from_block is not None and c is not None and from_block > c.number + 1:
            raise ConfigError(f"--from {from_block} would leave a gap after the cursor at {c.number}")
        elif from_block is not None:
            self._start_override = from_block
        while True:
            nxt = await self._next_ledger()
            if to_block is not None and nxt > to_block:
                return new
            try:
                got = await self._step_with_retries(nxt, to_block)
            except LedgerGap as gap:
                await self._on_gap(gap)
                await asyncio.sleep(self.cfg.effective_poll_interval)
                continue
            if got is None:
                if to_block is None:
                    return new
                log.info("index.waiting_for_validation", chain=self.chain, to_block=to_block, head=self.head)
                await asyncio.sleep(self.cfg.effective_poll_interval)
                continue
            new += got
            await self.report_status()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow until `stop` is set; retries forever, stops only when halted."""
        backoff = 1.0
        while not stop.is_set():
            try:
                await self.start()
                await self._ensure_stream()
                caught_up = await self.step()
                backoff = 1.0
                mark_following(self)
                await self.report_status()
                if caught_up:
                    await self._wait_for_ledger(stop)
            except (ChainHalted, ConfigError):
                raise
            except LedgerGap as gap:
                self.state = "gap"
                await self._on_gap(gap)
                await sleep_or_stop(stop, self.cfg.effective_poll_interval)
            except (RpcError, BadRpcResponse, StaleCursor, asyncpg.PostgresError, OSError) as exc:
                backoff = await retry_after(self, exc, stop, backoff, log)
        self.state = "stopped"

    async def step(self) -> bool:
        """Index one range; True when the validated head is reached."""
        await self.start()
        self._wake.clear()
        got = await self._index_next(await self._next_ledger(), None)
        return got is None

    # -- choosing a server and a range -------------------------------------------------

    async def _next_ledger(self) -> int:
        if self.cursor is not None:
            return self.cursor.number + 1
        if self._start_override is not None:
            return self._start_override
        if self.cfg.start_ledger is not None:
            return self.cfg.start_ledger
        head = (await self.client.ledger_header("validated")).index
        log.info("xrpl.start_at_head", chain=self.chain, ledger=head)
        self._start_override = head
        return head

    async def _survey(self, lo: int) -> tuple[ServerConn, int] | None:
        """(endpoint, last ledger it serves from lo on), or None when lo is not validated yet."""
        expected = self.cfg.effective_chain_id
        seen: dict[str, str] = {}
        infos: list[ServerInfo] = []
        for conn in self.client.usable():
            try:
                info = await self.client.server_info(conn)
            except (RpcError, BadRpcResponse) as exc:
                seen[conn.ep.label] = f"error: {exc}"[:200]
                continue
            if info.network_id is not None and info.network_id != expected:
                self.client.exclude(conn, f"network id {info.network_id}, expected {expected}")
                continue
            if info.validated is not None:
                self.head = max(self.head or 0, info.validated)
            served = info.served()
            if served is not None and served[0] <= lo <= served[1]:
                return conn, served[1]
            seen[conn.ep.label] = str(info.complete)
            infos.append(info)
        if not self.client.usable():
            raise ConfigError(f"chains.{self.chain}.rpc: no endpoint serves network id {expected}")
        if not infos:
            raise RpcError(f"no endpoint answered server_info: {seen}", kind=RpcErrorKind.RETRYABLE)
        validated = [i for i in infos if i.validated is not None]
        if not validated or lo > max(i.validated for i in validated):
            return None  # not validated anywhere yet: caught up
        # A server validated past lo, yet none serves lo. rippled's account_tx
        # only reaches back to the first gap below its validated ledger, so
        # the ledgers missing there block everything before them too.
        later = [i for i in validated if i.served() and i.served()[0] > lo]
        ref = min(later, key=lambda i: i.served()[0]) if later else max(validated, key=lambda i: i.validated)
        missing = ref.complete.missing(lo, ref.served()[0] - 1 if ref in later else ref.validated)
        raise LedgerGap(lo, missing if missing.runs else LedgerSet(((lo, lo),)), seen)

    async def _step_with_retries(self, lo: int, to_block: int | None) -> int | None:
        tries = 0
        while True:
            try:
                return await self._index_next(lo, to_block)
            except (RpcError, BadRpcResponse) as exc:
                tries += 1
                self.last_error = f"{exc.__class__.__name__}: {exc}"[:500]
                if tries >= self.cfg.max_attempts:
                    raise
                log.warning("follower.retry", chain=self.chain, error=self.last_error, attempt=tries)
                await asyncio.sleep(min(5.0, 0.2 * 2 ** tries) * random.uniform(0.7, 1.3))

    # -- indexing ------------------------------------------------------------------------

    async def _index_next(self, lo: int, to_block: int | None) -> int | None:
        """Index the next range from lo; new events, or None when lo is not validated yet."""
        plan = self._plan
        # The server that served the last range still holds what it said it
        # held (history only grows forward); ask again once past that.
        if plan is None or lo > plan[1] or plan[0].excluded is not None or not plan[0].ep.healthy:
            plan = self._plan = await self._survey(lo)
        if plan is None:
            return None
        await self._clear_gap()
        conn, end = plan
        hi = min(end, lo + self.sizer.size - 1, to_block if to_block is not None else end)
        started = time.monotonic()
        try:
            top, rows, raw = await self._fetch(conn, lo, hi, check_cursor=True)
        except (RpcError, BadRpcResponse) as exc:
            self._plan = None
            if isinstance(exc, RpcError) and exc.kind is RpcErrorKind.TIMEOUT:
                self.sizer.on_timeout(hi - lo + 1)
            raise
        expected = self.cursor
        new = await asyncio.shield(self.store.commit_range(
            from_block=lo, to_block=hi, events=rows, raw_logs=raw,
            blocks=[BlockRow(top.index, top.hash, top.parent_hash, top.close_time)],
            expected=expected, cursor=Cursor(top.index, top.hash), final_number=top.index,
            prune_below=top.index - KEEP_BLOCKS,
        ))
        self.cursor = Cursor(top.index, top.hash)
        self._disagree.clear()
        self.sizer.on_success(hi - lo + 1, len(rows), TARGET_ROWS)
        self._count(lo, hi, new, rows, raw)
        log.debug("xrpl.range_indexed", chain=self.chain, from_ledger=lo, to_ledger=hi, rows=len(rows), new=new,
                  endpoint=conn.ep.label, seconds=round(time.monotonic() - started, 3))
        return new

    async def _replay(self, a: int, b: int) -> int:
        new, lo = 0, a
        while lo <= b:
            plan = await self._survey(lo)
            if plan is None:
                break
            conn, end = plan
            hi = min(end, b, lo + self.sizer.size - 1)
            _, rows, raw = await self._fetch(conn, lo, hi, check_cursor=False)
            got = await self.store.commit_range(from_block=lo, to_block=hi, events=rows, raw_logs=raw,
                                                expected=None, cursor=None)
            self._count(lo, hi, got, rows, raw, replay=True)
            new += got
            lo = hi + 1
        return new

    async def _fetch(
        self, conn: ServerConn, lo: int, hi: int, *, check_cursor: bool,
    ) -> tuple[LedgerHeader, list[EventRow], list[RawLogRow]]:
        top = await self.client.ledger_header(hi, conn=conn)
        c = self.cursor
        if check_cursor and c is not None and c.number == lo - 1:
            # The range must extend the cursor: ledger lo's parent is the stored hash.
            first = top if hi == lo else await self.client.ledger_header(lo, conn=conn)
            if first.parent_hash != c.hash:
                await self._disagrees(conn, lo - 1, first.parent_hash)
        hashes: dict[int, str] = {top.index: top.hash}
        rows: dict[tuple[int, int, str], EventRow] = {}
        raw: list[RawLogRow] = []
        for acct in self.watched:
            for entry in await self.client.account_tx(acct, lo, hi, conn=conn, limit=self.page_limit):
                try:
                    tx = normalize_entry(entry)
                except XrplDecodeError as exc:
                    raise BadRpcResponse(f"account_tx {acct} from {conn.ep.label}: {exc}") from None
                if entry.get("validated") is False or not lo <= tx.ledger_index <= hi:
                    raise BadRpcResponse(f"account_tx {acct}: transaction {tx.hash} in ledger {tx.ledger_index} "
                                         f"is outside the validated range {lo}-{hi}")
                lh = tx.ledger_hash or hashes.get(tx.ledger_index)
                if lh is None:
                    lh = (await self.client.ledger_header(tx.ledger_index, conn=conn)).hash
                if hashes.setdefault(tx.ledger_index, lh) != lh:
                    raise InconsistentEndpoint(f"{conn.ep.label}: ledger {tx.ledger_index} has two hashes")
                try:
                    for row in event_rows(self.chain, tx, [acct], lh):
                        rows[(row.block_number, row.tx_index, row.address)] = row
                except XrplDecodeError as exc:
                    raw.append(RawLogRow(self.chain, tx.ledger_index, lh, tx.hash, tx.index, 0, acct, [],
                                         orjson.dumps(entry).decode()[:100_000], str(exc)[:500]))
        return top, [rows[k] for k in sorted(rows)], raw

    async def _disagrees(self, conn: ServerConn, number: int, their_hash: str) -> None:
        """An endpoint's ledger at the cursor differs from the stored hash."""
        self._disagree.add(conn.ep.label)
        conn.ep.on_failure(f"ledger {number} hash differs from the cursor")
        if self._disagree >= {c.ep.label for c in self.client.usable()}:
            reason = (f"every endpoint disagrees with the stored cursor: ledger {number} is "
                      f"{self.cursor.hash if self.cursor else '?'} here, {their_hash} on the servers")
            self.state = "halted"
            m.FOLLOWER_HALTED.labels(self.chain).set(1)
            log.error("follower.halted", chain=self.chain, reason=reason)
            await self.store.set_halted(reason)
            raise ChainHalted(reason)
        raise InconsistentEndpoint(f"{conn.ep.label}: ledger {number} is {their_hash}, the cursor says "
                                   f"{self.cursor.hash if self.cursor else '?'}")

    def _count(self, lo: int, hi: int, new: int, rows: list[EventRow], raw: list[RawLogRow], replay: bool = False) -> None:
        if not replay:
            xm.LEDGERS_INDEXED.labels(self.chain).inc(hi - lo + 1)
        m.EVENTS_INDEXED.labels(self.chain).inc(new)
        for row in rows:
            result = orjson.loads(row.args)["result"][:3]
            xm.TRANSACTIONS.labels(self.chain, row.event, result).inc()
        if raw:
            m.LOGS_UNDECODED.labels(self.chain).inc(len(raw))
            log.warning("follower.undecoded_logs", chain=self.chain, count=len(raw), first_reason=raw[0].reason)

    # -- gaps, pacing, status -------------------------------------------------------------

    async def _on_gap(self, gap: LedgerGap) -> None:
        changed = self.gap is None or (self.gap.waiting_at, self.gap.missing) != (gap.waiting_at, gap.missing)
        self.gap = gap
        xm.GAP.labels(self.chain).set(1)
        xm.GAP_LEDGERS.labels(self.chain).set(gap.size)
        if changed:
            log.warning("xrpl.gap", chain=self.chain, missing=str(gap.missing), waiting_at=gap.waiting_at,
                        endpoints=gap.endpoints, cursor=self.cursor.number if self.cursor else None)
        await self.report_status(force=True)

    async def _clear_gap(self) -> None:
        if self.gap is None:
            return
        log.info("xrpl.gap_filled", chain=self.chain, missing=str(self.gap.missing))
        self.gap = None
        xm.GAP.labels(self.chain).set(0)
        xm.GAP_LEDGERS.labels(self.chain).set(0)
        await self.report_status(force=True)

    def _on_ledger_closed(self, index: int) -> None:
        self.head = max(self.head or 0, index)
        self._wake.set()

    async def _ensure_stream(self) -> None:
        now = time.monotonic()
        if self.client.stream_connected or now - self._last_stream_try < 30.0:
            return
        self._last_stream_try = now
        if any(c.is_ws for c in self.client.conns):
            await self.client.start_stream()

    async def _wait_for_ledger(self, stop: asyncio.Event) -> None:
        """Until the stream reports a ledger; polls when there is no stream or it goes quiet or drops."""
        poll = self.cfg.effective_poll_interval
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (STREAM_WAIT if self.client.stream_connected else poll)
        while not (stop.is_set() or self._wake.is_set()) and loop.time() < deadline:
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=min(poll, max(0.0, deadline - loop.time())),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            if not self.client.stream_connected:
                return

    def reload_cursor(self) -> None:
        """The next start() reads the cursor from the database again."""
        self._started = False

    async def report_status(self, force: bool = False) -> None:
        gap = self.gap
        status: dict[str, Any] = {
            "state": self.state,
            "last_error": self.last_error,
            "range_size": self.sizer.size,
            "ws_connected": self.client.stream_connected,
            "gap": str(gap.missing) if gap else None,
            "gap_waiting_at": gap.waiting_at if gap else None,
            "gap_endpoints": gap.endpoints if gap else None,
            "watched_accounts": len(self.watched),
        }
        now = time.monotonic()
        # Throttled, except when something an operator watches changed.
        if not force and status == self._last_status and now - self._last_report < 1.0:
            return
        self._last_report, self._last_status = now, status
        cursor = self.cursor.number if self.cursor else None
        if self.head is not None:
            m.HEAD_BLOCK.labels(self.chain).set(self.head)
            if cursor is not None:
                m.LAG_BLOCKS.labels(self.chain).set(max(0, self.head - cursor))
        if cursor is not None:
            m.INDEXED_BLOCK.labels(self.chain).set(cursor)
            m.FINALIZED_BLOCK.labels(self.chain).set(cursor)
        await self.store.set_status({**status, "endpoints": self.client.health()}, head=self.head, finalized=self.head)
