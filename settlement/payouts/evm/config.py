"""The payout section checked against the chains, and the keys it references.

`check_payout_config` needs the whole Settings (the chain list, its
contracts, the ledger rules), so it lives here rather than in config/.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import ConfigError, Settings
from config.section_payouts import KeyRef, PayoutAssetConfig, PayoutChainConfig
from settlement.ledger.rules import asset_id, asset_specs
from settlement.payouts.evm.eip712 import NATIVE, FundingSource
from settlement.payouts.evm.signer import LocalKeySigner, Signer, SignerError

BATCHER_EVENTS = ("PayoutSent", "PayoutFailed", "BatchExecuted")


@dataclass(frozen=True)
class AssetPlan:
    """How one configured asset is paid: what goes into the signed Batch."""

    name: str
    token: str  # lowercase; the zero address for the native coin
    source: FundingSource
    treasury: str  # zero address unless source is TREASURY
    cfg: PayoutAssetConfig

    @property
    def native(self) -> bool:
        return self.token == NATIVE


def check_payout_config(settings: Settings) -> None:
    """ConfigError naming the field when [payouts] does not fit the chains."""
    chains = {c.name: c for c in settings.chains}
    for i, pc in enumerate(settings.payouts.chains):
        where = f"payouts.chains[{i}]"
        if pc.kind == "xrpl":
            continue  # checked by settlement.payouts.xrpl.config.check_xrpl_payout_config
        chain = chains.get(pc.chain)
        if chain is None:
            raise ConfigError(f"{where}.chain: no chain named {pc.chain!r}")
        if chain.kind != "evm":
            raise ConfigError(f"{where}.chain: batch payouts run on EVM chains; {pc.chain!r} is {chain.kind}")
        batcher = next((c for c in chain.contracts if c.address == pc.batcher), None)
        if batcher is None:
            raise ConfigError(
                f"{where}.batcher: {pc.batcher} is not a [[chains.contracts]] entry of {pc.chain!r}; "
                "add it (abi = \"payout_batcher\") so its events are indexed and payouts can be confirmed"
            )
        if batcher.events is not None and not set(BATCHER_EVENTS) <= set(batcher.events):
            raise ConfigError(f"{where}.batcher: the contract entry must index {', '.join(BATCHER_EVENTS)}")
        contracts = {c.name for c in chain.contracts}
        known = {a.id for a in asset_specs(settings)}
        for j, a in enumerate(pc.assets):
            if a.name != "native" and a.name not in contracts:
                raise ConfigError(f"{where}.assets[{j}].name: {a.name!r} is neither 'native' nor a contract of {pc.chain!r}")
            if asset_id(pc.chain, a.name) not in known:
                # Confirmation books the payout in the ledger: the asset must be one of its assets.
                raise ConfigError(
                    f"{where}.assets[{j}].name: {a.name!r} is not a ledger asset; list it in a wallet's assets "
                    "or in [[ledger.assets]]"
                )
        # The payout hook books PayoutSent itself; a rule on the same events would book it twice.
        for k, r in enumerate(settings.ledger.rules):
            if r.chain == pc.chain and r.source == batcher.name and r.event in ("PayoutSent", "*"):
                raise ConfigError(
                    f"ledger.rules[{k}]: PayoutSent of the payout batcher is booked by the payout pipeline; "
                    "remove this rule"
                )


def asset_plan(settings: Settings, pc: PayoutChainConfig, name: str) -> AssetPlan | None:
    a = pc.asset(name)
    if a is None:
        return None
    if a.name == "native":
        token = NATIVE.lower()
    else:
        chain = settings.chain(pc.chain)
        token = next(c.address for c in chain.contracts if c.name == a.name)
    source = FundingSource.TREASURY if a.source == "treasury" else FundingSource.CONTRACT
    return AssetPlan(a.name, token.lower(), source, (a.treasury or NATIVE).lower(), a)


def load_key(ref: KeyRef, field: str) -> Signer:
    """The key behind a reference; errors name the field, never the value."""
    try:
        if ref.key is not None:
            return LocalKeySigner.from_ref(ref.key, field)
        return LocalKeySigner.from_keystore(ref.keystore, ref.password, field)  # type: ignore[arg-type]
    except SignerError:
        raise
    except ConfigError as exc:  # an unset env variable or unreadable file
        raise SignerError(str(exc)) from None
