"""Subscriptions and their queues: what the admin API and `chainsettle deliveries` call.

Every write takes an actor, writes an audit row in its transaction, and
wakes the relays (NOTIFY). Secrets are generated here (`whsec_` + base64 of
24 random bytes, the format Standard Webhooks libraries read) and shown
once, at creation or rotation; afterwards only an id and a prefix.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets as pysecrets
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from config import ConfigError, SecretError, Settings, mask_url, resolve_secret
from config.logs import get_logger
from config.section_deliveries import SubscriptionSpec
from db import Queries, audit

from .messages import PositionError, format_position, parse_position, ping
from .ssrf import TargetRefused, check_url

log = get_logger("delivery.admin")
Q = Queries(Path(__file__).with_name("queries.sql"))
PULL_LIMIT = 1000


class DeliveryInputError(ValueError):
    """Bad input to a delivery operation; names the field."""

    def __init__(self, field: str | None, message: str, status: int = 400, code: str = "invalid") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status
        self.code = code


def new_secret() -> str:
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(24)).decode()


def valid_secret(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        return len(base64.b64decode(secret[6:], validate=True)) >= 16
    except ValueError:
        return False


def secret_prefix(secret: str) -> str:
    return secret[:10] + "…"


def subscription_view(row: Any) -> dict[str, Any]:
    """A subscription as shown: no secrets (they are in another table)."""
    d = dict(row)
    d["url"] = mask_url(d["url"])  # a redis:// password never leaves
    d["cursor"] = format_position((int(d.pop("cursor_tx")), d.pop("cursor_source"), d.pop("cursor_id")))
    return d


def _validate(sink: str, url: str, stream: str | None, settings: Settings) -> None:
    if sink == "webhook":
        try:
            check_url(url, settings.delivery)
        except TargetRefused as exc:
            raise DeliveryInputError("url", str(exc)) from None


async def sync_config(pool: asyncpg.Pool, settings: Settings) -> list[str]:
    """Upsert the [[deliveries]] of the file; returns their ids. A bad entry is logged and skipped."""
    done = []
    for i, sub in enumerate(settings.deliveries):
        field = f"deliveries[{i}]"
        try:
            _validate(sub.sink, sub.url, sub.stream, settings)
            secrets = [resolve_secret(ref, f"{field}.secrets[{j}]").reveal() for j, ref in enumerate(sub.secrets)]
            bad = [j for j, s in enumerate(secrets) if not valid_secret(s)]
            if bad:
                raise DeliveryInputError(f"secrets[{bad[0]}]", "must be whsec_ followed by base64 of at least 16 bytes")
        except (DeliveryInputError, SecretError, ConfigError) as exc:
            log.error("delivery.config_refused", subscription=sub.id, error=f"{field}: {exc}")
            continue
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q.upsert_config_subscription, sub.id, sub.sink, sub.url, sub.stream,
                                      sub.filter.model_dump(), sub.finality, sub.ordering, sub.start)
            if row is None:
                log.error("delivery.config_conflict", subscription=sub.id,
                          error=f"{field}.id: a subscription made over the API has this id")
                continue
            for s in secrets:
                await conn.execute(Q.insert_secret, sub.id, s, secret_prefix(s), "config")
            await conn.execute(Q.expire_config_secrets_except, sub.id, secrets)
            await conn.execute(Q.notify, "config")
        done.append(sub.id)
    return done


async def create(pool: asyncpg.Pool, settings: Settings, actor: str, body: SubscriptionSpec) -> dict[str, Any]:
    """A new subscription; a webhook gets a generated secret unless one is given. Returns it once."""
    _validate(body.sink, body.url, body.stream, settings)
    secret = None
    if body.sink == "webhook":
        secret = body.secrets[0] if body.secrets else new_secret()
        if not valid_secret(secret):
            raise DeliveryInputError("secrets", "must be whsec_ followed by base64 of at least 16 bytes")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.insert_subscription, body.id, body.sink, body.url, body.stream,
                                  body.filter.model_dump(), body.finality, body.ordering, body.start)
        if row is None:
            raise DeliveryInputError("id", "a subscription with this id exists", status=409, code="conflict")
        if secret is not None:
            await conn.execute(Q.insert_secret, body.id, secret, secret_prefix(secret), "api")
        await audit(conn, actor, "delivery.created", f"delivery:{body.id}",
                    {"sink": body.sink, "finality": body.finality, "ordering": body.ordering})
        await conn.execute(Q.notify, "created")
        out = await get(conn, body.id)
    if secret is not None:
        out["secret"] = secret  # shown once
    return out


async def get(conn: asyncpg.Connection | asyncpg.Pool, sub_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(Q.subscription, sub_id)
    if row is None:
        raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
    out = subscription_view(row)
    out["secrets"] = [dict(r) for r in await conn.fetch(Q.secrets_shown, sub_id)]
    return out


async def list_all(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [subscription_view(r) for r in await pool.fetch(Q.subscriptions)]


async def assets(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Symbol and decimals per asset, so amounts can be shown in units."""
    return [dict(r) for r in await pool.fetch(Q.assets_display)]


async def set_state(pool: asyncpg.Pool, actor: str, sub_id: str, state: str, reason: str | None) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.set_state, sub_id, state, reason)
        if row is None:
            raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
        action = {"active": "resumed", "paused": "paused"}.get(state, state)
        await audit(conn, actor, f"delivery.{action}", f"delivery:{sub_id}", {"reason": reason})
        await conn.execute(Q.notify, state)
        return await get(conn, sub_id)


