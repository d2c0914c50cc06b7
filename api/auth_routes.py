"""Wallet sign-in: `POST /v1/auth/challenge`, `/v1/auth/verify`, `/v1/auth/refresh`, `/v1/auth/logout`.

Registered only when `[invoices.signin]` is configured. A refusal is a 401
whose `reason` says why (expired, nonce_used, domain, chain_id, reused,
revoked, ...); the token keys never appear in an answer or a log. Sessions:
settlement/signin/sessions.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from indexer.errors import BadRpcResponse, RpcError
from settlement.signin.messages import SigninRefused
from settlement.signin.sessions import SessionRefused, refresh_session, revoke_session, token_keys  # noqa: F401 (app.py)
from settlement.signin.signin import issue_challenge, verify_signin

from .http import RequestError, error_body, json_response
from .routing import Error, Routes
from .scopes import principal
from .state import POOL, SETTINGS

routes = Routes("auth", auth=None)
_FIELD_REASONS = {"chain": "chain", "address": "address"}


class ChallengeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    address: StrictStr = Field(max_length=128)


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain: StrictStr = Field(max_length=64)
    message: StrictStr = Field(min_length=1, max_length=4000)
    signature: StrictStr = Field(min_length=1, max_length=2000, pattern=r"^(0x)?[0-9a-fA-F]+$")
    public_key: StrictStr | None = Field(None, max_length=130, pattern=r"^[0-9a-fA-F]{66}$")


class Challenge(BaseModel):
    chain: str
    kind: Literal["siwe", "xrpl"]
    address: str
    nonce: str
    message: str = Field(description="the text to sign")
    expires_at: dt.datetime


class Signin(BaseModel):
    address: str
    chain: str
    method: Literal["eoa", "eip1271", "xrpl"]
    token: str = Field(description="the access token: send as `Authorization: Bearer <token>` (the `wallet` scheme)")
    expires_at: dt.datetime
    refresh_token: str = Field(description="good once: `POST /v1/auth/refresh` returns a new pair; using it twice "
                                           "revokes the session")
    refresh_expires_at: dt.datetime
    session: str = Field(description="the session id (what logout revokes)")


class RefreshBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: StrictStr = Field(min_length=1, max_length=200)


class LogoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: StrictStr | None = Field(None, min_length=1, max_length=200,
                                            description="default: the session of the bearer access token")


class LoggedOut(BaseModel):
    revoked: bool = Field(description="false: the session was already revoked (or unknown)")


class SigninRefusal(Error):
    reason: str = Field(description="expired, nonce_used, domain, chain_id, ...")


@routes.post("/v1/auth/challenge", body=ChallengeBody, response=Challenge, status=201)
async def challenge(request: web.Request, body: ChallengeBody) -> web.Response:
    """A sign-in challenge: an EIP-4361 message (or the XRPL equivalent) with a single-use nonce"""
    try:
        out = await issue_challenge(request.app[POOL], request.app[SETTINGS], chain=body.chain, address=body.address)
    except SigninRefused as exc:
        raise RequestError(_FIELD_REASONS.get(exc.reason), exc.detail) from None
    return json_response(out, status=201)


@routes.post("/v1/auth/verify", body=VerifyBody, response=Signin, issues="wallet",
             responses={401: (SigninRefusal, "Refused; `reason` says why")},
             errors={503: "The chain could not be asked"})
async def verify(request: web.Request, body: VerifyBody) -> web.Response:
    """Verify a signed challenge (EOA, EIP-1271 contract wallet, XRPL key); a short-lived token"""
    try:
        out = await verify_signin(request.app[POOL], request.app[SETTINGS], chain=body.chain, message=body.message,
                                  signature=body.signature, public_key=body.public_key)
    except SigninRefused as exc:
        if exc.reason in _FIELD_REASONS:
            raise RequestError(_FIELD_REASONS[exc.reason], exc.detail) from None
        status = 400 if exc.reason == "malformed" else 401
        return json_response({**error_body(status, "signin_refused", exc.detail, "message"), "reason": exc.reason},
                             status=status)
    except (RpcError, BadRpcResponse):
        raise RequestError(None, "the chain could not be asked (EIP-1271 check)", status=503,
                           code="chain_unavailable") from None
    return json_response(out)


def _session_refused(exc: SessionRefused) -> web.Response:
    body = {**error_body(401, "session_refused", exc.detail, "refresh_token"), "reason": exc.reason}
    return json_response(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="chainsettle"'})


@routes.post("/v1/auth/refresh", body=RefreshBody, response=Signin, issues="wallet",
             responses={401: (SigninRefusal, "Refused; `reason`: unknown, expired, revoked, reused")})
async def refresh(request: web.Request, body: RefreshBody) -> web.Response:
    """Rotate a refresh token: a new access token and refresh token; the old refresh token is spent

    Presenting a spent refresh token again revokes the whole session (every
    refresh token of it and every access token naming it), in every process.
    """
    try:
        out = await refresh_session(request.app[POOL], request.app[SETTINGS], body.refresh_token)
    except SessionRefused as exc:
        return _session_refused(exc)
    return json_response(out)


@routes.post("/v1/auth/logout", body=LogoutBody, body_required=False, response=LoggedOut,
             errors={401: "Neither a refresh token nor a wallet access token"})
async def logout(request: web.Request, body: LogoutBody) -> web.Response:
    """End a session: its refresh tokens and access tokens stop working at once"""
    who = principal(request)
    if body.refresh_token is not None:
        revoked = await revoke_session(request.app[POOL], refresh_token=body.refresh_token)
    elif who.kind == "wallet" and who.session is not None:
        revoked = await revoke_session(request.app[POOL], session=who.session)
    else:
        raise RequestError("refresh_token", "give the refresh token, or send the wallet access token", status=401,
                           code="unauthorized", headers={"WWW-Authenticate": 'Bearer realm="chainsettle"'})
    return json_response({"revoked": revoked})
