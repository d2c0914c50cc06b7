"""`chainsettle invoices create|show|list|cancel`: registered through daemon.cli_ext."""

from __future__ import annotations

import json

from config import ChainsettleError, Settings
from db.values import text_default

from .cli_table import add_json_flag, emit

INVOICE_COLUMNS = ["id", "app_ref", "chain", "asset", "wallet", "amount", "received", "state", "reason", "expires_at"]


def register(sub) -> None:
    p = sub.add_parser("invoices", help="incoming-payment invoices: create, show, list, cancel")
    ps = p.add_subparsers(dest="invoices_command", required=True)

    c = ps.add_parser("create", help="create an invoice (the same --app-ref twice is one invoice)")
    c.add_argument("--chain", required=True)
    c.add_argument("--asset", required=True, help="'native', a contract name or a configured XRPL currency")
    c.add_argument("--amount", required=True, help="integer base units")
    c.add_argument("--wallet", required=True, help="the receiving wallet (a configured, watched one)")
    c.add_argument("--app-ref", required=True, help="the app's unique reference")
    c.add_argument("--account", required=True, help="ledger account credited when paid, e.g. user:<app id>")
    c.add_argument("--match", required=True, choices=["destination_tag", "memo", "payer", "amount"])
    c.add_argument("--tag", type=int, help="XRPL destination tag (with --match destination_tag)")
    c.add_argument("--memo", help="XRPL memo text (with --match memo)")
    c.add_argument("--payer", help="the expected payer address")
    c.add_argument("--expires-in", type=int, help="seconds (default from [invoices])")
    c.add_argument("--tolerance", default="0", help="integer base units")
    c.add_argument("--actor", default="cli")
    c.set_defaults(func=_cmd_create)

    s = ps.add_parser("show", help="one invoice by id or app reference, with its payments")
    s.add_argument("ref")
    s.set_defaults(func=_cmd_show)

    ls = ps.add_parser("list", help="invoices, newest first")
    ls.add_argument("--chain")
    ls.add_argument("--state")
    ls.add_argument("--limit", type=int, default=100)
    add_json_flag(ls)
    ls.set_defaults(func=_cmd_list)

    x = ps.add_parser("cancel", help="mark a waiting (new or expired) invoice invalid")
    x.add_argument("ref")
    x.add_argument("--reason", required=True)
    x.add_argument("--actor", default="cli")
    x.set_defaults(func=_cmd_cancel)


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ChainsettleError(f"{field}: must be an integer in base units") from None


async def _cmd_create(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.invoices.invoices import InvoiceRequest, create_invoice

    req = InvoiceRequest(chain=args.chain, asset=args.asset, amount=_int(args.amount, "amount"), wallet=args.wallet,
                         app_ref=args.app_ref, account=args.account, match_method=args.match,
                         expires_in=args.expires_in, tolerance=_int(args.tolerance, "tolerance"),
                         destination_tag=args.tag, memo=args.memo, payer=args.payer)
    async with open_pool(settings) as pool:
        inv, created = await create_invoice(pool, settings, req, actor=args.actor)
    print(json.dumps({"created": created, "invoice": inv}, default=text_default))
    return 0


async def _cmd_show(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.invoices.invoices import get_invoice

    async with open_pool(settings) as pool:
        inv = await get_invoice(pool, args.ref)
    if inv is None:
        raise ChainsettleError(f"ref: no invoice {args.ref!r}")
    print(json.dumps(inv, default=text_default))
    return 0


async def _cmd_list(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.invoices.invoices import list_invoices

    async with open_pool(settings) as pool:
        rows = await list_invoices(pool, args.chain, args.state, args.limit)
    emit(rows, args.json, {"": INVOICE_COLUMNS})
    return 0


async def _cmd_cancel(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.invoices.invoices import cancel_invoice

    async with open_pool(settings) as pool:
        inv = await cancel_invoice(pool, args.ref, args.reason, args.actor)
    if inv is None:
        raise ChainsettleError(f"ref: no waiting (new or expired) invoice {args.ref!r}")
    print(json.dumps(inv, default=text_default))
    return 0
