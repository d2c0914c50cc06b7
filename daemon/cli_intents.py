"""`chainsettle intents ...`: create, list, show, edit, pause, resume, cancel,
preview, occurrences, approve. Registered through daemon.cli_ext.

A spec is JSON, inline or `@file.json`; refusals name the field
(`error: cron: ...`, exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

from config import ChainsettleError, Settings
from db.values import text_default

from .cli_table import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("intents", help="scheduled, conditional payouts (payment intents)")
    ps = p.add_subparsers(dest="intents_command", required=True)

    c = ps.add_parser("create", help="create an intent from a JSON spec")
    c.add_argument("spec", help="JSON object, or @path/to/spec.json")
    c.add_argument("--actor", default="cli")
    c.set_defaults(func=_cmd_create)

    ls = ps.add_parser("list", help="intents and their state")
    ls.add_argument("--state", choices=["active", "paused", "cancelled"])
    add_json_flag(ls)
    ls.set_defaults(func=_cmd_list)

    sh = ps.add_parser("show", help="one intent with every version")
    sh.add_argument("id", type=int)
    sh.set_defaults(func=_cmd_show)

    e = ps.add_parser("edit", help="a new version (applies to occurrences not yet made)")
    e.add_argument("id", type=int)
    e.add_argument("changes", help="JSON object of fields to change, or @file.json")
    e.add_argument("--reason")
    e.add_argument("--actor", default="cli")
    e.set_defaults(func=_cmd_edit)

    for action in ("pause", "resume", "cancel"):
        a = ps.add_parser(action, help=f"{action} an intent")
        a.add_argument("id", type=int)
        a.add_argument("--reason")
        a.add_argument("--actor", default="cli")
        a.set_defaults(func=_cmd_state, action=action)

    pv = ps.add_parser("preview", help="the coming occurrences and what each evaluation would say now")
    pv.add_argument("id", type=int)
    pv.add_argument("--next", type=int, default=12, dest="count")
    pv.set_defaults(func=_cmd_preview)

    o = ps.add_parser("occurrences", help="occurrences with state, reasons and evaluations")
    o.add_argument("id", type=int)
    o.add_argument("--state")
    o.add_argument("--limit", type=int, default=100)
    add_json_flag(o)
    o.set_defaults(func=_cmd_occurrences)

    ap = ps.add_parser("approve", help="approve a catch-up occurrence above the intent's approval amount")
    ap.add_argument("occurrence")
    ap.add_argument("--by", required=True, help="who approves (recorded)")
    ap.set_defaults(func=_cmd_approve)


def _json_arg(text: str, field: str) -> dict:
    try:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
        data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ChainsettleError(f"{field}: not a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise ChainsettleError(f"{field}: must be a JSON object")
    return data


def _print(out) -> int:
    print(json.dumps(out, default=text_default, indent=2))
    return 0


async def _cmd_create(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import create_intent

    data = _json_arg(args.spec, "spec")
    async with open_pool(settings) as pool:
        return _print({"intent": await create_intent(pool, settings, data, args.actor)})


async def _cmd_list(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import list_intents

    async with open_pool(settings) as pool, pool.acquire() as conn:
        emit({"intents": await list_intents(conn, args.state)}, args.json, {"intents": None})
    return 0


async def _cmd_show(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import get_intent

    async with open_pool(settings) as pool, pool.acquire() as conn:
        return _print({"intent": await get_intent(conn, args.id)})


async def _cmd_edit(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import edit_intent

    changes = _json_arg(args.changes, "changes")
    async with open_pool(settings) as pool:
        return _print({"intent": await edit_intent(pool, settings, args.id, changes, args.actor, args.reason)})


async def _cmd_state(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import set_intent_state

    async with open_pool(settings) as pool:
        return _print({"intent": await set_intent_state(pool, args.id, args.action, args.actor, args.reason)})


async def _cmd_preview(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.fees import RpcFees
    from settlement.intents.store import preview

    fees = RpcFees(settings)
    try:
        async with open_pool(settings) as pool:
            rows = await preview(pool, settings, args.id, args.count, fees=fees)
    finally:
        await fees.close()
    for r in rows:
        verdict = "would pass" if r["would_pass"] else f"would wait: {r['reason']}"
        units = f" ({r['units']})" if r.get("units") else ""
        at = r["scheduled_at"]
        at = at.isoformat() if hasattr(at, "isoformat") else at
        print(f"{r['local']}  ({at})  amount {r['amount']}{units}  {verdict}")
    return 0


async def _cmd_occurrences(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import occurrences

    async with open_pool(settings) as pool, pool.acquire() as conn:
        emit({"occurrences": await occurrences(conn, args.id, args.state, args.limit)}, args.json,
             {"occurrences": None})
    return 0


async def _cmd_approve(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.intents.store import approve_occurrence

    async with open_pool(settings) as pool:
        return _print({"occurrence": await approve_occurrence(pool, args.occurrence, args.by)})
