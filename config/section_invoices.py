"""[invoices] section: incoming-payment invoices and wallet sign-in.

```toml
[invoices]
default_expiry_seconds = 900
max_expiry_seconds = 604800
expired_grace_seconds = 86400   # an expired invoice takes late payments this long, then stops matching

[invoices.signin]
domain = "app.example.com"          # the EIP-4361 domain the app serves; messages for others are refused
uri = "https://app.example.com"     # the URI in the message
token_key = "env:CHAINSETTLE_SIGNIN_KEY"   # HMAC key of the session tokens: a secret reference
chains = ["flare", "xrpl"]           # chains a wallet may sign in with (default: every configured chain)
previous_token_keys = ["env:CHAINSETTLE_SIGNIN_KEY_OLD"]   # still verified during a key rotation, never signed with
token_ttl_seconds = 900             # the access token
refresh_ttl_seconds = 2592000       # the refresh token (rotated on every use)

[invoices.signin.withdrawals]       # what a signed-in wallet may withdraw (POST /v1/me/withdrawals); off when absent
cooldown_seconds = 60               # between two withdrawals of one account
allowed_addresses = []              # destinations besides the wallet's own address

[[invoices.signin.withdrawals.limits]]   # one per asset; an asset not listed cannot be withdrawn
chain = "flare"
asset = "native"
min = "1000000000000000"            # base units
per_request = "1000000000000000000000"
per_day = "5000000000000000000000"
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _base_units(v: object) -> object:
    if isinstance(v, str):
        if not re.fullmatch(r"[0-9]{1,78}", v):
            raise ValueError("must be an integer in base units (digits only)")
        return int(v)
    return v


class WithdrawalLimit(Strict):
    chain: str
    asset: str
    min: int = Field(1, ge=1)
    per_request: int = Field(ge=1)
    per_day: int = Field(ge=1)

    _units = field_validator("min", "per_request", "per_day", mode="before")(_base_units)


class WithdrawalSettings(Strict):
    cooldown_seconds: int = Field(60, ge=0, le=86400)
    allowed_addresses: list[str] = Field(default_factory=list)
    limits: list[WithdrawalLimit] = Field(default_factory=list)

    @field_validator("allowed_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for a in v:
            if not re.fullmatch(r"0x[0-9a-fA-F]{40}|r[1-9A-HJ-NP-Za-km-z]{24,34}", a):
                raise ValueError(f"{a!r} must be a 0x-prefixed 20-byte hex address or an XRPL classic address")
        return [a.lower() if a.startswith("0x") else a for a in v]

    def limit(self, chain: str, asset: str) -> WithdrawalLimit | None:
        return next((x for x in self.limits if (x.chain, x.asset) == (chain, asset)), None)


class SigninSettings(Strict):
    domain: str
    uri: str
    token_key: str
    # Keys still accepted when verifying (a rotation): sign with token_key, verify with any.
    previous_token_keys: list[str] = Field(default_factory=list, max_length=4)
    statement: str = "Sign in with your wallet."
    challenge_ttl_seconds: int = Field(300, ge=10, le=3600)
    token_ttl_seconds: int = Field(900, ge=30, le=86400)
    refresh_ttl_seconds: int = Field(30 * 86400, ge=60, le=366 * 86400)
    chains: list[str] | None = None
    withdrawals: WithdrawalSettings | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not _DOMAIN.match(v):
            raise ValueError("must be a host name with an optional :port (the EIP-4361 domain), e.g. app.example.com")
        return v

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not re.match(r"^[a-z][a-z0-9+.-]*:\S+$", v):
            raise ValueError("must be an RFC 3986 URI, e.g. https://app.example.com")
        return v

    @field_validator("token_key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not v.startswith(("env:", "file:")):
            raise ValueError("must be a secret reference: env:NAME or file:PATH (never the key itself)")
        return v

    @field_validator("previous_token_keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        for k in v:
            cls._key(k)
        return v

    @field_validator("statement")
    @classmethod
    def _statement(cls, v: str) -> str:
        if "\n" in v or "\r" in v:
            raise ValueError("must be one line (EIP-4361)")
        return v


class InvoiceSettings(Strict):
    default_expiry_seconds: int = Field(900, ge=1)
    max_expiry_seconds: int = Field(7 * 86400, ge=1)
    # An expired invoice still takes a late payment (`paid_late`) for this
    # long after its expiry; then it stops being matchable and a payment
    # naming it is recorded in invoice_unmatched for review.
    expired_grace_seconds: int = Field(86400, ge=0)
    signin: SigninSettings | None = None
