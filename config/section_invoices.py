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
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SigninSettings(Strict):
    domain: str
    uri: str
    token_key: str
    statement: str = "Sign in with your wallet."
    challenge_ttl_seconds: int = Field(300, ge=10, le=3600)
    token_ttl_seconds: int = Field(900, ge=30, le=86400)
    chains: list[str] | None = None

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
