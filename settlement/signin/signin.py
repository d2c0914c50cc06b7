"""Issue and verify wallet sign-in challenges.

`issue_challenge` stores a random nonce (Postgres row, short expiry) with
the exact message; `verify_signin` parses the signed message, refuses it
with a reason (`malformed`, `domain`, `uri`, `chain_id`, `expired`,
`not_yet_valid`, `unknown_nonce`, `nonce_used`, `message_mismatch`,
`bad_signature`), consumes the nonce (one UPDATE that a second attempt, in
any process, cannot win: a failed attempt spends it too), then checks the
signature (EIP-191 recovery for EOAs, EIP-1271 `isValidSignature` by
`eth_call` at the chain's final block for contract wallets, the answer
exactly the magic value; for XRPL accounts a signature by the master key,
unless disabled, or the RegularKey, read from the validated ledger with
`account_info`). The answer starts a session (sessions.py): a short-lived
access token (a JWT, HS256) naming the verified address and the session,
and a refresh token.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from pathlib import Path

import asyncpg

from config import ChainConfig, Settings
from config.section_invoices import SigninSettings
from db import Queries
from db.audit import audit

from .messages import (
    SigninRefused,
    build_message,
    check_times,
    eip191_hash,
    parse_message,
    recover_eoa,
    xrpl_key_address,
    xrpl_signature_ok,
)
from .sessions import start_session

Q = Queries(Path(__file__).with_name("signin.sql"))
EIP1271_MAGIC = "0x1626ba7e"
EIP1271_MAGIC_WORD = EIP1271_MAGIC + "00" * 28
LSF_DISABLE_MASTER = 0x00100000
_ALPHABET = string.ascii_letters + string.digits


class SigninConfigError(SigninRefused):
    pass


def signin_settings(settings: Settings) -> SigninSettings:
    cfg = settings.invoices.signin
    if cfg is None:
        raise SigninRefused("not_configured", "wallet sign-in is not configured ([invoices.signin])")
    return cfg


def _chain(settings: Settings, name: str) -> ChainConfig:
    cfg = signin_settings(settings)
    allowed = cfg.chains if cfg.chains is not None else [c.name for c in settings.chains]
    if name not in allowed or name not in [c.name for c in settings.chains]:
        raise SigninRefused("chain", f"sign-in is not offered on this chain (offered: {', '.join(allowed) or 'none'})")
    return settings.chain(name)


def _nonce() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(24))


async def issue_challenge(pool: asyncpg.Pool, settings: Settings, *, chain: str, address: str) -> dict:
    cfg = signin_settings(settings)
    c = _chain(settings, chain)
    if c.kind == "evm":
        from eth_utils import is_address, to_checksum_address

        if not is_address(address):
            raise SigninRefused("address", "must be a 0x-prefixed 20-byte hex address")
        address, kind = to_checksum_address(address), "siwe"
    else:
        from xrpl.core.addresscodec import is_valid_classic_address

        if not is_valid_classic_address(address):
            raise SigninRefused("address", "must be a classic XRPL address (r...)")
        kind = "xrpl"
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = now + dt.timedelta(seconds=cfg.challenge_ttl_seconds)
    nonce = _nonce()
    message = build_message(kind=kind, domain=cfg.domain, address=address, statement=cfg.statement, uri=cfg.uri,
                            chain_id=c.effective_chain_id, nonce=nonce, issued_at=now, expiration_time=expires)
    async with pool.acquire() as conn:
        # Challenges anyone may ask for must not pile up: a day after expiry they go.
        await conn.execute(Q.purge_nonces)
        await conn.execute(Q.insert_nonce, nonce, kind, chain, address, message, now, expires)
    return {"chain": chain, "kind": kind, "address": address, "nonce": nonce, "message": message,
            "expires_at": expires.isoformat()}


async def _eip1271_ok(c: ChainConfig, address: str, message: str, signature: str) -> bool:
    from eth_abi import encode

    from indexer.evm.rpc import EvmRpc

    try:
        sig = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        return False
    data = "0x1626ba7e" + encode(["bytes32", "bytes"], [eip191_hash(message), sig]).hex()
    rpc = EvmRpc(c.rpc, chain=c.name, timeout=c.request_timeout, max_attempts=min(c.max_attempts, 3))
    try:
        # The wallet as of the chain's final block: code or owners set in a
        # block that may still be reorged out do not sign anyone in.
        if c.uses_finalized_tag:
            block = "finalized"
        else:
            head = int(await rpc.call("eth_blockNumber", []), 16)
            final = head - c.effective_finality_depth + 1
            if final < 0:
                return False
            block = hex(final)
        code = await rpc.call("eth_getCode", [address, block])
        if code in (None, "0x", "0x0"):
            return False
        try:
            out = await rpc.call("eth_call", [{"to": address, "data": data}, block])
        except Exception:  # a revert is a refusal, whatever the node calls it
            return False
    finally:
        await rpc.close()
    # Exactly the ABI encoding of bytes4 0x1626ba7e: a contract that echoes
    # its calldata (which starts with the selector) does not sign anyone in.
    return isinstance(out, str) and out.lower() == EIP1271_MAGIC_WORD


async def _xrpl_key_ok(c: ChainConfig, address: str, public_key: str) -> bool:
    """Is `public_key` a key that signs for `address` in the validated ledger?

    Its master key (the address derives from it) unless the account set
    lsfDisableMaster, or its RegularKey. An account never funded has only
    its master key.
    """
    from indexer.xrpl.client import XrplClient, XrplRpcError

    derived = xrpl_key_address(public_key)
    if derived is None:
        return False
    client = XrplClient(c.rpc, chain=c.name, timeout=c.request_timeout, max_attempts=min(c.max_attempts, 3))
    try:
        info = await client.request("account_info", {"account": address, "ledger_index": "validated"})
    except XrplRpcError as exc:
        if exc.token == "actNotFound":
            return derived == address
        raise
    finally:
        await client.close()
    data = info.get("account_data") or {}
    if derived == address:
        return not int(data.get("Flags", 0)) & LSF_DISABLE_MASTER
    return data.get("RegularKey") == derived


async def verify_signin(pool: asyncpg.Pool, settings: Settings, *, chain: str, message: str, signature: str,
                        public_key: str | None = None) -> dict:
    cfg = signin_settings(settings)
    c = _chain(settings, chain)
    msg = parse_message(message)
    if msg.domain != cfg.domain:
        raise SigninRefused("domain", f"the message is for {msg.domain!r}, this service is {cfg.domain!r}")
    if msg.uri != cfg.uri:
        raise SigninRefused("uri", "the message's URI is not this service's")
    if msg.chain_id != c.effective_chain_id:
        raise SigninRefused("chain_id", f"the message is for chain id {msg.chain_id}, {chain} is "
                                        f"{c.effective_chain_id}")
    if (msg.kind == "siwe") != (c.kind == "evm"):
        raise SigninRefused("chain", f"a {msg.kind} message cannot sign in on {chain}")
    now = dt.datetime.now(dt.UTC)
    check_times(msg, now)
    async with pool.acquire() as conn:
        stored = await conn.fetchrow(Q.nonce, msg.nonce)
    if stored is None or stored["chain"] != chain:
        raise SigninRefused("unknown_nonce", "this service did not issue the nonce")
    if stored["used_at"] is not None:
        raise SigninRefused("nonce_used", "the nonce was already used")
    if stored["expires_at"] <= now:
        raise SigninRefused("expired", "the challenge has expired")
    if stored["message"] != message.replace("\r\n", "\n"):
        raise SigninRefused("message_mismatch", "the signed message is not the one issued")
    # The nonce is spent by this attempt, good or bad: one challenge buys one
    # verification (each may cost RPC calls), never an unlimited series.
    async with pool.acquire() as conn:
        if await conn.fetchval(Q.consume_nonce, msg.nonce) is None:
            raise SigninRefused("nonce_used", "the nonce was already used")
    method = None
    if msg.kind == "siwe":
        if recover_eoa(message, signature) == msg.address.lower():
            method = "eoa"
        elif await _eip1271_ok(c, msg.address, message, signature):
            method = "eip1271"
    elif public_key and xrpl_signature_ok(message, signature, public_key) and await _xrpl_key_ok(
            c, msg.address, public_key):
        method = "xrpl"
    if method is None:
        raise SigninRefused("bad_signature", "the signature is not the account's")
    address = msg.address.lower() if msg.kind == "siwe" else msg.address
    async with pool.acquire() as conn, conn.transaction():
        await audit(conn, "signin", "signin.verified", msg.address, {"chain": chain, "method": method})
        return await start_session(conn, settings, address=address, chain=chain, method=method)
