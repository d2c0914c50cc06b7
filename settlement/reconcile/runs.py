"""Reconciliation: on-chain balances at H against the ledger as of H.

Per chain, H is the final and fully indexed height (chain_state.final_number).
Ledger entries at or below H are final (derived from final events, or
openings and manual adjustments dated at or below H), so the comparison is
repeatable: blocks mined after H change neither side. Every run and every
wallet-asset result is stored. A difference beyond the asset's tolerance
raises a metric, writes an audit row and a structured log, and pauses
payouts of that asset until an operator resolves it (`resolve_pause`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg
import orjson

from config import ChainConfig, ChainsettleError, Settings
from config.logs import get_logger
from db import Queries, audit
from indexer.chain_state import final_height
from indexer.errors import BadRpcResponse, RpcError
from settlement.ledger import metrics as m
from settlement.ledger.balances import (
    BalanceError,
    BalanceQuery,
    BalanceReader,
    reader_for,
)
from settlement.ledger.books import (
    LedgerError,
    assets_of_chain,
    ensure_openings,
    fill_decimals,
    sync_ledger,
    wallet_balances_as_of,
)
from settlement.ledger.pauses import pause_asset, resolve_pause
from settlement.ledger.rules import check_ledger_config

Q = Queries(Path(__file__).with_name("reconcile.sql"))
log = get_logger("settlement.reconcile.runs")
ACTOR = "reconciler"
EXIT_OK, EXIT_ERROR, EXIT_MISMATCH = 0, 2, 3

__all__ = ["Report", "reconcile_once", "resolve_pause", "run_reconcile_loop"]


class ChainNotReady(ChainsettleError):
    """the chain has no final, indexed height yet"""


@dataclass
class Result:
    wallet: str
    name: str
    account: str
    asset: str
    expected: int
    actual: int
    difference: int  # actual - expected
    tolerance: int
    status: str  # ok | within_tolerance | mismatch
    movements: list[dict] = field(default_factory=list)  # unbooked first, then the largest (reconcile.sql)
    movements_total: int = 0  # how many there were in all; `movements` keeps reconcile.max_movements
    check: str = "balance"  # balance (on chain vs ledger) | overpaid (a user owed less than zero)


@dataclass
class ChainRun:
    chain: str
    status: str  # ok | mismatch | error | skipped (nothing compared)
    height: int | None = None
    run_id: int | None = None
    error: str | None = None
    results: list[Result] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # wallets whose books start above H


@dataclass
class Report:
    runs: list[ChainRun]

    @property
    def has_mismatch(self) -> bool:
        return any(r.status == "mismatch" for r in self.runs)

    @property
    def has_error(self) -> bool:
        return any(r.status == "error" for r in self.runs)

    @property
    def exit_code(self) -> int:
        """0 all match; 3 a mismatch exists; 2 a chain could not be checked."""
        return EXIT_MISMATCH if self.has_mismatch else (EXIT_ERROR if self.has_error else EXIT_OK)

    def to_dict(self) -> dict:
        chains = []
        for run in self.runs:
            d = asdict(run)
            d["results"] = [_amounts_as_text(r) for r in d["results"]]
            chains.append(d)
        return {
            "status": "mismatch" if self.has_mismatch else ("error" if self.has_error else "ok"),
            "chains": chains,
        }

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()


def _amounts_as_text(d: dict) -> dict:
    # Base units overflow JSON numbers' safe range: amounts travel as strings.
    return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) and k != "movements_total" else v
            for k, v in d.items()}


# -- one run -------------------------------------------------------------------


async def reconcile_once(
    settings: Settings, pool: asyncpg.Pool, readers: Mapping[str, BalanceReader] | None = None
) -> Report:
    """Reconcile every chain that has wallets; store and return the report.

    `readers` (chain name -> BalanceReader) is reused across runs by the
    loop; when None, readers are made from the config and closed after.
    """
    check_ledger_config(settings)
    chains = [c for c in settings.chains if c.wallets]
    async with pool.acquire() as conn:
        await sync_ledger(conn, settings)
    own = readers is None
    readers = readers if readers is not None else {c.name: reader_for(c) for c in chains}
    runs = []
    try:
        for cfg in chains:
            runs.append(await reconcile_chain(settings, pool, cfg, readers[cfg.name]))
    finally:
        if own:
            for r in readers.values():
                await r.close()
    await _refresh_pause_metrics(pool)
    return Report(runs)


async def reconcile_chain(settings: Settings, pool: asyncpg.Pool, cfg: ChainConfig, reader: BalanceReader) -> ChainRun:
    chain = cfg.name
    started = dt.datetime.now(dt.timezone.utc)
    run = ChainRun(chain, "error")
    try:
        await _compare(settings, pool, cfg, reader, run)
    except (ChainNotReady, BalanceError, RpcError, BadRpcResponse, LedgerError) as exc:
        run.status, run.error = "error", f"{exc.__class__.__name__}: {exc}"[:1000]
        run.results = []
        # A chain not indexed to a final height yet is expected at start-up, not an alarm.
        (log.warning if isinstance(exc, ChainNotReady) else log.error)(
            "reconcile.error", chain=chain, height=run.height, error=run.error)
    await _store(pool, run, started)
    m.RECON_RUNS.labels(chain, run.status).inc()
    m.RECON_LAST_RUN.labels(chain, run.status).set_to_current_time()
    # [integrity] only a run that compared something refreshes "last success";
    # the staleness alert reads this one, never the last run of any status.
    if run.status in ("ok", "mismatch"):
        m.RECON_LAST_SUCCESS.labels(chain).set_to_current_time()
    elif run.status == "error":
        m.RECON_LAST_ERROR.labels(chain).set_to_current_time()
    if run.height is not None:
        m.RECON_HEIGHT.labels(chain).set(run.height)
    if run.status != "error":
        m.RECON_MISMATCHES.labels(chain).set(sum(r.status == "mismatch" for r in run.results))
        log.info("reconcile.run", chain=chain, run_id=run.run_id, height=run.height, status=run.status,
                 checked=len(run.results))
    return run


async def _compare(settings: Settings, pool: asyncpg.Pool, cfg: ChainConfig, reader: BalanceReader, run: ChainRun) -> None:
    chain = cfg.name
    async with pool.acquire() as conn:
        final = await final_height(conn, chain)
    if final is None:
        raise ChainNotReady(f"{chain}: no final, indexed height yet (is the follower running?)")
    height = run.height = final
    await fill_decimals(pool, chain, reader)
    await ensure_openings(pool, chain, reader)
    async with pool.acquire() as conn:
        rows = await wallet_balances_as_of(conn, chain, height)
        assets = await assets_of_chain(conn, chain)
    due = []
    for r in rows:
        if r["tracked_from"] is None or r["tracked_from"] > height or not r["opened"]:
            # The books of this wallet start above H: nothing to compare yet.
            run.skipped.append({"wallet": r["address"], "asset": r["asset_id"], "starts_at": r["tracked_from"]})
        else:
            due.append(r)
    actual = await reader.balances(height, [BalanceQuery(r["address"], assets[r["asset_id"]]) for r in due])
    minimums = settings.reconcile.min_balances
    for r, value in zip(due, actual):
        m.WALLET_BALANCE.labels(chain, r["name"], r["asset_id"]).set(value)
        if r["asset_id"] in minimums:
            m.WALLET_LOW.labels(chain, r["name"], r["asset_id"]).set(1 if value < minimums[r["asset_id"]] else 0)
        expected = int(r["expected"])
        diff = value - expected
        tol = settings.reconcile.tolerance_for(r["asset_id"])
        status = "ok" if diff == 0 else ("within_tolerance" if abs(diff) <= tol else "mismatch")
        run.results.append(Result(r["address"], r["name"], r["account"], r["asset_id"], expected, value, diff, tol, status))
    overpaid = []
    # "Owed" is what the ledger says only where the ledger governs payouts:
    # with require_balance off, payouts are funded outside the books (rewards
    # from a treasury), a user account below zero is the design, and only the
    # balance check against the chain applies.
    if settings.payouts.require_balance:
        async with pool.acquire() as conn:
            overpaid = await conn.fetch(Q.overpaid_users, chain, height)
    m.RECON_OVERPAID.labels(chain).set(len(overpaid))
    for o in overpaid:
        # Owed at least 0; the difference is exactly what was paid beyond what was owed.
        owed = int(o["owed"])
        run.results.append(Result(o["code"].split(":", 2)[2], "overpaid user", o["code"], o["asset_id"], 0, owed,
                                  owed, 0, "mismatch", check="overpaid",
                                  movements=[{"paid": str(int(o["paid"] or 0)), "credited": str(int(o["credited"]))}],
                                  movements_total=1))
    if any(x.status == "mismatch" for x in run.results):
        run.status = "mismatch"
    else:
        run.status = "ok" if run.results else "skipped"
    if run.status == "mismatch":
        account_ids = {r["account"]: r["account_id"] for r in due}
        async with pool.acquire() as conn:
            for res in run.results:
                if res.status == "mismatch" and res.check == "balance":
                    res.movements, res.movements_total = await _movements(
                        conn, settings, cfg, assets[res.asset], res, account_ids[res.account], rows, height)


async def _movements(conn, settings: Settings, cfg: ChainConfig, asset, res: Result, account_id: int, rows,
                     height: int) -> tuple[list[dict], int]:
    """Events touching the wallet since it last matched, unbooked first, then the largest: where to
    look for the difference; and how many there were in all."""
    since = await conn.fetchval(Q.last_good_height, cfg.name, account_id, res.asset)
    if since is None:
        since = next(r["tracked_from"] for r in rows if r["account"] == res.account)
    sources = [asset["contract"]] if asset["kind"] == "erc20" else ["native"]
    found = await conn.fetch(Q.movements, cfg.name, since, height, res.wallet, sources, settings.reconcile.max_movements)
    shown = [{"block_number": f["block_number"], "tx_hash": f["tx_hash"], "log_index": f["log_index"],
              "source": f["address"], "event": f["event"], "args": f["args"], "amount": f["amount"],
              "booked": bool(f["booked_by"]), "booked_by": list(f["booked_by"])} for f in found]
    return shown, int(found[0]["total"]) if found else 0


async def _store(pool: asyncpg.Pool, run: ChainRun, started: dt.datetime) -> None:
    """The run, its results, and for mismatches the audit rows and pauses, in one transaction."""
    mismatches = [r for r in run.results if r.status == "mismatch"]
    async with pool.acquire() as conn, conn.transaction():
        run.run_id = await conn.fetchval(Q.insert_run, run.chain, run.height, started, run.status, run.error,
                                         len(run.results), len(mismatches))
        if run.results:
            ids = dict(await conn.fetch(Q.account_ids, [r.account for r in run.results]))
            await conn.execute(
                Q.insert_results, run.run_id, [ids[r.account] for r in run.results], [r.asset for r in run.results],
                [r.expected for r in run.results], [r.actual for r in run.results],
                [r.tolerance for r in run.results], [r.status for r in run.results],
                [orjson.dumps(r.movements).decode() for r in run.results], [r.movements_total for r in run.results],
            )
        for r in mismatches:
            details = _amounts_as_text({
                "run_id": run.run_id, "chain": run.chain, "height": run.height, "wallet": r.wallet,
                "account": r.account, "asset": r.asset, "expected": r.expected, "actual": r.actual,
                "difference": r.difference, "tolerance": r.tolerance, "check": r.check,
            })
            await audit(conn, ACTOR, "reconcile.mismatch", r.asset, details)
            log.error("reconcile.mismatch", **details)
            if r.check == "overpaid":
                reason = (f"reconciliation run {run.run_id}: {r.account} was paid {-r.actual} {r.asset} more than "
                          f"it was owed as of {run.height} (owed {r.actual}; a payout executed twice?)")
            else:
                reason = (f"reconciliation run {run.run_id}: {r.account} holds {r.actual} {r.asset} on chain at "
                          f"{run.height}, the ledger says {r.expected} (difference {r.difference})")
            await pause_asset(conn, r.asset, reason, ACTOR, run.run_id)
    for r in run.results:
        labels = (run.chain, r.asset, r.account)
        m.RECON_DIFFERENCE.labels(*labels).set(float(r.difference))
        m.RECON_STATUS.labels(*labels).set(m.STATUS_CODES[r.status])


async def _refresh_pause_metrics(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        paused = {r["asset_id"] for r in await conn.fetch(Q.paused_assets)}
        known = [r["id"] for r in await conn.fetch(Q.asset_ids)]
    for a in known:
        m.ASSET_PAUSED.labels(a).set(1 if a in paused else 0)


# -- the periodic job ------------------------------------------------------------


async def run_reconcile_loop(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Reconcile every `reconcile.interval_seconds` until `stop` is set.

    Several daemon processes may run this; a session advisory lock lets one
    of them reconcile per round. Failures are logged and retried next round.
    """
    chains = [c for c in settings.chains if c.wallets]
    if not chains:
        log.info("reconcile.disabled", reason="no chain has wallets")
        return
    readers = {c.name: reader_for(c) for c in chains}
    interval = settings.reconcile.interval_seconds
    try:
        while not stop.is_set():
            try:
                async with pool.acquire() as lock_conn:
                    if await lock_conn.fetchval(Q.try_lock):
                        try:
                            await reconcile_once(settings, pool, readers)
                        finally:
                            await lock_conn.fetchval(Q.unlock)
            except (ChainsettleError, asyncpg.PostgresError, OSError) as exc:
                log.error("reconcile.failed", error=f"{exc.__class__.__name__}: {exc}"[:500])
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
    finally:
        for r in readers.values():
            await r.close()


async def refresh_run_metrics(pool: asyncpg.Pool) -> None:
    """The last-run gauges and pauses from the database, so a restarted process
    reports a stale reconciliation (or an open pause) at once, not after its
    first run."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(Q.last_runs)
    success: dict[str, float] = {}
    for r in rows:
        m.RECON_LAST_RUN.labels(r["chain"], r["status"]).set(r["at"])
        if r["status"] in ("ok", "mismatch"):
            success[r["chain"]] = max(success.get(r["chain"], 0.0), r["at"])
        elif r["status"] == "error":
            m.RECON_LAST_ERROR.labels(r["chain"]).set(r["at"])
    for chain, at in success.items():
        m.RECON_LAST_SUCCESS.labels(chain).set(at)
    await _refresh_pause_metrics(pool)
