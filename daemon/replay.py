"""Replays requested over the admin API (`POST /v1/admin/replay`), run by `chainsettle run`.

The API only records a request; this worker claims it, runs the chain's
follower backfill over the range (which inserts only what is missing, with
the ledger and payout hooks in the same transactions) and reports the
count in the request row, with an audit row. Any number of processes may
run the worker: claims use FOR UPDATE SKIP LOCKED plus a lease, renewed
while the replay runs, so a dead worker's request is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Any

import asyncpg

from config import ChainsettleError, Settings
from config.logs import get_logger
from db import Queries, audit
from indexer.chain_state import Heights, heights

from .followers import make_follower

Q = Queries(Path(__file__).with_name("replay.sql"))
log = get_logger("daemon.replay")
ACTOR = "daemon:replay"
POLL_SECONDS = 1.0
LEASE_SECONDS = 300.0
# A request whose worker died this often is likely what killed it.
MAX_ATTEMPTS = 3
DB_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _finish(pool: asyncpg.Pool, req: asyncpg.Record, worker: str, *, inserted: int | None = None,
                  error: str | None = None) -> bool:
    state = "done" if error is None else "failed"
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(Q.finish_replay, req["id"], worker, state, inserted, error) is None:
            return False
        details: dict[str, Any] = {"replay_id": req["id"], "from_block": req["from_block"],
                                   "to_block": req["to_block"], "requested_by": req["requested_by"],
                                   "attempts": req["attempts"]}
        details.update({"inserted": inserted} if error is None else {"error": error})
        await audit(conn, ACTOR, f"replay.{state}", f"chain:{req['chain']}", details)
    return True


async def _keep_lease(pool: asyncpg.Pool, req_id: int, worker: str, lease: float) -> None:
    while True:
        await asyncio.sleep(lease / 3)
        with contextlib.suppress(*DB_ERRORS):
            await pool.execute(Q.extend_lease, req_id, worker, lease)


async def replay_once(settings: Settings, pool: asyncpg.Pool, *, worker: str | None = None,
                      lease: float = LEASE_SECONDS) -> int | None:
    """Run one pending replay; return its id, or None when there was nothing to do."""
    worker = worker or worker_name()
    async with pool.acquire() as conn:
        req = await conn.fetchrow(Q.claim_replay, worker, lease)
    if req is None:
        return None
    # Stopped anywhere after the claim (not only inside the backfill): back to
    # the queue at once. The release is a no-op once the request finished.
    try:
        return await _run_claimed(settings, pool, req, worker, lease)
    except asyncio.CancelledError:
        with contextlib.suppress(*DB_ERRORS):
            await asyncio.shield(pool.execute(Q.release_replay, req["id"], worker))
        raise


async def _run_claimed(settings: Settings, pool: asyncpg.Pool, req, worker: str, lease: float) -> int:
    chain = req["chain"]
    cfg = next((c for c in settings.chains if c.name == chain), None)
    if cfg is None:
        await _finish(pool, req, worker, error=f"chain {chain!r} is not configured in this process")
        return req["id"]
    if req["attempts"] > MAX_ATTEMPTS:
        await _finish(pool, req, worker, error=f"gave up after {MAX_ATTEMPTS} attempts whose worker stopped")
        return req["id"]
    async with pool.acquire() as conn:
        h = await heights(conn, chain) or Heights(None, None, None)
    cursor = h.cursor
    # The follower moves the cursor; a replay only goes back over what it
    # already indexed (a reorg may have lowered the cursor since the request),
    # and only over final blocks: above final the follower re-checks itself.
    if cursor is None or req["from_block"] > cursor:
        await _finish(pool, req, worker, error=f"the range starts above the indexed block ({cursor})")
        return req["id"]
    if h.final is None or req["from_block"] > h.final:
        await _finish(pool, req, worker, error=f"the range starts above the final height ({h.final}); "
                                                "blocks above final are re-checked by the follower")
        return req["id"]
    top = min(req["to_block"], cursor, h.final)
    log.info("replay.started", id=req["id"], chain=chain, from_block=req["from_block"], to_block=top,
             attempt=req["attempts"])
    keeper = asyncio.create_task(_keep_lease(pool, req["id"], worker, lease), name=f"replay-lease-{req['id']}")
    inserted: int | None = None
    error: str | None = None
    try:
        follower = make_follower(cfg, pool, settings)
        try:
            inserted = await follower.backfill(from_block=req["from_block"], to_block=top)
        finally:
            with contextlib.suppress(Exception):
                await follower.close()
    except ChainsettleError as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:1000]
    except DB_ERRORS:
        raise  # the lease runs out and another attempt takes over
    except Exception as exc:
        log.exception("replay.crashed", id=req["id"], chain=chain)
        error = f"{exc.__class__.__name__}: internal error; see the log"
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    reported = await _finish(pool, req, worker, inserted=inserted, error=error)
    if error is None:
        log.info("replay.done", id=req["id"], chain=chain, inserted=inserted, reported=reported)
    else:
        log.warning("replay.failed", id=req["id"], chain=chain, error=error, reported=reported)
    return req["id"]


async def run_replay_worker(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event, *,
                            poll_interval: float = POLL_SECONDS) -> None:
    """Run requested replays until `stop` is set; one at a time per process."""
    worker = worker_name()
    failing = False
    while not stop.is_set():
        done = None
        try:
            done = await replay_once(settings, pool, worker=worker)
            failing = False
        except DB_ERRORS as exc:
            if not failing:
                log.warning("replay.db_unavailable", error=exc.__class__.__name__)
            failing = True
        if done is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
