"""`chainsettle api`: the API alone, e.g. against a read replica."""

from __future__ import annotations

import argparse
import asyncio
import signal

from config import ConfigError, Settings
from config.section_api import split_listen


async def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from api.server import check_schema, open_read_pool, serve_api

    if args.listen:
        try:
            split_listen(args.listen)
        except ValueError as exc:
            raise ConfigError(f"--listen: {exc}") from None
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"listen": args.listen})})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await open_read_pool(settings)
    try:
        await check_schema(pool)
        await serve_api(settings, pool, stop)
    finally:
        await pool.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("api", help="serve the read API, SSE feed, /metrics and status page (no followers)")
    p.add_argument("--listen", help="host:port, overriding api.listen")
    p.set_defaults(func=cmd_api)
