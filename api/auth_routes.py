"""Wallet sign-in: `POST /v1/auth/challenge` and `POST /v1/auth/verify`.

Registered only when `[invoices.signin]` is configured. A refusal is a 401
whose `reason` says why (expired, nonce_used, domain, chain_id, ...); the
token key never appears in an answer or a log.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from indexer.errors import BadRpcResponse, RpcError
from settlement.signin.messages import SigninRefused
from settlement.signin.signin import issue_challenge, token_key, verify_signin  # noqa: F401

from .http import RequestError, error_body, json_response
from .routing import Error, Routes
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
    token: str = Field(description="send as `Authorization: Bearer <token>` (the `wallet` scheme)")
    expires_at: dt.datetime


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
