"""Wallet sessions: a short-lived access token plus a refresh token, rotated on every use.

A sign-in starts a session (a row in `signin_sessions`: the family). Its
refresh tokens are random, stored only as their SHA-256, and good once:
`refresh` marks the presented token used and stores its successor in one
transaction under the token row's lock, so two processes (or two API
replicas) presenting the same token serialize, and the second finds it
used. A used token presented again is a theft signal (RFC 6819 5.2.2.3,
OAuth 2.0 Security BCP 4.14): the whole family is revoked, and with it
every access token naming the session (`sid`), which the wallet routes
check against Postgres. `logout` revokes the family the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from pathlib import Path

import asyncpg

from config import Secret, Settings, resolve_secret
from db import Queries
from db.audit import audit

from .messages import SigninRefused
from .tokens import sign_token

Q = Queries(Path(__file__).with_name("sessions.sql"))
REFRESH_PREFIX = "csr_"


class SessionRefused(SigninRefused):
    """refresh or logout refused: `reason` is unknown, expired, revoked or reused"""


def token_keys(settings: Settings) -> list[Secret]:
    """The signing key first, then the keys a rotation still accepts."""
    cfg = settings.invoices.signin
    if cfg is None:
        raise SigninRefused("not_configured", "wallet sign-in is not configured ([invoices.signin])")
    keys = [resolve_secret(cfg.token_key, "invoices.signin.token_key")]
    keys += [resolve_secret(k, f"invoices.signin.previous_token_keys[{i}]")
             for i, k in enumerate(cfg.previous_token_keys)]
    return keys


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _new_refresh() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat()


def _access(settings: Settings, keys: list[Secret], *, address: str, chain: str, method: str, sid: str,
            now: dt.datetime) -> tuple[str, dt.datetime]:
    cfg = settings.invoices.signin
    assert cfg is not None
    issued = int(now.timestamp())
    exp = issued + cfg.token_ttl_seconds
    token = sign_token(keys, {"iss": cfg.domain, "sub": address, "chain": chain, "method": method, "sid": sid,
                              "typ": "access", "iat": issued, "exp": exp, "jti": uuid.uuid4().hex})
    return token, dt.datetime.fromtimestamp(exp, dt.UTC)


def _answer(settings: Settings, keys: list[Secret], row, refresh: str, refresh_expires: dt.datetime,
            now: dt.datetime) -> dict:
    sid = str(row["id"])
    token, exp = _access(settings, keys, address=row["address"], chain=row["chain"], method=row["method"], sid=sid,
                         now=now)
    return {"address": row["address"], "chain": row["chain"], "method": row["method"], "token": token,
            "expires_at": _iso(exp), "refresh_token": refresh, "refresh_expires_at": _iso(refresh_expires),
            "session": sid}


async def start_session(conn: asyncpg.Connection, settings: Settings, *, address: str, chain: str,
                        method: str) -> dict:
    """A new session (in the caller's transaction): access token, refresh token."""
    cfg = settings.invoices.signin
    assert cfg is not None
    keys = token_keys(settings)
    now = dt.datetime.now(dt.UTC)
    refresh_expires = now + dt.timedelta(seconds=cfg.refresh_ttl_seconds)
    await conn.execute(Q.purge_sessions)
    row = await conn.fetchrow(Q.insert_session, uuid.uuid4(), address, chain, method, refresh_expires)
    refresh = _new_refresh()
    await conn.execute(Q.insert_refresh, _digest(refresh), row["id"], refresh_expires)
    return _answer(settings, keys, row, refresh, refresh_expires, now)


async def refresh_session(pool: asyncpg.Pool, settings: Settings, token: str) -> dict:
    """Rotate a refresh token: a new access token and a new refresh token; the old one is spent.

    A spent token presented again revokes the session (every token of it) and is refused."""
    cfg = settings.invoices.signin
    assert cfg is not None
    keys = token_keys(settings)
    refused: SessionRefused | None = None
    async with pool.acquire() as conn, conn.transaction():
        now = await conn.fetchval("SELECT now()")
        row = await conn.fetchrow(Q.lock_refresh, _digest(token))
        if row is None:
            raise SessionRefused("unknown", "not a refresh token this service issued")
        if row["revoked_at"] is not None:
            raise SessionRefused("revoked", "the session was revoked; sign in again")
        if row["used_at"] is not None:
            # Reuse: whoever holds the family's tokens, it is no longer one party. End it all.
            await conn.execute(Q.revoke_session, row["session_id"], "reuse")
            await audit(conn, "signin", "signin.refresh_reused", row["address"],
                        {"chain": row["chain"], "session": str(row["session_id"])})
            refused = SessionRefused("reused", "this refresh token was already used; the session is revoked")
        elif row["expires_at"] <= now or row["session_expires_at"] <= now:
            raise SessionRefused("expired", "the refresh token has expired; sign in again")
        else:
            await conn.execute(Q.use_refresh, _digest(token))
            successor = _new_refresh()
            expires = min(now + dt.timedelta(seconds=cfg.refresh_ttl_seconds), row["session_expires_at"])
            await conn.execute(Q.insert_refresh, _digest(successor), row["session_id"], expires)
    if refused is not None:
        raise refused
    session = {"id": row["session_id"], "address": row["address"], "chain": row["chain"], "method": row["method"]}
    return _answer(settings, keys, session, successor, expires, now)


async def revoke_session(pool: asyncpg.Pool, *, session: str | None = None, refresh_token: str | None = None,
                         reason: str = "logout") -> bool:
    """Revoke a session by id or by one of its refresh tokens; False when there was none to revoke."""
    async with pool.acquire() as conn, conn.transaction():
        sid = None
        if refresh_token is not None:
            sid = await conn.fetchval(Q.session_of_refresh, _digest(refresh_token))
        elif session is not None:
            try:
                sid = uuid.UUID(session)
            except ValueError:
                return False
        if sid is None:
            return False
        row = await conn.fetchrow(Q.revoke_session, sid, reason)
        if row is not None:
            await audit(conn, "signin", f"signin.{reason}", row["address"], {"chain": row["chain"], "session": str(sid)})
        return row is not None


async def revoke_sessions_of(conn: asyncpg.Connection, chain: str, address: str, reason: str) -> int:
    """Revoke every open session of a wallet (in the caller's transaction)."""
    return len(await conn.fetch(Q.revoke_wallet_sessions, chain, address, reason))


async def session_live(conn: asyncpg.Connection, sid: str) -> bool:
    """Is the session an access token names still open (not revoked, not expired)?"""
    try:
        key = uuid.UUID(sid)
    except ValueError:
        return False
    return bool(await conn.fetchval(Q.session_live, key))
