"""The EVM follower: one per chain, backfill and live follow in one loop.

Each step reads the tip (head and finalized height), checks the cursor
block is still canonical, then indexes forward:
- final ranges are fetched ahead (a bounded prefetch queue) and committed
  in order, each checked to hang off the previous range by parent hash;
- blocks above finality are fetched with every header, linked by parent
  hash, and their hashes kept so a reorg can be walked back;
- once such blocks become final their range is queried again (nodes can be
  eventually consistent and miss logs right after a head) and only then
  counted as final.
A reorg rolls back to the common ancestor in one transaction; one deeper
than finality halts this chain loudly and leaves final data untouched.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg

from config import ChainConfig, ConfigError, load_abi
from config.logs import get_logger
from indexer import metrics as m
from indexer.errors import (
    BadRpcResponse,
    ChainHalted,
    ReorgBeyondFinality,
    ReplayRefused,
    RpcError,
    StaleCursor,
)
from indexer.evm.decode import LogDecoder
from indexer.evm.factory import Factories
from indexer.evm.fetch import (
    LogFilter,
    check_logs_in_range,
    fetch_logs,
    get_header,
    get_headers,
    get_logs,
    parse_header,
    read_tip,
    wallet_headers,
)
from indexer.evm.rpc import EvmRpc
from indexer.evm.verify import InconsistentRange, verify_logs
from indexer.follow_loop import mark_following, retry_after, sleep_or_stop
from indexer.heads import HeadWatcher
from indexer.models import BlockRow, ChildRow, Cursor, EventRow
from indexer.ranges import RangeSizer
from indexer.store import Store, StoreHook

log = get_logger("indexer.evm")
PREFETCH = 2  # ranges fetched ahead of the one being written; bounds memory
UNFINAL_BATCH = 64  # headers per request above finality
KEEP_FINAL_BLOCKS = 256  # block hashes kept below finality for ancestor search
# The first final range after start-up spans this many blocks and is committed
# before anything is fetched ahead, so the first commit lands right after
# start-up instead of after a full-size range (100 blocks of a busy contract
# are 10,000 logs to fetch, decode and COPY while the next range is fetched).
# One block is what every provider's span and count limits accept (a block
# over a count cap is read from its receipts), and the sizer is left as it
# was (a span below its size does not grow it): the ranges after it are the
# ones it would have chosen anyway.
FIRST_RANGE_BLOCKS = 1


def _event_order(row: tuple) -> tuple[int, int, int]:
    return row[1], row[4], row[5]  # block_number, tx_index, log_index


class RangeSource(Protocol):
    """Extra rows for a block range (e.g. native transfers of wallets)."""

    async def fetch(self, rpc: EvmRpc, from_block: int, to_block: int) -> list[EventRow]: ...


@dataclass(frozen=True)
class Tip:
    head: BlockRow
    finalized: int


RETRYABLE_ERRORS = (RpcError, BadRpcResponse, InconsistentRange, StaleCursor, asyncpg.PostgresError, OSError)
BACKFILL_MAX_FAILURES = 12
CONTRADICTIONS_TO_HALT = 3  # a final block contradicted this many times in a row halts the chain

class EvmFollower:
    def __init__(
        self,
        cfg: ChainConfig,
        pool: asyncpg.Pool,
        *,
        hooks: Sequence[StoreHook] = (),
        base_dir: Path | None = None,
        rpc: EvmRpc | None = None,
        sources: Sequence[RangeSource] = (),
    ) -> None:
        self.cfg = cfg
        self.chain = cfg.name
        self.rpc = rpc or EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=cfg.max_attempts)
        self.store = Store(pool, cfg.name, hooks)
        self.sources = list(sources)
        self._wallets = {w.address.lower() for w in cfg.wallets}  # their incoming transfers' blocks keep a header
        self.decoder = LogDecoder(cfg.name)
        for c in cfg.contracts:
            self.decoder.add_contract(c.address, load_abi(c.abi, base_dir), c.events)
        self.factories = Factories(cfg, self.decoder, base_dir)
        self._configured = frozenset(self.decoder.addresses)
        self._topic0s = sorted(set(self.decoder.topic0s) | set(self.factories.child_topic0s))
        self.filter = LogFilter(self.decoder.addresses, self._topic0s)
        max_range = cfg.effective_max_logs_range
        self.sizer = RangeSizer(min(100, max_range), minimum=cfg.min_logs_range, maximum=max_range)
        self.depth = cfg.effective_finality_depth
        self.confirm = cfg.effective_confirmation_blocks
        self._contradictions = 0
        self._next_rescan = time.monotonic() + cfg.rescan_interval
        self._rng = random.Random()
        self.cursor: Cursor | None = None
        self.final_number: int | None = None
        self.last_error: str | None = None
        self.state = "starting"
        self._tip: Tip | None = None
        self._last_report = 0.0
        self._started = False
        self._start_override: int | None = None
        self._heads = HeadWatcher(cfg.ws, cfg.name) if cfg.ws else None
        self._first_range = True

    # -- start-up -----------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        reported = await self.rpc.call("eth_chainId", [])
        try:
            chain_id = int(reported, 16)
        except (TypeError, ValueError):
            raise BadRpcResponse(f"eth_chainId: not a hex quantity: {str(reported)[:40]}") from None
        if chain_id != self.cfg.effective_chain_id:
            raise ConfigError(
                f"chains.{self.chain}: the RPC reports chain id {chain_id}, "
                f"the config expects {self.cfg.effective_chain_id} (preset {self.cfg.preset})"
            )
        st = await self.store.ensure_chain("evm", chain_id)
        if st.halted_reason:
            m.FOLLOWER_HALTED.labels(self.chain).set(1)
            raise ChainHalted(f"{self.chain} is halted: {st.halted_reason} (clear it with `chainsettle chains unhalt {self.chain}`)")
        m.FOLLOWER_HALTED.labels(self.chain).set(0)
        self.cursor, self.final_number = st.cursor, st.final_number
        await self._load_children()
        self._started = True

    async def _load_children(self) -> None:
        """The factories' children as committed (start-up, a standby taking over, after a rollback)."""
        if not self.factories:
            return
        rows = await self.store.load_children()
        self.factories.reset((r["address"], r["factory_address"]) for r in rows)
        self.filter = self._filter_of(self._configured | set(self.factories.children))

    def _filter_of(self, addresses) -> LogFilter:
        return LogFilter(sorted(addresses), self._topic0s)

    async def _with_children(self, a: int, end: int, logs: list, fetched: LogFilter, known: set[str] | None,
                             upto: int | None = None, headers: Sequence[BlockRow] = ()
                             ) -> tuple[list, list[ChildRow], LogFilter]:
        """`logs` of [a, end] with every child's (indexer/evm/factory.py, `Factories.complete`)."""
        if known is None:
            return logs, [], fetched
        return await self.factories.complete(self.rpc, self.sizer, self._filter_of, a, end, logs, fetched, known,
                                             upto, headers)

    async def _verified(self, a: int, end: int, headers: list[BlockRow], logs: list, fetched: LogFilter,
                        known: set[str] | None) -> tuple[list, list[ChildRow], LogFilter]:
        """The range's logs with its children's, each answer checked against the headers we hold.

        The answer of `fetched` is checked first, so children announced in
        logs only a re-query found are discovered too; the children's own
        answers are checked against their own filters (a block holding the
        factory's log but missing the child's would pass a check of the
        whole filter).
        """
        logs = await verify_logs(self.rpc, fetched, headers, logs)
        return await self._with_children(a, end, logs, fetched, known, headers=headers)

    def _known(self) -> set[str] | None:
        return set(self.filter.addresses) if self.factories else None

    async def close(self) -> None:
        if self._heads:
            await self._heads.close()
        await self.rpc.close()

    # -- the two entry points -------------------------------------------------

    async def backfill(self, from_block: int | None = None, to_block: int | None = None) -> int:
        """Index final blocks up to `to_block` (default: the finalized head); return new events.

        `from_block` below the cursor replays that stretch (inserting only
        what is missing) before going on from the cursor.
        """
        await self.start()
        new = 0
        if from_block is not None and self.cursor is not None and from_block <= self.cursor.number:
            final = self.final_number if self.final_number is not None else -1
            if from_block > final:
                raise ReplayRefused(f"--from {from_block} is above the final height {final}: blocks above final "
                                    "are re-checked by the follower itself; a replay covers final blocks only")
            top = final if to_block is None else min(to_block, final)
            new += await self._replay(from_block, top)
        elif from_block is not None and self.cursor is not None and from_block > self.cursor.number + 1:
            raise ConfigError(f"--from {from_block} would leave a gap after the cursor at {self.cursor.number}")
        elif from_block is not None:
            self._start_override = from_block
        failures = 0
        while True:
            try:
                tip = await self._read_tip()
                await self._check_cursor(tip)
                target = tip.finalized if to_block is None else min(to_block, tip.finalized)
                if to_block is not None and to_block > tip.finalized:
                    log.info("index.waiting_for_finality", chain=self.chain, to_block=to_block, finalized=tip.finalized)
                nxt = self._next_block()
                if nxt > target:
                    if to_block is None or (self.cursor and self.cursor.number >= to_block):
                        return new
                    await asyncio.sleep(self.cfg.effective_poll_interval)
                    continue
                new += await self._index_final(nxt, target)
                await self.report_status(force=True)
                failures = 0
            except RETRYABLE_ERRORS as exc:
                # A one-shot backfill rides out the same faults `run` does, but
                # gives up (exit 1) after a while instead of hanging a script.
                failures += 1
                if failures > BACKFILL_MAX_FAILURES:
                    raise
                if isinstance(exc, StaleCursor):
                    self._started = False
                    await self.start()
                delay = min(30.0, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.7, 1.3)
                log.warning("index.retry", chain=self.chain, error=f"{exc.__class__.__name__}: {exc}"[:500],
                            attempt=failures, backoff=round(delay, 2))
                await asyncio.sleep(delay)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow until `stop` is set; retries forever, stops only when halted."""
        if self._heads:
            self._heads.start()
        backoff = 1.0
        while not stop.is_set():
            try:
                await self.start()
                caught_up = await self.step(stop)
                backoff = 1.0
                mark_following(self)
                await self.report_status()
                if caught_up and time.monotonic() >= self._next_rescan:
                    self._next_rescan = time.monotonic() + self.cfg.rescan_interval
                    await self.rescan_sample()
                if caught_up:
                    await self._wait_for_block(stop)
            except (ChainHalted, ConfigError):
                raise
            except RETRYABLE_ERRORS as exc:
                backoff = await retry_after(self, exc, stop, backoff, log)
        self.state = "stopped"

    async def step(self, stop: asyncio.Event | None = None) -> bool:
        """One pass towards the head; True when nothing was left to do."""
        await self.start()
        tip = await self._read_tip()
        await self._check_cursor(tip)
        await self._sweep_final(tip)
        nxt = self._next_block()
        did = False
        if nxt <= tip.finalized:
            await self._index_final(nxt, tip.finalized, stop)
            did = True
        elif nxt <= tip.head.number:
            await self._index_unfinal(nxt, min(tip.head.number, nxt + UNFINAL_BATCH - 1))
            did = True
        return not did

    # -- tip and reorgs -------------------------------------------------------

    async def _read_tip(self) -> Tip:
        # [fault-tolerance] the head two endpoints agree on (see read_tip)
        head, fin = await read_tip(self.rpc, self.cfg.uses_finalized_tag)
        finalized = fin.number if fin is not None else head.number - self.depth + 1
        if self.confirm:
            # [integrity] even where the chain is final at inclusion, the top
            # `confirm` blocks are indexed as unfinal and re-queried by the
            # sweep before they count: a lagging backend may have answered them.
            finalized = min(finalized, head.number - self.confirm)
        tip = Tip(head, max(-1, min(finalized, head.number)))
        self._tip = tip
        return tip

    def _first_block(self) -> int:
        return self._start_override if self._start_override is not None else self.cfg.effective_start_block

    def _next_block(self) -> int:
        return self.cursor.number + 1 if self.cursor is not None else self._first_block()

    async def _check_cursor(self, tip: Tip) -> None:
        """Is the cursor block still on the canonical chain?"""
        c = self.cursor
        if c is None or (self.final_number is not None and c.number <= self.final_number):
            return
        if c.number > tip.head.number:
            # [integrity] a lower head is no evidence: one endpoint of the top
            # two failing, or a lagging one, must not roll back canonical
            # blocks. Only a hash says a block left the chain: here, our block
            # at the head's height differing from the head.
            below = await self.store.stored_block(tip.head.number)
            if below is not None and below.hash != tip.head.hash:
                await self._handle_reorg(tip)
            return
        canonical = tip.head if c.number == tip.head.number else await get_header(self.rpc, c.number)
        if canonical.hash != c.hash:
            await self._handle_reorg(tip)

    async def _handle_reorg(self, tip: Tip) -> None:
        c = self.cursor
        assert c is not None
        low = self.final_number if self.final_number is not None else 0
        stored = await self.store.stored_blocks(c.number, low)
        ancestor: BlockRow | None = None
        for i in range(0, len(stored), UNFINAL_BATCH):
            chunk = [b for b in stored[i: i + UNFINAL_BATCH] if b.number <= tip.head.number]
            canon = {h.number: h.hash for h in await get_headers(self.rpc, [b.number for b in chunk])} if chunk else {}
            ancestor = next((b for b in chunk if canon.get(b.number) == b.hash), None)
            if ancestor is not None:
                break
        try:
            if ancestor is None:
                raise ReorgBeyondFinality(
                    f"{self.chain}: no common ancestor at or above the final height {low} "
                    f"(cursor {c.number} {c.hash[:10]} is no longer canonical)"
                )
            deleted = await self.store.rollback_to(Cursor(ancestor.number, ancestor.hash), expected=c)
        except ReorgBeyondFinality as exc:
            await self._halt(str(exc))
            raise ChainHalted(str(exc)) from None
        await self._load_children()  # the rollback took the children created above the ancestor
        depth = c.number - ancestor.number
        m.REORGS.labels(self.chain).inc()
        m.REORG_DEPTH.labels(self.chain).observe(depth)
        log.warning("follower.reorg", chain=self.chain, common_ancestor=ancestor.number, old_cursor=c.number,
                    depth=depth, deleted_events=deleted)
        self.cursor = Cursor(ancestor.number, ancestor.hash)

    async def _halt(self, reason: str) -> None:
        self.state = "halted"
        m.FOLLOWER_HALTED.labels(self.chain).set(1)
        m.FOLLOWER_UP.labels(self.chain).set(0)
        log.error("follower.halted", chain=self.chain, reason=reason)
        await self.store.set_halted(reason)

    # -- indexing ---------------------------------------------------------------

    async def _check_final(self, a: int, end: int, logs: list, fetched: LogFilter,
                           known: set[str] | None) -> tuple[tuple, LogFilter]:
        # [integrity] a range small enough for one header batch (the ranges of
        # chains final at inclusion) is checked block by block against its
        # blooms; a wide backfill range of old blocks at its two ends.
        numbers = list(range(a, end + 1)) if end - a < UNFINAL_BATCH else [a, end]
        headers = await get_headers(self.rpc, numbers)
        first, last = headers[0], headers[-1]
        logs, children, flt = await self._verified(a, end, headers, logs, fetched, known)
        events, raw = self.decoder.decode_logs(logs)
        if self.sources:
            held = {h.number: h.hash for h in headers}
            for src in self.sources:
                extra = await src.fetch(self.rpc, a, end)
                # [integrity] rows of the blocks whose header we hold carry its hash (traces are read by hash)
                if any(row[1] in held and row[2] != held[row[1]] for row in extra):
                    raise InconsistentRange(f"{self.chain}: extra rows of {a}..{end} come from other blocks")
                events += extra
        dated = await wallet_headers(self.rpc, events, headers, last, self._wallets)
        return (a, end, events, raw, first, last, children, dated), flt

    async def _index_final(self, a: int, b: int, stop: asyncio.Event | None = None) -> int:
        """Final blocks [a, b]: fetch ahead, commit in order."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=PREFETCH)
        first_range = self._first_range
        first_committed = asyncio.Event()

        async def produce() -> None:
            # The next range's eth_getLogs is in flight while this one is
            # checked and decoded: the node works while this process does.
            # With factories, `known` is this producer's view of the children
            # (those of ranges not committed yet included) and `flt` follows it.
            start, flt, known = a, self.filter, self._known()
            if first_range:
                # Nothing is fetched ahead of the first range: its commit does
                # not share the process with decoding the next one.
                end, logs = await fetch_logs(self.rpc, flt, start, min(b, start + FIRST_RANGE_BLOCKS - 1),
                                             self.sizer)
                item, flt = await self._check_final(start, end, logs, flt, known)
                await queue.put(item)
                await first_committed.wait()
                start = end + 1
            ahead = (asyncio.create_task(fetch_logs(self.rpc, flt, start, b, self.sizer))
                     if start <= b else None)
            sent = flt
            try:
                while ahead is not None:
                    end, logs = await ahead
                    fetched = sent
                    ahead = (asyncio.create_task(fetch_logs(self.rpc, flt, end + 1, b, self.sizer))
                             if end < b else None)
                    sent = flt
                    item, flt = await self._check_final(start, end, logs, fetched, known)
                    await queue.put(item)
                    start = end + 1
            finally:
                if ahead is not None and not ahead.done():
                    ahead.cancel()
                    await asyncio.gather(ahead, return_exceptions=True)
            await queue.put(None)

        producer = asyncio.create_task(produce())
        new = 0
        try:
            while True:
                get = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({get, producer}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    producer.result()  # raises the producer's error
                    continue
                item = get.result()
                if item is None:
                    break
                start, end, events, raw, first, last, children, dated = item
                c = self.cursor
                if c is not None and first.parent_hash != c.hash:
                    await self._contradiction(c, f"block {start} does not extend the cursor {c.number} {c.hash[:10]}")
                self._contradictions = 0
                # Only a contiguous final prefix may be declared final; blocks
                # indexed above finality earlier wait for the sweep.
                contiguous = self.final_number is None or self.final_number >= start - 1
                new += await self._commit(start, end, events, raw, [*dated, last], c, Cursor(end, last.hash),
                                          final=end if contiguous else None, children=children)
                self._first_range = False
                first_committed.set()
                if stop is not None and stop.is_set():
                    break
        finally:
            if not producer.done():
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
        return new

    async def _index_unfinal(self, a: int, b: int) -> int:
        headers = await get_headers(self.rpc, list(range(a, b + 1)))
        c = self.cursor
        if c is not None and headers[0].parent_hash != c.hash:
            await self._handle_reorg(self._tip)  # type: ignore[arg-type]
            return 0
        for prev, cur in zip(headers, headers[1:]):
            if cur.parent_hash != prev.hash:
                raise InconsistentRange(f"{self.chain}: headers {prev.number}..{cur.number} do not link (reorg in progress)")
        end, logs = await fetch_logs(self.rpc, self.filter, a, b, self.sizer)
        headers = headers[: end - a + 1]
        by_number = {h.number: h.hash for h in headers}
        logs, children, _ = await self._verified(a, end, headers, logs, self.filter, self._known())
        events, raw = self.decoder.decode_logs(logs)
        for src in self.sources:
            extra = await src.fetch(self.rpc, a, end)
            if any(row[2] != by_number.get(row[1]) for row in extra):
                raise InconsistentRange(f"{self.chain}: extra rows of {a}..{end} come from other blocks (reorg in progress)")
            events += extra
        return await self._commit(a, end, events, raw, headers, c, Cursor(end, headers[-1].hash), final=None,
                                  children=children)

    async def _sweep_final(self, tip: Tip) -> None:
        """Re-query blocks indexed above finality once they are final."""
        if self.cursor is None:
            return
        top = min(tip.finalized, self.cursor.number)
        low = self.final_number + 1 if self.final_number is not None else self._first_block()
        if top < low:
            return
        stored = await self.store.stored_block(top)
        canonical = await get_header(self.rpc, top)
        if stored is not None and stored.hash != canonical.hash:
            await self._handle_reorg(tip)
            return
        start = low
        while start <= top:
            m.GETLOGS_REQUERIES.labels(self.chain, "confirm").inc()
            end, logs = await fetch_logs(self.rpc, self.filter, start, top, self.sizer)
            logs, children, _ = await self._with_children(start, end, logs, self.filter, self._known(),
                                                          upto=self.cursor.number)
            # [integrity] each log's hash must be the hash we hold for its block
            # (block window, or rows stored there), else the one every answering
            # endpoint agrees on: a node on another fork adds nothing.
            top_log = max(end, self.cursor.number) if children else end
            if not await self._logs_canonical(logs, await self.store.canonical_hashes(start, top_log)):
                raise InconsistentRange(f"{self.chain}: re-query of {start}..{end}: logs of a block that is "
                                        "not the canonical one we hold; re-checking")
            events, raw = self.decoder.decode_logs(logs)
            for src in self.sources:
                events += await src.fetch(self.rpc, start, end)
            inserted = await self._commit(start, end, events, raw, [], None, None, final=end, children=children,
                                          to_block=top_log)
            if inserted:
                m.LATE_LOGS.labels(self.chain, "confirm").inc(inserted)
                log.warning("follower.late_logs", chain=self.chain, from_block=start, to_block=end, events=inserted)
            start = end + 1

    async def _replay(self, a: int, b: int) -> int:
        """Re-read final blocks [a, b]; insert only canonical logs that are missing.

        [integrity] every log must carry the canonical hash of its block: the
        stored one (block window, or events already stored at that number),
        else the header all answering endpoints agree on. An answer that
        fails is asked again of each endpoint alone; if none passes the
        replay is refused. Writes are fenced: the range must still be final
        when it commits.
        """
        new, start = 0, a
        while start <= b:
            end, logs = await fetch_logs(self.rpc, self.filter, start, b, self.sizer)
            logs = await self._canonical_logs(start, end, logs)
            top_log = max(end, self.cursor.number if self.cursor else end)
            logs, children, _ = await self._with_children(start, end, logs, self.filter, self._known(), upto=top_log)
            if children and not await self._logs_canonical(logs, await self.store.canonical_hashes(start, top_log)):
                raise ReplayRefused(f"{self.chain}: replay of {start}..{end}: logs of new factory children are not "
                                    "of the canonical blocks; nothing was written")
            events, raw = self.decoder.decode_logs(logs)
            for src in self.sources:
                events += await src.fetch(self.rpc, start, end)
            new += await self._commit(start, end, events, raw, [], None, None, final=None, fence_final=end,
                                      children=children, to_block=top_log if children else end)
            start = end + 1
        return new

    async def _canonical_logs(self, a: int, b: int, logs: list[dict]) -> list[dict]:
        known = await self.store.canonical_hashes(a, b)
        if await self._logs_canonical(logs, known):
            return logs
        log.warning("replay.non_canonical_logs", chain=self.chain, from_block=a, to_block=b)
        for ep in self.rpc.endpoints:
            try:
                alt = check_logs_in_range(await get_logs(self.rpc, self.filter, a, b, ep), a, b)
            except (RpcError, BadRpcResponse):
                continue
            if await self._logs_canonical(alt, known):
                m.GETLOGS_REQUERIES.labels(self.chain, "replay").inc()
                return alt
        raise ReplayRefused(f"{self.chain}: replay of {a}..{b}: no endpoint answered with logs of the canonical blocks "
                            "(a node on an orphaned fork?); nothing was written")

    async def _logs_canonical(self, logs: list[dict], known: dict[int, str]) -> bool:
        unknown = sorted({int(lg["blockNumber"], 16) for lg in logs} - set(known))
        for n in unknown:
            answers = [res for _, res in await self.rpc.batch_each([("eth_getBlockByNumber", [hex(n), False])])
                       if not isinstance(res, RpcError)]
            hashes = set()
            for res in answers:
                try:
                    hashes.add(parse_header(res[0], f"eth_getBlockByNumber({hex(n)})").hash)
                except BadRpcResponse:
                    hashes.add(None)
            if len(hashes) != 1 or None in hashes:
                return False  # nobody answered, or the endpoints disagree on block n
            known[n] = hashes.pop()
        return all(str(lg.get("blockHash", "")).lower() == known[int(lg["blockNumber"], 16)] for lg in logs)

    async def _contradiction(self, c: Cursor, what: str) -> None:
        """The chain contradicts a final block we hold: halt once every endpoint agrees.

        [integrity] one endpoint's word is not enough either way: if any
        endpoint still has our block, it is a lying or lagging node and the
        range is fetched again; when all answering endpoints say our final
        block is not canonical (or the contradiction persists), halt loudly.
        """
        final = self.final_number is not None and c.number <= self.final_number
        if not final:
            raise InconsistentRange(f"{self.chain}: {what}; re-checking")
        self._contradictions += 1
        answers = [res for _, res in await self.rpc.batch_each([("eth_getBlockByNumber", [hex(c.number), False])])
                   if not isinstance(res, RpcError)]
        hashes = set()
        for res in answers:
            try:
                hashes.add(parse_header(res[0], "eth_getBlockByNumber").hash)
            except BadRpcResponse:
                pass
        if (hashes and c.hash not in hashes) or self._contradictions >= CONTRADICTIONS_TO_HALT:
            reason = (f"{self.chain}: contradiction below final: {what} (final height {self.final_number}); "
                      f"fix with `chainsettle chains unhalt {self.chain} --rewind-to N --reason ...`")
            m.INTEGRITY_HALTS.labels(self.chain).inc()
            await self._halt(reason)
            raise ChainHalted(reason)
        raise InconsistentRange(f"{self.chain}: {what}; an endpoint still has our block, re-checking")

    async def rescan_sample(self) -> int:
        """Re-scan a random final range and count differences with what is stored.

        LogPoller's backup poller, as a check: nothing is written (a
        difference means a human replays the range, which checks hashes);
        `chainsettle_final_rescan_differences_total` counts and alerts.
        """
        if self.final_number is None:
            return 0
        low, high = self._first_block(), self.final_number
        if high < low:
            return 0
        span = min(self.cfg.rescan_blocks, self.sizer.size, high - low + 1)
        a = self._rng.randint(low, high - span + 1)
        end, logs = await fetch_logs(self.rpc, self.filter, a, a + span - 1, self.sizer)
        chain = {(int(lg["blockNumber"], 16), lg["blockHash"].lower(), lg["transactionHash"].lower(),
                  int(lg["logIndex"], 16)) for lg in logs}
        stored = await self.store.final_log_keys(a, end, self.filter.addresses)
        diff = len(chain ^ stored)
        m.RESCAN_BLOCKS.labels(self.chain).inc(end - a + 1)
        if diff:
            m.RESCAN_DIFFERENCES.labels(self.chain).inc(diff)
            log.error("follower.rescan_differences", chain=self.chain, from_block=a, to_block=end,
                      missing=len(chain - stored), extra=len(stored - chain))
        return diff

    async def _commit(self, a, b, events, raw, blocks, expected, cursor, final, fence_final=None,
                      children: Sequence[ChildRow] = (), to_block: int | None = None) -> int:
        prune = (final - KEEP_FINAL_BLOCKS) if final is not None and cursor is not None else None
        if children:
            # Rows of the children's own fetch came last: keep the range in block and log order.
            events.sort(key=_event_order)
        try:
            inserted = await asyncio.shield(self.store.commit_range(
                from_block=a, to_block=b if to_block is None else to_block, events=events, raw_logs=raw,
                blocks=blocks, expected=expected, cursor=cursor, final_number=final, prune_below=prune,
                fence_final=fence_final, children=children,
            ))
        except BaseException:
            if children:
                # The commit may have landed (cancelled while shielded): the next
                # start reads cursor and children from the database, never a guess.
                self._started = False
            raise
        if children:
            self.factories.add((ch.address, ch.factory_address) for ch in children)
            self.filter = self._filter_of(self._configured | set(self.factories.children))
            log.info("follower.factory_children", chain=self.chain, from_block=a, to_block=b, new=len(children),
                     total=len(self.factories.children))
        if cursor is not None:
            self.cursor = cursor
        if final is not None:
            self.final_number = max(final, self.final_number or final)
        m.EVENTS_INDEXED.labels(self.chain).inc(inserted)
        if raw:
            m.LOGS_UNDECODED.labels(self.chain).inc(len(raw))
            log.warning("follower.undecoded_logs", chain=self.chain, count=len(raw), first_reason=raw[0].reason)
        m.GETLOGS_RANGE.labels(self.chain).set(self.sizer.size)
        return inserted

    # -- pacing and status ------------------------------------------------------

    async def _wait_for_block(self, stop: asyncio.Event) -> None:
        interval = self.cfg.effective_poll_interval
        if self._heads:
            # newHeads wakes us (also once a reconnect succeeds); polling is the safety net.
            await self._heads.wait(stop, max(interval, 5.0) if self._heads.connected else interval)
        else:
            await sleep_or_stop(stop, interval)

    def reload_cursor(self) -> None:
        """The next start() reads the cursor from the database again."""
        self._started = False

    async def report_status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < 1.0:
            return
        self._last_report = now
        tip = self._tip
        head = tip.head.number if tip else None
        cursor = self.cursor.number if self.cursor else None
        if tip:
            m.HEAD_BLOCK.labels(self.chain).set(tip.head.number)
            if cursor is not None:
                m.LAG_BLOCKS.labels(self.chain).set(max(0, tip.head.number - cursor))
            if tip.head.timestamp and cursor is not None and cursor >= tip.head.number:
                m.LAG_SECONDS.labels(self.chain).set(max(0.0, time.time() - tip.head.timestamp))
        if cursor is not None:
            m.INDEXED_BLOCK.labels(self.chain).set(cursor)
        if self.final_number is not None:
            m.FINALIZED_BLOCK.labels(self.chain).set(self.final_number)
        status = {
            "state": self.state,
            "last_error": self.last_error,
            "range_size": self.sizer.size,
            "endpoints": self.rpc.health(),
            "head_timestamp": tip.head.timestamp if tip else None,
            "ws_connected": bool(self._heads and self._heads.connected),
        }
        if self.factories:
            status["factory_children"] = len(self.factories.children)
        await self.store.set_status(status, head=head, finalized=tip.finalized if tip else None)
