"""Signing in a test wallet over the real API (EIP-4361 by an EOA) and the settings that allow it."""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct

from config.section_invoices import SigninSettings

SIGNIN_KEY = "wallet-signin-key-for-tests-0123456789"
OLD_KEY = "wallet-previous-key-for-tests-0123456789"


def with_signin(settings, monkeypatch, *, previous: bool = False, **extra):
    """`settings` plus wallet sign-in (shop.example), keys from the environment."""
    monkeypatch.setenv("CS_WALLET_SIGNIN_KEY", SIGNIN_KEY)
    monkeypatch.setenv("CS_WALLET_OLD_KEY", OLD_KEY)
    signin = SigninSettings.model_validate({
        "domain": "shop.example", "uri": "https://shop.example", "token_key": "env:CS_WALLET_SIGNIN_KEY",
        **({"previous_token_keys": ["env:CS_WALLET_OLD_KEY"]} if previous else {}), **extra})
    return settings.model_copy(update={"invoices": settings.invoices.model_copy(update={"signin": signin})})


def personal_sign(account, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")


async def sign_in(client, account, chain: str = "anvil") -> dict:
    """Challenge, sign, verify: the verify answer (token, refresh_token, session, ...)."""
    r = await client.post("/v1/auth/challenge", json={"chain": chain, "address": account.address})
    assert r.status == 201, await r.text()
    message = (await r.json())["message"]
    r = await client.post("/v1/auth/verify", json={"chain": chain, "message": message,
                                                   "signature": personal_sign(account, message)})
    assert r.status == 200, await r.text()
    return await r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_account():
    return Account.create()
