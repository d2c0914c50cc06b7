"""`reconcile` and `ledger` subcommands: registered through daemon.cli_ext."""

from __future__ import annotations

import json

from db.values import amount_text, text_default, units_text


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
    ad = lgs.add_parser("adjust", help="book a manual adjustment (two balanced legs, audited) that explains "
                                       "a reconciliation difference; then `ledger resolve` the asset")
    ad.add_argument("--chain", required=True)
    ad.add_argument("--debit", required=True, help="account code, e.g. adjustment:local:writeoff")
    ad.add_argument("--credit", required=True, help="account code, e.g. wallet:local:0xab..")
    ad.add_argument("--asset", required=True, help="asset id, e.g. local:Token")
    ad.add_argument("--amount", required=True, help="integer base units")
    ad.add_argument("--author", required=True)
    ad.add_argument("--reason", required=True)
    ad.add_argument("--block", type=int, help="height the entry is effective at (default: the final height)")
    ad.add_argument("--tx-hash", help="the chain transaction it explains")
    ad.add_argument("--key", help="idempotency key: the same key and arguments book once")
    ad.set_defaults(func=_cmd_adjust)

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
    print(json.dumps(result, default=text_default))
    return 0


async def _cmd_balances(settings, args) -> int:
    """Balances as the API shows them: what a wallet holds, what a user or app account is owed, positive."""
    from indexer.chain_state import final_height
    from settlement.ledger.books import account_kind, assets_of_chain, balances_as_of, shown_balance

    from .runtime import open_pool

    cfg = settings.chain(args.chain)
    async with open_pool(settings) as pool, pool.acquire() as conn:
        height = await final_height(conn, cfg.name)
        balances = await balances_as_of(conn, cfg.name, height) if height is not None else {}
        assets = await assets_of_chain(conn, cfg.name)
    rows = []
    for (account, asset), posted in sorted(balances.items()):
        kind = account_kind(account)
        shown = shown_balance(kind, posted)
        unit = assets.get(asset)
        rows.append({"account": account, "kind": kind, "asset": asset, "balance": amount_text(shown),
                     "units": units_text(shown, unit["decimals"], unit["symbol"]) if unit else None})
    print(json.dumps({"chain": cfg.name, "height": height, "balances": rows}))
    return 0


async def _cmd_adjust(settings, args) -> int:
    from settlement.ledger.adjust import Adjustment, adjust

    from .runtime import open_pool

    request = Adjustment(chain=args.chain, debit=args.debit, credit=args.credit, asset=args.asset,
                         amount=args.amount, author=args.author, reason=args.reason, block=args.block,
                         tx_hash=args.tx_hash, key=args.key)
    async with open_pool(settings) as pool:
        stored, created = await adjust(pool, settings, request)
    print(json.dumps({"created": created, "adjustment": stored}))
    return 0
