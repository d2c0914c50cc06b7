"""[payouts] section: limits, fee policy and per-chain keys of the payout pipeline.

Keys are never values here, only references: `env:NAME`, `file:PATH`, or an
encrypted keystore file plus a reference to its password. They are resolved
when the payout worker starts (settlement/payouts/evm/config.py load_key), so `check-config`
works on a machine that does not hold them.

Cross-section checks (the chain exists, the batcher is one of its indexed
contracts, the asset is known) live in `settlement.payouts.evm.config.check_payout_config`
because they need the chain list.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_MAX_UNITS = 2**256 - 1
GWEI = 10**9


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _int_text(v):
    # TOML integers stop at 2**63; base-unit amounts may be written as strings.
    return int(v) if isinstance(v, str) and v.isdigit() else v


# Per-asset limits, the same on every chain kind; amounts in base units.
_Threshold = Annotated[int | None, Field(ge=0, le=_MAX_UNITS), BeforeValidator(_int_text)]
_Limit = Annotated[int | None, Field(ge=1, le=_MAX_UNITS), BeforeValidator(_int_text)]


def _dupes(names: list[str]) -> str:
    return ", ".join(sorted({n for n in names if names.count(n) > 1}))


def _check_ref(v: str | None) -> str | None:
    if v is not None and not v.startswith(("env:", "file:")):
        raise ValueError("must be a reference, env:NAME or file:PATH, never the secret itself")
    return v


class KeyRef(Strict):
    """One key: `key` (a reference to 64 hex digits) or `keystore` + `password`."""

    key: str | None = None
    keystore: str | None = None
    password: str | None = None

    _refs = field_validator("key", "password")(classmethod(lambda cls, v: _check_ref(v)))

    @model_validator(mode="after")
    def _one(self) -> "KeyRef":
        if (self.key is None) == (self.keystore is None):
            raise ValueError("give exactly one of key (env:/file: reference) or keystore (path)")
        if self.keystore is not None and self.password is None:
            raise ValueError("a keystore needs password (an env:/file: reference)")
        if self.key is not None and self.password is not None:
            raise ValueError("password goes with keystore, not with key")
        return self


class _AssetLimits(Strict):
    """The caps every payout asset has, whatever the chain kind."""

    name: str
    # Batches whose total exceeds this wait for `chainsettle payouts approve`; requests at or
    # below it are batched apart from larger ones, up to this total, and never wait (plan.next_batch).
    approval_threshold: _Threshold = None
    max_batch_total: _Limit = None
    daily_cap: _Limit = None


class PayoutAssetConfig(_AssetLimits):
    # name: "native" or the name of an ERC-20 contract of the chain ([[chains.contracts]]).
    source: str = "contract"  # contract: the batcher's own balance; treasury: transferFrom(treasury)
    treasury: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 'native' or a contract name of the chain")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v not in ("contract", "treasury"):
            raise ValueError("must be 'contract' or 'treasury'")
        return v

    @field_validator("treasury")
    @classmethod
    def _treasury(cls, v: str | None) -> str | None:
        if v is not None and not _EVM_ADDRESS.match(v):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return v.lower() if v else v

    @model_validator(mode="after")
    def _funding(self) -> "PayoutAssetConfig":
        if self.source == "treasury":
            if self.name == "native":
                raise ValueError("source: the native coin is always paid from the batcher's balance ('contract')")
            if self.treasury is None:
                raise ValueError("treasury: source 'treasury' needs the treasury address")
        elif self.treasury is not None:
            raise ValueError("treasury: only used with source = 'treasury'")
        return self


class PayoutChainConfig(Strict):
    chain: str
    batcher: str  # PayoutBatcher address; must also be a [[chains.contracts]] entry so its events are indexed
    signer: KeyRef  # signs the EIP-712 batches (an authorised signer of the batcher)
    sender: KeyRef  # pays gas and sends the transactions
    kill_switch: bool = False
    # Hard cap on maxFeePerGas (wei): bumps stop here and the transaction is flagged stuck_fee_cap.
    max_fee_per_gas: int = Field(ge=1, le=_MAX_UNITS)
    max_priority_fee_per_gas: int = Field(2 * GWEI, ge=0, le=_MAX_UNITS)
    assets: list[PayoutAssetConfig] = Field(min_length=1)

    _ints = field_validator("max_fee_per_gas", "max_priority_fee_per_gas", mode="before")(
        classmethod(lambda cls, v: _int_text(v)))

    @field_validator("batcher")
    @classmethod
    def _batcher(cls, v: str) -> str:
        if not _EVM_ADDRESS.match(v):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return v.lower()

    @model_validator(mode="after")
    def _checks(self) -> "PayoutChainConfig":
        dupes = _dupes([a.name for a in self.assets])
        if dupes:
            raise ValueError(f"assets listed twice: {dupes}")
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError("max_priority_fee_per_gas cannot exceed max_fee_per_gas")
        return self

    kind: Literal["evm"] = "evm"

    def asset(self, name: str) -> PayoutAssetConfig | None:
        return next((a for a in self.assets if a.name == name), None)


# -- XRPL payouts (settlement/payouts/xrpl/) ---------------------------------------


class XrplPayoutAssetConfig(_AssetLimits):
    # name: "native" (XRP, in drops) or an issued currency in [[ledger.assets]] (base units = its decimals).

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be 'native' or an issued-currency asset name of the chain")
        return v


class XrplPayoutChainConfig(Strict):
    """One Payment per payout from a hot wallet; `seed` tells this entry from an EVM one."""

    kind: Literal["xrpl"] = "xrpl"
    chain: str
    seed: str  # env:NAME or file:PATH holding the hot wallet's family seed (s...); never the seed itself
    kill_switch: bool = False
    # LastLedgerSequence = the validated ledger when signed + this: how long a lost submission can stay undecided.
    last_ledger_offset: int = Field(20, ge=2, le=1000)
    fee_drops: int = Field(12, ge=10, le=1_000_000)  # never below the reference fee
    max_fee_drops: int = Field(5000, ge=10, le=100_000_000)  # load-scaled fees stop here
    max_in_flight: int = Field(50, ge=1, le=1000)  # signed payments not yet validated
    # Payments that failed in a way worth retrying (tec path/funding, proven dropped) go back
    # to the queue after `retry_wait_seconds`, at most `max_attempts` times; then to a human.
    max_attempts: int = Field(5, ge=1, le=100)
    retry_wait_seconds: float = Field(30.0, ge=0)
    assets: list[XrplPayoutAssetConfig] = Field(min_length=1)

    _seed = field_validator("seed")(classmethod(lambda cls, v: _check_ref(v)))

    @model_validator(mode="after")
    def _checks(self) -> "XrplPayoutChainConfig":
        dupes = _dupes([a.name for a in self.assets])
        if dupes:
            raise ValueError(f"assets listed twice: {dupes}")
        if self.fee_drops > self.max_fee_drops:
            raise ValueError("fee_drops cannot exceed max_fee_drops")
        return self

    def asset(self, name: str) -> XrplPayoutAssetConfig | None:
        return next((a for a in self.assets if a.name == name), None)


def _payout_chain_kind(v: object) -> str:
    if isinstance(v, dict):
        return "xrpl" if "seed" in v or v.get("kind") == "xrpl" else "evm"
    return getattr(v, "kind", "evm")


AnyPayoutChain = Annotated[
    Union[Annotated[PayoutChainConfig, Tag("evm")], Annotated[XrplPayoutChainConfig, Tag("xrpl")]],
    Discriminator(_payout_chain_kind),
]


class PayoutSettings(Strict):
    # Global kill switch: no signing anywhere (a per-chain one is in [[payouts.chains]];
    # `chainsettle payouts kill` flips one at run time without a restart).
    kill_switch: bool = False
    # Sign batches (EIP-712) but never claim a nonce or broadcast.
    dry_run: bool = False
    poll_interval: float = Field(1.0, gt=0)
    max_recipients: int = Field(100, ge=1, le=2000)
    # A batch's gas limit may use at most this share of the block gas limit.
    gas_share: float = Field(0.3, gt=0, le=1)
    # Both fee fields rise by at least this much per replacement; nodes refuse less than ~10-12.5%.
    bump_percent: float = Field(12.5, ge=12.5, le=500)
    bump_interval_seconds: float = Field(30.0, gt=0)
    batch_expiry_seconds: int = Field(3600, ge=60)
    # A partial batch is cut once its oldest request waited this long.
    batch_wait_seconds: float = Field(0.0, ge=0)
    # Requests must be covered by the recipient's final ledger balance (user:<chain>:<address>).
    require_balance: bool = True
    chains: list[AnyPayoutChain] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> "PayoutSettings":
        dupes = _dupes([c.chain for c in self.chains])
        if dupes:
            raise ValueError(f"chains: listed twice: {dupes}")
        return self

    def chain(self, name: str) -> PayoutChainConfig | XrplPayoutChainConfig | None:
        return next((c for c in self.chains if c.chain == name), None)