async def delete(pool: asyncpg.Pool, actor: str, sub_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.delete_subscription, sub_id)
        if row is None:
            raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
        await audit(conn, actor, "delivery.deleted", f"delivery:{sub_id}", {"origin": row["origin"]})
        await conn.execute(Q.notify, "deleted")


async def rotate(pool: asyncpg.Pool, settings: Settings, actor: str, sub_id: str,
                 overlap: float | None = None) -> dict[str, Any]:
    """A new secret; the old ones keep signing for `overlap` seconds (delivery.rotation_overlap)."""
    overlap = settings.delivery.rotation_overlap if overlap is None else overlap
    if overlap < 0:
        raise DeliveryInputError("overlap_seconds", "must be >= 0")
    secret = new_secret()
    async with pool.acquire() as conn, conn.transaction():
        sub = await conn.fetchrow(Q.subscription, sub_id)
        if sub is None:
            raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
        if sub["sink"] != "webhook":
            raise DeliveryInputError("id", "only webhook subscriptions are signed", status=409, code="conflict")
        now = await conn.fetchval("SELECT now()")
        row = await conn.fetchrow(Q.insert_secret, sub_id, secret, secret_prefix(secret), "api")
        await conn.execute(Q.expire_secrets, sub_id, now + dt.timedelta(seconds=overlap), row["id"])
        await audit(conn, actor, "delivery.secret_rotated", f"delivery:{sub_id}",
                    {"secret_id": row["id"], "prefix": row["prefix"], "overlap_seconds": overlap})
        out = await get(conn, sub_id)
    out["secret"] = secret  # shown once
    return out


async def send_ping(pool: asyncpg.Pool, actor: str, sub_id: str) -> dict[str, Any]:
    msg_id = f"ping_{uuid.uuid4().hex}"
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchrow(Q.subscription, sub_id) is None:
            raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
        now = await conn.fetchval("SELECT now()")
        row = await conn.fetchrow(Q.insert_ping, sub_id, msg_id, ping(msg_id, now))
        await audit(conn, actor, "delivery.ping", f"delivery:{sub_id}", {"msg_id": msg_id})
        await conn.execute(Q.notify, "ping")
    return {"seq": row["seq"], "msg_id": row["msg_id"]}


async def redeliver(pool: asyncpg.Pool, actor: str, sub_id: str, *, msg_id: str | None = None,
                    from_seq: int | None = None, to_seq: int | None = None,
                    from_time: dt.datetime | None = None, to_time: dt.datetime | None = None,
                    from_block: int | None = None, to_block: int | None = None,
                    event_id: str | None = None) -> int:
    """Queue again one message or a range (by seq, commit time, block or event id); returns how many."""
    given = {k: v for k, v in dict(msg_id=msg_id, from_seq=from_seq, to_seq=to_seq, from_time=from_time,
                                   to_time=to_time, from_block=from_block, to_block=to_block,
                                   event_id=event_id).items() if v is not None}
    if not given:
        raise DeliveryInputError(None, "give msg_id, event_id, or a range (from_/to_ seq, time or block)")
    for lo, hi in (("from_seq", "to_seq"), ("from_time", "to_time"), ("from_block", "to_block")):
        if lo in given and hi in given and given[hi] < given[lo]:
            raise DeliveryInputError(hi, f"must not be before {lo}")
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchrow(Q.subscription, sub_id) is None:
            raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
        rows = await conn.fetch(Q.redeliver, sub_id, msg_id, from_seq, to_seq, from_time, to_time,
                                from_block, to_block, event_id)
        await audit(conn, actor, "delivery.redeliver", f"delivery:{sub_id}",
                    {**{k: str(v) for k, v in given.items()}, "messages": len(rows)})
        await conn.execute(Q.notify, "redeliver")
    return len(rows)


async def attempts(pool: asyncpg.Pool, sub_id: str, *, msg_id: str | None = None, before: int | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
    rows = await pool.fetch(Q.attempts_page, sub_id, before or 2**63 - 1, msg_id, limit)
    return [dict(r) for r in rows]


async def messages(pool: asyncpg.Pool, sub_id: str, *, after: int = 0, state: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
    if state is not None and state not in ("pending", "delivered", "dead"):
        raise DeliveryInputError("state", "one of pending, delivered, dead")
    return [dict(r) for r in await pool.fetch(Q.messages_page, sub_id, after, state, limit)]


async def pull(pool: asyncpg.Pool, sub_id: str, cursor: str, limit: int = 100) -> list[dict[str, Any]]:
    """The messages after `cursor` (a body's `cursor`, or an SSE id), bodies as sent."""
    try:
        tx, source, ident = parse_position(cursor)
    except PositionError as exc:
        raise DeliveryInputError("cursor", str(exc)) from None
    if not 1 <= limit <= PULL_LIMIT:
        raise DeliveryInputError("limit", f"must be 1-{PULL_LIMIT}")
    if await pool.fetchrow(Q.subscription, sub_id) is None:
        raise DeliveryInputError("id", "no such subscription", status=404, code="not_found")
    rows = await pool.fetch(Q.messages_after_position, sub_id, str(tx), source, ident, limit)
    return [orjson.loads(bytes(r["body"])) for r in rows]
