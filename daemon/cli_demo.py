"""`chainsettle demo`: registered through daemon.cli_ext."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the self-contained demo (embedded Postgres, local anvil chain)")
    p.add_argument("--api-port", type=int, default=8080)
    p.set_defaults(func=_cmd_demo, needs_config=False)


async def _cmd_demo(settings, args) -> int:
    from .demo import run_demo

    return await run_demo(args.api_port)
