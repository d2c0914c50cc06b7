"""`chainsettle demo` and its helpers `demo pay` and `demo sign-in`: registered through daemon.cli_ext."""

from __future__ import annotations

import json
import os


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the self-contained demo (embedded Postgres, local anvil chain); "
                                    "`demo pay` and `demo sign-in` help try it")
    p.add_argument("--api-port", type=int, default=8080)
    p.set_defaults(func=_cmd_demo, needs_config=False)
    ds = p.add_subparsers(dest="demo_command", required=False)
    pay = ds.add_parser("pay", help="pay a demo invoice (local EVM chain) from an unlocked anvil dev account")
    pay.add_argument("ref", help="the invoice's id or app_ref")
    pay.add_argument("--from", dest="payer", help="an anvil dev account (default: the invoice's payer, "
                                                  "else the demo payer, dev account 4)")
    pay.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                     help="wait up to this long until the invoice is settled (its payment final)")
    pay.set_defaults(func=_cmd_pay)
    si = ds.add_parser("sign-in", help="sign in as the demo payer (EIP-4361) and print the session token")
    si.add_argument("--chain", default="local")
    si.add_argument("--url", default=os.environ.get("CS_URL"), help="the demo's API (default: $CS_URL)")
    si.set_defaults(func=_cmd_sign_in)


async def _cmd_demo(settings, args) -> int:
    from .demo import run_demo

    return await run_demo(args.api_port)


async def _cmd_pay(settings, args) -> int:
    from .demo_tools import pay_invoice

    print(json.dumps(await pay_invoice(settings, args.ref, args.payer, args.wait)))
    return 0


async def _cmd_sign_in(settings, args) -> int:
    from config import ChainsettleError

    from .demo_tools import sign_in

    if not args.url:
        raise ChainsettleError("url: give --url or source the demo's demo.env (CS_URL)")
    print(json.dumps(await sign_in(settings, args.url.rstrip("/"), args.chain)))
    return 0
