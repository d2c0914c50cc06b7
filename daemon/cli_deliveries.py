"""`chainsettle deliveries ...`: subscriptions, their queues and attempts (registered through daemon.cli_ext).

The same functions as the admin API (delivery.admin), so both audit alike.
Output is JSON (the list commands: a table, JSON with --json); secrets appear only when created or rotated.
"""

from __future__ import annotations

import datetime as dt
import json

from config import ChainsettleError, Settings
from db.values import text_default

from .cli_table import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("deliveries", help="webhook and Redis stream subscriptions: list, pause, replay, inspect")
    ds = p.add_subparsers(dest="deliveries_command", required=True)

    ls = ds.add_parser("list", help="subscriptions with state, backlog and dead letters")
    add_json_flag(ls)
    ls.set_defaults(func=_cmd_list)

    c = ds.add_parser("create", help="a subscription (a webhook secret is generated and printed once)")
    c.add_argument("id")
    c.add_argument("--sink", choices=("webhook", "redis"), required=True)
    c.add_argument("--url", required=True)
    c.add_argument("--stream", help="redis: the stream key")
    c.add_argument("--finality", choices=("instant", "final"), default="instant")
    c.add_argument("--ordering", choices=("per_key", "strict"), default="per_key")
    c.add_argument("--filter", default="{}", help='JSON, e.g. {"chains": ["bsc"], "types": ["payout"]}')
    c.add_argument("--start", choices=("now", "earliest"), default="now")
    c.add_argument("--actor", default="cli")
    c.set_defaults(func=_cmd_create)

    for name, state, text in (("pause", "paused", "stop sending (the queue keeps filling)"),
                              ("resume", "active", "send again (also re-enables a disabled one)")):
        s = ds.add_parser(name, help=text)
        s.add_argument("id")
        s.add_argument("--reason")
        s.add_argument("--actor", default="cli")
        s.set_defaults(func=_cmd_state, state=state)

    d = ds.add_parser("delete", help="a subscription with its queue and attempts")
    d.add_argument("id")
    d.add_argument("--actor", default="cli")
    d.set_defaults(func=_cmd_delete)

    r = ds.add_parser("rotate-secret", help="a new secret; old ones sign on for --overlap seconds")
    r.add_argument("id")
    r.add_argument("--overlap", type=float)
    r.add_argument("--actor", default="cli")
    r.set_defaults(func=_cmd_rotate)

    g = ds.add_parser("ping", help="send a test message through the normal path")
    g.add_argument("id")
    g.add_argument("--actor", default="cli")
    g.set_defaults(func=_cmd_ping)

    rd = ds.add_parser("redeliver", help="queue again one message or a range")
    rd.add_argument("id")
    rd.add_argument("--msg-id")
    rd.add_argument("--event-id")
    rd.add_argument("--from-seq", type=int)
    rd.add_argument("--to-seq", type=int)
    rd.add_argument("--from-block", type=int)
    rd.add_argument("--to-block", type=int)
    rd.add_argument("--from-time", help="ISO 8601")
    rd.add_argument("--to-time", help="ISO 8601")
    rd.add_argument("--actor", default="cli")
    rd.set_defaults(func=_cmd_redeliver)

    a = ds.add_parser("attempts", help="delivery attempts, newest first")
    a.add_argument("id")
    a.add_argument("--msg-id")
    a.add_argument("--limit", type=int, default=50)
    add_json_flag(a)
    a.set_defaults(func=_cmd_attempts)

    m = ds.add_parser("messages", help="queued, delivered and dead messages in order")
    m.add_argument("id")
    m.add_argument("--state", choices=("pending", "delivered", "dead"))
    m.add_argument("--after", type=int, default=0)
    m.add_argument("--limit", type=int, default=100)
    add_json_flag(m)
    m.set_defaults(func=_cmd_messages)


def _print(data) -> None:
    print(json.dumps(data, default=text_default))


def _time(field: str, raw: str | None) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ChainsettleError(f"{field}: must be an ISO 8601 time, e.g. 2026-12-01T10:00:00+00:00") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


async def _run(settings: Settings, fn):
    from daemon.runtime import open_pool
    from delivery.admin import DeliveryInputError

    async with open_pool(settings) as pool:
        try:
            return await fn(pool)
        except DeliveryInputError as exc:
            raise ChainsettleError(str(exc)) from None


async def _cmd_list(settings: Settings, args) -> int:
    from delivery import admin

    emit({"subscriptions": await _run(settings, admin.list_all)}, args.json, {"subscriptions": [
        "id", "sink", "url", "state", "state_reason", "pending", "dead", "lag_seconds", "last_outcome", "last_error"]})
    return 0


async def _cmd_create(settings: Settings, args) -> int:
    from pydantic import ValidationError

    from config.section_deliveries import SubscriptionSpec
    from delivery import admin

    try:
        spec = SubscriptionSpec(id=args.id, sink=args.sink, url=args.url, stream=args.stream,
                                finality=args.finality, ordering=args.ordering, start=args.start,
                                filter=json.loads(args.filter))
    except json.JSONDecodeError:
        raise ChainsettleError("filter: must be a JSON object") from None
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(x) for x in err["loc"]) or "subscription"
        raise ChainsettleError(f"{field}: {err['msg'].removeprefix('Value error, ')}") from None
    _print({"subscription": await _run(settings, lambda pool: admin.create(pool, settings, args.actor, spec))})
    return 0


async def _cmd_state(settings: Settings, args) -> int:
    from delivery import admin

    out = await _run(settings, lambda pool: admin.set_state(pool, args.actor, args.id, args.state, args.reason))
    _print({"subscription": out})
    return 0


async def _cmd_delete(settings: Settings, args) -> int:
    from delivery import admin

    await _run(settings, lambda pool: admin.delete(pool, args.actor, args.id))
    _print({"deleted": args.id})
    return 0


async def _cmd_rotate(settings: Settings, args) -> int:
    from delivery import admin

    _print({"subscription": await _run(settings, lambda pool: admin.rotate(pool, settings, args.actor, args.id,
                                                                           args.overlap))})
    return 0


async def _cmd_ping(settings: Settings, args) -> int:
    from delivery import admin

    _print({"ping": await _run(settings, lambda pool: admin.send_ping(pool, args.actor, args.id))})
    return 0


async def _cmd_redeliver(settings: Settings, args) -> int:
    from delivery import admin

    kw = dict(msg_id=args.msg_id, event_id=args.event_id, from_seq=args.from_seq, to_seq=args.to_seq,
              from_block=args.from_block, to_block=args.to_block,
              from_time=_time("from-time", args.from_time), to_time=_time("to-time", args.to_time))
    _print({"redelivered": await _run(settings, lambda pool: admin.redeliver(pool, args.actor, args.id, **kw))})
    return 0


async def _cmd_attempts(settings: Settings, args) -> int:
    from delivery import admin

    emit({"attempts": await _run(settings, lambda pool: admin.attempts(pool, args.id, msg_id=args.msg_id,
                                                                       limit=args.limit))}, args.json, {"attempts": None})
    return 0


async def _cmd_messages(settings: Settings, args) -> int:
    from delivery import admin

    emit({"messages": await _run(settings, lambda pool: admin.messages(pool, args.id, after=args.after,
                                                                       state=args.state, limit=args.limit))},
         args.json, {"messages": None})
    return 0
