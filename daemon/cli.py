"""The `chainsettle` command line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

# config, db and .runtime (pydantic, asyncpg) are imported by main() and the
# commands, after main() has turned the cyclic collector off (see there).
if TYPE_CHECKING:
    from config import Settings


def _masked_config(settings: Settings) -> dict:
    from config import mask_url

    data = settings.model_dump(mode="json")
    if data["database"].get("url"):
        data["database"]["url"] = mask_url(data["database"]["url"])
    for chain in data["chains"]:
        chain["rpc"] = [mask_url(u) for u in chain["rpc"]]
        if chain.get("ws"):
            chain["ws"] = mask_url(chain["ws"])
    token = data["api"].get("admin_token")
    if token and not token.startswith(("env:", "file:")):
        data["api"]["admin_token"] = "***"
    return data


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def cmd_migrate(settings: Settings, args) -> int:
    from .runtime import database_url, run_migrations

    applied = await run_migrations(database_url(settings))
    print(json.dumps({"applied": applied}))
    return 0


async def cmd_check_config(settings: Settings, args) -> int:
    print(json.dumps(_masked_config(settings), indent=2))
    return 0


async def cmd_index(settings: Settings, args) -> int:
    from .followers import make_follower
    from .runtime import open_pool

    cfg = settings.chain(args.chain)
    async with open_pool(settings) as pool:
        follower = make_follower(cfg, pool, settings)
        started = time.perf_counter()
        try:
            new = await follower.backfill(from_block=args.from_block, to_block=args.to_block)
            elapsed = time.perf_counter() - started
        finally:
            await follower.close()
        state = await follower.store.load_state()
    print(json.dumps({"chain": cfg.name, "new_events": new, "cursor": state.cursor.number if state.cursor else None,
                      "elapsed_seconds": round(elapsed, 3)}))
    return 0


async def cmd_run(settings: Settings, args) -> int:
    from .supervisor import run_daemon

    stop = asyncio.Event()
    _install_stop(stop)
    await run_daemon(settings, stop)
    return 0


async def cmd_unhalt(settings: Settings, args) -> int:
    from db import audit

    from .runtime import ADMIN_Q, open_pool

    cfg = settings.chain(args.chain)
    if args.rewind_to is not None:
        return await _rewind(settings, cfg, args)
    async with open_pool(settings) as pool:
        async with pool.acquire() as conn, conn.transaction():
            reason = await conn.fetchval(ADMIN_Q.halted_reason, cfg.name)
            await conn.execute(ADMIN_Q.clear_halt, cfg.name)
            await audit(conn, args.actor, "chain.unhalt", f"chain:{cfg.name}",
                               {"previous_reason": reason, "note": args.reason})
    print(json.dumps({"chain": cfg.name, "was_halted": reason is not None}))
    return 0


async def _rewind(settings: Settings, cfg, args) -> int:
    """Delete above N in one transaction (audited), then re-index to the final head."""
    from config import ConfigError
    from indexer.evm.fetch import get_header

    from .followers import make_follower
    from .runtime import open_pool

    if cfg.kind != "evm":
        raise ConfigError(f"--rewind-to: supported for EVM chains; {cfg.name} is {cfg.kind}")
    if args.rewind_to < 0:
        raise ConfigError("--rewind-to: must be a block number >= 0")
    async with open_pool(settings) as pool:
        follower = make_follower(cfg, pool, settings)
        try:
            # The hash of N is read before the transaction (no network inside it).
            header = await get_header(follower.rpc, args.rewind_to)
            deleted = await follower.store.rewind(header, actor=args.actor, reason=args.reason)
            new = 0 if args.no_reindex else await follower.backfill()
        finally:
            await follower.close()
        state = await follower.store.load_state()
    print(json.dumps({"chain": cfg.name, "rewound_to": args.rewind_to, "deleted_events": deleted,
                      "reindexed_events": new, "cursor": state.cursor.number if state.cursor else None}))
    return 0


def build_parser(extensions: bool = True, parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
                 ) -> argparse.ArgumentParser:
    p = parser_class(prog="chainsettle", description=__doc__)
    p.add_argument("--config", help="TOML config file (default: $CHAINSETTLE_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("check-config", help="print the resolved config, secrets masked").set_defaults(func=cmd_check_config)

    ix = sub.add_parser("index", help="backfill one chain up to its finalized head (or --to) and exit")
    ix.add_argument("--chain", required=True)
    ix.add_argument("--from", dest="from_block", type=int, help="replay from this block (at or below the cursor)")
    ix.add_argument("--to", dest="to_block", type=int, help="stop after this block (waits until it is final)")
    ix.set_defaults(func=cmd_index)

    sub.add_parser("run", help="follow every chain until SIGTERM/SIGINT").set_defaults(func=cmd_run)

    ch = sub.add_parser("chains", help="chain follower administration")
    chs = ch.add_subparsers(dest="chains_command", required=True)
    un = chs.add_parser("unhalt", help="clear a halt after a reorg beyond finality was investigated")
    un.add_argument("chain")
    un.add_argument("--reason", required=True)
    un.add_argument("--actor", default="cli")
    un.add_argument("--rewind-to", dest="rewind_to", type=int,
                    help="delete everything above this block (final data included) in one audited transaction and re-index")
    un.add_argument("--no-reindex", action="store_true", help="with --rewind-to: leave re-indexing to the running daemon")
    un.set_defaults(func=cmd_unhalt, chain_arg=True)

    if extensions:
        for extra in _extensions():
            extra(sub)
    return p


class _NotCore(Exception):
    pass


class _TrialParser(argparse.ArgumentParser):
    """Parses silently: anything it would print or exit for raises instead."""

    def error(self, message):
        raise _NotCore

    def exit(self, status=0, message=None):
        raise _NotCore

    def _print_message(self, message, file=None):
        raise _NotCore


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """argv parsed as the full parser does, building only what it needs.

    The extension subcommands are 44 more parsers (about 15 ms of imports and
    argparse set-up at start-up): a core command (index, run, migrate, ...)
    that parses cleanly without them gets the same namespace. Anything else,
    help and errors included, goes to the full parser, so what it prints is
    unchanged.
    """
    try:
        return build_parser(extensions=False, parser_class=_TrialParser).parse_args(argv)
    except _NotCore:
        return build_parser().parse_args(argv)


def _extensions() -> list[Callable]:
    """Subcommands contributed by later capabilities (ledger, payouts, api, demo)."""
    from . import cli_ext

    return cli_ext.REGISTER


def _run(coro) -> int:
    """asyncio.run, on uvloop where it is installed (CHAINSETTLE_EVENT_LOOP=asyncio opts out).

    uvloop's transports cut the per-request cost of the RPC client and the
    Postgres protocol; behaviour (signals, tasks, cancellation) is asyncio's.
    """
    if os.environ.get("CHAINSETTLE_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(coro)
    return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    # Start-up makes some 50,000 objects that live as long as the process
    # (modules, classes, pydantic validators, the settings) and hardly any
    # garbage, and the cyclic collector would walk them over and over: ~35 ms
    # of a 0.4 s start-up of `index`. It is off until the settings are loaded;
    # what exists then is frozen (never scanned again) and it is back on for
    # the command, whose own collections look at newer objects only.
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    from config import ChainsettleError, ConfigError, load_settings

    from .runtime import setup_logging

    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
        # Rules that span sections (ledger assets vs chains) are checked here:
        # config/ cannot import settlement/.
        from settlement.ledger.rules import check_ledger_config

        check_ledger_config(settings)
        setup_logging(settings)
        gc.freeze()
        gc.enable()
        return _run(args.func(settings, args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except ChainsettleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
