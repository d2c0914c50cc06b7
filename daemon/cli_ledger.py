"""`reconcile` and `ledger` subcommands: registered through daemon.cli_ext."""

from __future__ import annotations

import json


def register(sub) -> None:
    rc = sub.add_parser("reconcile", help="compare on-chain balances at the final height with the ledger")
    rc.add_argument("--once", action="store_true", required=True,
                    help="one run; prints the report as JSON; exit 0 all match, 3 mismatch, 2 error")
    rc.set_defaults(func=_cmd_reconcile)

    lg = sub.add_parser("ledger", help="ledger administration")
    lgs = lg.add_subparsers(dest="ledger_command", required=True)
    rs = lgs.add_parser("resolve", help="resume payouts of an asset paused by reconciliation")
    rs.add_argument("asset", help="asset id, e.g. local:Token")
    rs.add_argument("--reason", required=True)
    rs.add_argument("--actor", default="cli")
    rs.set_defaults(func=_cmd_resolve)
    bl = lgs.add_parser("balances", help="ledger balances of every account as of the final height")
    bl.add_argument("--chain", required=True)
    bl.set_defaults(func=_cmd_balances)
    from .cli_transfers import register as transfers

    transfers(lgs)


async def _cmd_reconcile(settings, args) -> int:
    from settlement.reconcile.runs import reconcile_once

    from .runtime import open_pool

    async with open_pool(settings) as pool:
        report = await reconcile_once(settings, pool)
    print(report.to_json())
    return report.exit_code


async def _cmd_resolve(settings, args) -> int:
    from settlement.ledger.pauses import resolve_pause

    from .runtime import open_pool

    async with open_pool(settings) as pool:
        result = await resolve_pause(pool, args.asset, args.actor, args.reason)
    print(json.dumps(result, default=str))
    return 0


async def _cmd_balances(settings, args) -> int:
    from indexer.chain_state import final_height
    from settlement.ledger.books import balances_as_of

    from .runtime import open_pool

    cfg = settings.chain(args.chain)
    async with open_pool(settings) as pool, pool.acquire() as conn:
        height = await final_height(conn, cfg.name)
        balances = await balances_as_of(conn, cfg.name, height) if height is not None else {}
    print(json.dumps({"chain": cfg.name, "height": height,
                      "balances": [{"account": a, "asset": s, "amount": str(v)} for (a, s), v in sorted(balances.items())]}))
    return 0
