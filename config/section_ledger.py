"""[ledger] and [reconcile] sections.

The event-to-ledger mapping is configuration: each `[[ledger.rules]]` entry
says which events it matches, which argument names the configured wallet,
and which accounts to debit and credit. With `default_rules = true` (the
default) the usual deposit, internal-transfer and gas-fee rules are
generated for every configured wallet; see settlement/ledger/rules.py.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
ACCOUNT_KINDS = ("wallet", "user", "fee", "external", "equity", "adjustment", "app")
# A base-unit amount: non-negative integer, up to uint256.
_MAX_UNITS = 10**78 - 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_path(value: str) -> str:
    if not _PATH.match(value):
        raise ValueError(f"{value!r} is not a dotted path like 'to' or 'args.meta.tag'")
    return value


def check_account_template(value: str) -> str:
    """`{wallet}`, `{counterparty_wallet}`, `{funder}`, or '<kind>:...' with {path} placeholders."""
    for ph in _PLACEHOLDER.findall(value):
        check_path(ph)
    if value in ("{wallet}", "{counterparty_wallet}", "{funder}"):
        return value
    kind = value.split(":", 1)[0]
    if kind not in ACCOUNT_KINDS or ":" not in value:
        raise ValueError(
            f"account template {value!r} must be {{wallet}}, {{counterparty_wallet}}, {{funder}} or start with one of "
            f"{', '.join(k + ':' for k in ACCOUNT_KINDS)}"
        )
    if "{" in kind:
        raise ValueError(f"account template {value!r}: the kind prefix cannot be a placeholder")
    return value


class LedgerAssetConfig(Strict):
    """An asset the ledger should know beyond the defaults (or to set decimals/symbol)."""

    chain: str
    name: str  # "native", a contract name of the chain, or an XRPL issued-currency name
    currency: str | None = None  # XRPL issued currency: code (3 chars or 40 hex)
    issuer: str | None = None  # XRPL issued currency: issuer account
    decimals: int | None = Field(None, ge=0, le=77)
    symbol: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be letters, digits, '_', '.' or '-' (max 63)")
        return v

    @model_validator(mode="after")
    def _iou(self) -> "LedgerAssetConfig":
        if (self.currency is None) != (self.issuer is None):
            raise ValueError("currency and issuer go together (an XRPL issued currency)")
        if self.currency is not None:
            if not re.fullmatch(r"[A-Za-z0-9?!@#$%^&*<>(){}\[\]|]{3}|[0-9A-Fa-f]{40}", self.currency):
                raise ValueError("currency must be a 3-character code or 40 hex digits")
            if self.decimals is None:
                raise ValueError("an XRPL issued currency needs decimals (base units per unit = 10^decimals)")
            if self.name == "native":
                raise ValueError("'native' is the chain's own coin, not an issued currency")
        return self


class LedgerRuleConfig(Strict):
    """Map matching events to one balanced two-posting transaction each."""

    name: str
    chain: str
    # A contract name of the chain; "native" for the native-transfer scanner's
    # events (NativeTransfer, NativeFee); "*" for any source (XRPL events).
    source: str
    event: str
    # Paths into the event: bare names are event arguments ("to" = args.to);
    # also `address` (emitting contract / watched account), `tx_hash`, `chain`.
    wallet: str  # must hold a configured wallet address of this chain
    counterparty: str | None = None  # the other side of the movement
    # true: only when the counterparty is a configured wallet; false: only
    # when it is not; unset: either.
    counterparty_is_wallet: bool | None = None
    # true: only when the counterparty is a [[ledger.funders]] address of the
    # chain ({funder} is then its app account); false: only when it is not.
    counterparty_is_funder: bool | None = None
    where: dict[str, str | int | bool] = Field(default_factory=dict)  # path -> required value
    amount: str = "value"
    # "auto": the emitting ERC-20 contract, the native coin for "native"
    # sources and XRP drops, or the XRPL issued currency of the amount;
    # an asset name of the chain; or a {path} holding a token address
    # (the zero address meaning the native coin).
    asset: str = "auto"
    debit: list[str]
    credit: list[str]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be letters, digits, '_', '.' or '-' (max 63)")
        return v

    @field_validator("debit", "credit", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("debit", "credit")
    @classmethod
    def _templates(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one account template")
        return [check_account_template(t) for t in v]

    @field_validator("wallet", "counterparty", "amount")
    @classmethod
    def _paths(cls, v: str | None) -> str | None:
        return None if v is None else check_path(v)

    @field_validator("where")
    @classmethod
    def _where(cls, v: dict) -> dict:
        for k in v:
            check_path(k)
        return v

    @field_validator("asset")
    @classmethod
    def _asset(cls, v: str) -> str:
        if v.startswith("{"):
            if not (v.endswith("}") and v.count("{") == 1):
                raise ValueError("a templated asset is one {path} holding a token address")
            check_path(v[1:-1])
        elif v != "auto" and not _NAME.match(v):
            raise ValueError("must be 'auto', an asset name, or {path}")
        return v

    @model_validator(mode="after")
    def _counterparty(self) -> "LedgerRuleConfig":
        if self.counterparty_is_wallet is not None and self.counterparty is None:
            raise ValueError("counterparty_is_wallet needs counterparty (the path it applies to)")
        if self.counterparty_is_funder is not None and self.counterparty is None:
            raise ValueError("counterparty_is_funder needs counterparty (the path it applies to)")
        if any("{funder}" in t for t in (*self.debit, *self.credit)) and self.counterparty is None:
            raise ValueError("{funder} needs counterparty (the path holding the funder's address)")
        uses_cw = any("{counterparty_wallet}" in t for t in (*self.debit, *self.credit))
        if uses_cw and self.counterparty_is_wallet is not True:
            raise ValueError("{counterparty_wallet} needs counterparty_is_wallet = true")
        return self


# -- funders (issue 25) ----------------------------------------------------------

APP_ACCOUNT = re.compile(r"^app:[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_FUNDER_ADDRESS = re.compile(r"^(0x[0-9a-fA-F]{40}|r[1-9A-HJ-NP-Za-km-z]{24,34})$")


class LedgerFunderConfig(Strict):
    """An address whose deposits to a configured wallet fund an app account.

    Value a funder sends to a wallet of its chain is booked wallet debit /
    `account` credit, never as a deposit to the funder's user account; value
    a wallet sends back to it is a defunding: `account` debit / wallet
    credit. The address format is checked against the chain's kind in
    settlement/ledger/rules.py (config cannot see the chain list here).
    """

    chain: str
    address: str
    account: str = "app:treasury"

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not _FUNDER_ADDRESS.match(v):
            raise ValueError("must be an EVM address (0x and 40 hex digits) or an XRPL classic address (r...)")
        return v

    @field_validator("account")
    @classmethod
    def _account(cls, v: str) -> str:
        if not APP_ACCOUNT.match(v):
            raise ValueError("must be an app account code 'app:<name>' (letters, digits, '_', '.', '-'; max 63)")
        return v


# -- app accounts and their limits (transfers, holds, payouts from an account) --

class LedgerAccountConfig(Strict):
    """A named app account (`app:prizes`): the app's own money.

    overdraft: how far below zero transfers, holds and payouts may take it,
    in base units of any asset, or "unlimited" (a treasury that issues).
    voucher_cap: the most its outstanding (issued, not yet used, expired or
    revoked) claim vouchers may add up to, per asset; unset: no cap beyond
    what the account has available.
    """

    code: str
    overdraft: int | None = 0  # None: unlimited
    label: str | None = None
    voucher_cap: int | None = Field(None, ge=0, le=_MAX_UNITS)

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not APP_ACCOUNT.match(v):
            raise ValueError("must read 'app:<name>' (letters, digits, '_', '.', '-'; max 63)")
        return v

    @field_validator("overdraft", mode="before")
    @classmethod
    def _overdraft(cls, v):
        if v == "unlimited":
            return None
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _MAX_UNITS:
            raise ValueError('must be a non-negative integer in base units or "unlimited"')
        return v


class LedgerSettings(Strict):
    default_rules: bool = True
    assets: list[LedgerAssetConfig] = Field(default_factory=list)
    rules: list[LedgerRuleConfig] = Field(default_factory=list)
    funders: list[LedgerFunderConfig] = Field(default_factory=list)
    # App accounts with their limits; with create_app_accounts, the transfer
    # API creates an unlisted app:<name> on first use (overdraft 0).
    accounts: list[LedgerAccountConfig] = Field(default_factory=list)
    create_app_accounts: bool = False
    # A hold with no timeout of its own expires after this many seconds.
    hold_timeout_seconds: float = Field(3600.0, gt=0, le=366 * 86400)

    def app_account(self, code: str) -> LedgerAccountConfig | None:
        return next((a for a in self.accounts if a.code == code), None)

    @model_validator(mode="after")
    def _unique(self) -> "LedgerSettings":
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        keys = [(a.chain, a.name) for a in self.assets]
        dupes = sorted({f"{c}:{n}" for c, n in keys if keys.count((c, n)) > 1})
        if dupes:
            raise ValueError(f"assets listed twice: {', '.join(dupes)}")
        funders = [(f.chain, f.address.lower() if f.address.startswith("0x") else f.address) for f in self.funders]
        dupes = sorted({f"{c}:{a}" for c, a in funders if funders.count((c, a)) > 1})
        if dupes:
            raise ValueError(f"funders listed twice: {', '.join(dupes)}")
        codes = [a.code for a in self.accounts]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"accounts listed twice: {', '.join(dupes)}")
        return self


class ReconcileSettings(Strict):
    interval_seconds: float = Field(60.0, gt=0)
    # Largest |actual - expected| in base units still counted as a match;
    # per-asset values override it ("anvil:native" = 1000). Strings are
    # accepted for values beyond TOML's 64-bit integers.
    tolerance: int = Field(0, ge=0, le=_MAX_UNITS)
    tolerances: dict[str, int] = Field(default_factory=dict)
    # Events touching a mismatched wallet listed in the report, newest first.
    max_movements: int = Field(20, ge=0, le=1000)
    # Wallets below this on-chain balance (base units, per asset id) raise
    # chainsettle_wallet_low, which the "wallet low" alert watches.
    min_balances: dict[str, int] = Field(default_factory=dict)

    @field_validator("tolerance", mode="before")
    @classmethod
    def _int_text(cls, v):
        return int(v) if isinstance(v, str) and v.isdigit() else v

    @field_validator("tolerances", "min_balances", mode="before")
    @classmethod
    def _int_texts(cls, v):
        if isinstance(v, dict):
            return {k: int(x) if isinstance(x, str) and x.isdigit() else x for k, x in v.items()}
        return v

    @field_validator("tolerances", "min_balances")
    @classmethod
    def _tolerances(cls, v: dict[str, int]) -> dict[str, int]:
        for k, x in v.items():
            if ":" not in k:
                raise ValueError(f"{k!r}: keys are asset ids '<chain>:<name>', e.g. 'anvil:native'")
            if not 0 <= x <= _MAX_UNITS:
                raise ValueError(f"{k!r}: must be a non-negative integer in base units")
        return v

    def tolerance_for(self, asset_id: str) -> int:
        return self.tolerances.get(asset_id, self.tolerance)
