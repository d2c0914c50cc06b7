"""XRPL payout entries checked against the chains and the ledger, the hot
wallet behind its seed reference, and amounts in XRPL form.

The seed is resolved only when a worker starts; `HotWallet` keeps it out of
every repr, log line and error (errors name the field, never the value).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from xrpl.core.addresscodec import is_valid_classic_address
from xrpl.wallet import Wallet

from config import ConfigError, Settings
from config.secrets import resolve_secret
from config.section_payouts import XrplPayoutChainConfig
from settlement.ledger.rules import asset_id, asset_specs


@dataclass(frozen=True)
class XrplAsset:
    """How one configured asset is paid: XRP in drops, or an issued currency."""

    name: str
    currency: str | None = None  # None: XRP
    issuer: str | None = None
    decimals: int = 6

    @property
    def native(self) -> bool:
        return self.currency is None

    @property
    def token(self) -> str:
        # payout_batches.token of XRPL batches
        return "xrpl:XRP" if self.native else f"xrpl:{self.currency}.{self.issuer}"

    def amount(self, units: int) -> str | dict[str, str]:
        """The Payment `Amount`: drops as a string, or {currency, issuer, value} in plain decimal."""
        if self.native:
            return str(units)
        value = Decimal(units).scaleb(-self.decimals)
        return {"currency": self.currency, "issuer": self.issuer, "value": format(value.normalize(), "f")}

    def units(self, value: str) -> int:
        """Base units of a decimal value (a trust-line balance or limit); truncated."""
        return int(Decimal(value).scaleb(self.decimals))


class HotWallet:
    """The sending wallet; `repr` and `str` show only the address."""

    __slots__ = ("_wallet", "address")

    def __init__(self, seed_ref: str, field: str) -> None:
        secret = resolve_secret(seed_ref, field)
        try:
            self._wallet = Wallet.from_seed(secret.reveal().strip())
        except Exception:  # any decoding failure: never echo what was read
            raise ConfigError(f"{field}: the referenced value is not an XRPL family seed (s...)") from None
        self.address = self._wallet.classic_address

    @property
    def wallet(self) -> Wallet:
        return self._wallet

    def __repr__(self) -> str:
        return f"HotWallet({self.address})"

    __str__ = __repr__


def xrpl_assets(settings: Settings, pc: XrplPayoutChainConfig) -> dict[str, XrplAsset]:
    specs = {a.id: a for a in asset_specs(settings)}
    out = {}
    for a in pc.assets:
        spec = specs[asset_id(pc.chain, a.name)]
        if spec.kind == "native":
            out[a.name] = XrplAsset(a.name)
        else:
            out[a.name] = XrplAsset(a.name, spec.currency, spec.issuer, spec.decimals)  # type: ignore[arg-type]
    return out


def check_xrpl_payout_config(settings: Settings, pc: XrplPayoutChainConfig, hot_address: str | None = None) -> None:
    """ConfigError naming the field when an XRPL [[payouts.chains]] entry does not fit."""
    i = settings.payouts.chains.index(pc)
    where = f"payouts.chains[{i}]"
    chain = settings.chain(pc.chain)
    if chain is None:
        raise ConfigError(f"{where}.chain: no chain named {pc.chain!r}")
    if chain.kind != "xrpl":
        raise ConfigError(f"{where}.seed: {pc.chain!r} is an {chain.kind} chain; a seed entry pays on XRPL chains")
    specs = {a.id: a for a in asset_specs(settings)}
    for j, a in enumerate(pc.assets):
        spec = specs.get(asset_id(pc.chain, a.name))
        if spec is None:
            raise ConfigError(f"{where}.assets[{j}].name: {a.name!r} is not a ledger asset of {pc.chain!r} "
                              "('native' or an issued currency in [[ledger.assets]])")
        if spec.kind == "xrpl_iou" and spec.decimals is None:
            raise ConfigError(f"{where}.assets[{j}].name: [[ledger.assets]] {a.name!r} needs decimals (base units)")
    if hot_address is not None:
        if not is_valid_classic_address(hot_address) or hot_address not in {w.address for w in chain.wallets}:
            # Its transactions must be followed: outcomes and fees come from its validated history.
            raise ConfigError(f"{where}.seed: the hot wallet {hot_address} is not a [[chains.wallets]] entry of "
                              f"{pc.chain!r}; add it so its payments are followed and booked")
        wallet = next(w for w in chain.wallets if w.address == hot_address)
        for j, a in enumerate(pc.assets):
            if a.name not in wallet.assets:
                raise ConfigError(f"{where}.assets[{j}].name: the hot wallet's [[chains.wallets]] entry does not "
                                  f"list {a.name!r} in its assets")
    if not settings.ledger.default_rules:
        raise ConfigError(f"{where}: XRPL payouts rely on the default ledger rules for fees (ledger.default_rules)")
