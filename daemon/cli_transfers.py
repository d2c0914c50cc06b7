"""`chainsettle ledger transfer|hold|post|void|entries`: registered by daemon.cli_ledger.

Each prints JSON; a refusal exits non-zero with the result code, the field
and the account (settlement/ledger/transfers.py)."""

from __future__ import annotations

import json

from config import ChainsettleError, Settings
from db.values import text_default


def register(lgs) -> None:
    t = lgs.add_parser("transfer", help="book a transfer, or linked transfers from --file (all or none)")
    _transfer_args(t, required=False)
    t.add_argument("--file", help="a JSON array of {id, debit_account, credit_account, asset, amount, code, memo}")
    t.set_defaults(func=_cmd_transfer)
    h = lgs.add_parser("hold", help="reserve an amount (a pending transfer): post or void it later, or it expires")
    _transfer_args(h, required=True)
    h.add_argument("--timeout", type=float, help="seconds (default ledger.hold_timeout_seconds)")
    h.set_defaults(func=_cmd_hold)
    p = lgs.add_parser("post", help="post a pending hold (all, or --amount of it)")
    p.add_argument("id")
    p.add_argument("--amount")
    p.add_argument("--actor", default="cli")
    p.set_defaults(func=_cmd_resolve, post=True)
    v = lgs.add_parser("void", help="void a pending hold")
    v.add_argument("id")
    v.add_argument("--actor", default="cli")
    v.set_defaults(func=_cmd_resolve, post=False)
    e = lgs.add_parser("entries", help="an account's postings with their cause, oldest first")
    e.add_argument("account", help="account code, e.g. app:prizes")
    e.add_argument("--limit", type=int, default=100)
    e.add_argument("--cursor", default="0:0", help="`next` of the previous page")
    e.set_defaults(func=_cmd_entries)


def _transfer_args(p, *, required: bool) -> None:
    p.add_argument("--id", required=required, help="the client's id (idempotency key)")
    p.add_argument("--debit", required=required, help="account paying: user:<chain>:<address> or app:<name>")
    p.add_argument("--credit", required=required, help="account receiving")
    p.add_argument("--asset", required=required, help="asset id, e.g. anvil:native")
    p.add_argument("--amount", required=required, help="integer base units")
    p.add_argument("--code", type=int, default=0)
    p.add_argument("--memo")
    p.add_argument("--actor", default="cli")


def units_arg(value, field: str = "amount") -> int:
    """An amount argument: an integer in base units, refused naming the field otherwise."""
    try:
        return int(str(value), 10)
    except ValueError:
        raise ChainsettleError(f"{field}: must be an integer in base units") from None


def print_json(data) -> None:
    print(json.dumps(data, default=text_default))


async def _cmd_transfer(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.ledger.transfers import Transfer, create_transfers

    if args.file:
        with open(args.file) as f:
            items = json.load(f)
        if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
            raise ChainsettleError("--file: must hold a JSON array of transfer objects")
        transfers = [Transfer(str(x.get("id")), str(x.get("debit_account")), str(x.get("credit_account")),
                              str(x.get("asset")), units_arg(x.get("amount"), f"transfers[{i}].amount"),
                              int(x.get("code") or 0), x.get("memo")) for i, x in enumerate(items)]
    else:
        if not all((args.id, args.debit, args.credit, args.asset, args.amount)):
            raise ChainsettleError("give --id --debit --credit --asset --amount, or --file")
        transfers = [Transfer(args.id, args.debit, args.credit, args.asset, units_arg(args.amount), args.code,
                              args.memo)]
    async with open_pool(settings) as pool:
        out, created = await create_transfers(pool, settings, transfers, args.actor)
    print_json({"transfers": out, "created": created})
    return 0


async def _cmd_hold(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.ledger.holds import Hold, create_hold

    hold = Hold(args.id, args.debit, args.credit, args.asset, units_arg(args.amount), args.code, args.memo, args.timeout)
    async with open_pool(settings) as pool:
        out, created = await create_hold(pool, settings, hold, args.actor)
    print_json({"hold": out, "created": created})
    return 0


async def _cmd_resolve(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.ledger.holds import post_hold, void_hold

    async with open_pool(settings) as pool:
        if args.post:
            amount = None if args.amount is None else units_arg(args.amount)
            out, changed = await post_hold(pool, args.id, amount, args.actor)
        else:
            out, changed = await void_hold(pool, args.id, args.actor)
    print_json({"hold": out, "changed": changed})
    return 0


async def _cmd_entries(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.ledger.transfers import entries_page

    async with open_pool(settings) as pool, pool.acquire() as conn:
        page = await entries_page(conn, args.account, args.cursor, args.limit)
    if page is None:
        raise ChainsettleError(f"account: no ledger account {args.account!r}")
    print_json(page)
    return 0
