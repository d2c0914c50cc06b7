"""The event-to-ledger mapping, from configuration to what the SQL runs.

Which movements the ledger books (the README's "what is covered"):
- deposits: a matched event moving value INTO a configured wallet from
  outside debits the wallet and credits the sender's user account (or, on
  XRPL, the account named by the destination tag); from a configured
  funder (`[[ledger.funders]]`), the funder's app account instead;
- defundings: value a wallet sends back to a funder debits the funder's
  app account and credits the wallet;
- internal transfers between two configured wallets;
- gas / XRPL fees paid by a configured wallet, to the chain's fee account;
- whatever explicit `[[ledger.rules]]` add, e.g. payouts from the batcher's
  PayoutSent events.
A movement OUT of a wallet that no rule explains is deliberately not booked:
reconciliation then shows exactly that amount as a difference until an
operator books a manual adjustment. That is how a transfer made behind the
daemon's back is caught.

Pure: no I/O. Paths in rules are dotted; bare names mean event arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config import ConfigError, Settings, load_abi
from config.section_ledger import LedgerRuleConfig

NATIVE = "native"
NATIVE_TRANSFER = "NativeTransfer"
NATIVE_FEE = "NativeFee"
INTERNAL_TRANSFER = "InternalTransfer"  # indexer/evm/traces.py
# Context roots a path may start with; anything else is an event argument.
RESERVED = ("args", "address", "tx_hash", "chain", "block_number", "wallet", "counterparty_wallet", "funder")
ZERO_ADDRESS = "0x" + "0" * 40
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_XRPL_CLASSIC = re.compile(r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$")


@dataclass(frozen=True)
class AssetSpec:
    id: str
    chain: str
    name: str
    kind: str  # native | erc20 | xrpl_iou
    contract: str | None = None
    currency: str | None = None
    issuer: str | None = None
    symbol: str | None = None
    decimals: int | None = None


@dataclass(frozen=True)
class WalletSpec:
    chain: str
    address: str
    name: str
    asset_ids: tuple[str, ...]

    @property
    def account_code(self) -> str:
        return wallet_account(self.chain, self.address)


def asset_id(chain: str, name: str) -> str:
    return f"{chain}:{name}"


def wallet_account(chain: str, address: str) -> str:
    return f"wallet:{chain}:{address}"


def fee_account(chain: str) -> str:
    return f"fee:{chain}"


def opening_account(chain: str) -> str:
    return f"equity:{chain}:opening"


def norm_address(chain_kind: str, address: str) -> str:
    return address.lower() if chain_kind == "evm" else address


def norm_path(path: str) -> list[str]:
    parts = path.split(".")
    return parts if parts[0] in RESERVED else ["args", *parts]


def norm_template(tpl: str) -> str:
    return _PLACEHOLDER.sub(lambda m: "{" + ".".join(norm_path(m.group(1))) + "}", tpl)


# -- assets and wallets -----------------------------------------------------


def asset_specs(settings: Settings) -> list[AssetSpec]:
    """Every asset of the configured chains: each chain's native coin, the
    ERC-20 contracts wallets hold, and `[[ledger.assets]]` entries."""
    extra = {(a.chain, a.name): a for a in settings.ledger.assets}
    out: list[AssetSpec] = []
    for chain in settings.chains:
        evm = chain.kind == "evm"
        native = extra.get((chain.name, NATIVE))
        out.append(AssetSpec(
            asset_id(chain.name, NATIVE), chain.name, NATIVE, "native",
            symbol=native.symbol if native and native.symbol else (None if evm else "XRP"),
            decimals=native.decimals if native and native.decimals is not None else (18 if evm else 6),
        ))
        names = {a for w in chain.wallets for a in w.assets if a != NATIVE}
        names |= {a.name for a in settings.ledger.assets if a.chain == chain.name and a.name != NATIVE}
        contracts = {c.name: c for c in chain.contracts}
        for name in sorted(names):
            cfg = extra.get((chain.name, name))
            if evm and name in contracts:
                out.append(AssetSpec(
                    asset_id(chain.name, name), chain.name, name, "erc20", contract=contracts[name].address,
                    symbol=cfg.symbol if cfg else None, decimals=cfg.decimals if cfg else None,
                ))
            elif cfg is not None and cfg.currency is not None:
                out.append(AssetSpec(
                    asset_id(chain.name, name), chain.name, name, "xrpl_iou", currency=cfg.currency,
                    issuer=cfg.issuer, symbol=cfg.symbol or cfg.currency, decimals=cfg.decimals,
                ))
    return out


def wallet_specs(settings: Settings) -> list[WalletSpec]:
    out = []
    for chain in settings.chains:
        for w in chain.wallets:
            out.append(WalletSpec(
                chain.name, norm_address(chain.kind, w.address), w.name,
                tuple(asset_id(chain.name, a) for a in w.assets),
            ))
    return out


def funder_accounts(settings: Settings, chain_name: str) -> dict[str, str]:
    """{normalised funder address: app account} of one chain."""
    kind = settings.chain(chain_name).kind
    return {norm_address(kind, f.address): f.account for f in settings.ledger.funders if f.chain == chain_name}


# -- rules ------------------------------------------------------------------


def default_rules(settings: Settings) -> list[LedgerRuleConfig]:
    """Deposits, internal transfers and fees for every chain with wallets."""
    rules: list[LedgerRuleConfig] = []
    for chain in settings.chains:
        if not chain.wallets:
            continue
        n = chain.name
        # A deposit from a funder credits its app account: `{funder}` renders
        # only when the counterparty is one, else the next template applies.
        # Same rule, same idempotency key: adding a funder later re-books nothing.
        funded = any(f.chain == n for f in settings.ledger.funders)
        first = ["{funder}"] if funded else []
        if chain.kind == "evm":
            tokens = sorted({a for w in chain.wallets for a in w.assets if a != NATIVE})
            sources = [(t, t, "Transfer", "value") for t in tokens]
            if any(NATIVE in w.assets for w in chain.wallets):
                sources.append((NATIVE, NATIVE, NATIVE_TRANSFER, "value"))
                if chain.traces != "off":
                    # Value contracts move in internal calls (call traces): booked as
                    # top-level native transfers are, deposits and between wallets.
                    sources.append(("native_internal", NATIVE, INTERNAL_TRANSFER, "value"))
                rules.append(LedgerRuleConfig(
                    name=f"{n}.native.fee", chain=n, source=NATIVE, event=NATIVE_FEE, wallet="from",
                    amount="fee", asset=NATIVE, debit=["fee:{chain}"], credit=["{wallet}"],
                ))
            for label, src, event, amount in sources:
                common = dict(chain=n, source=src, event=event, wallet="to", counterparty="from", amount=amount)
                rules.append(LedgerRuleConfig(
                    name=f"{n}.{label}.deposit", counterparty_is_wallet=False,
                    debit=["{wallet}"], credit=[*first, "user:{chain}:{from}"], **common,
                ))
                if funded:
                    rules.append(LedgerRuleConfig(
                        name=f"{n}.{label}.defunding", chain=n, source=src, event=event, wallet="from",
                        counterparty="to", counterparty_is_wallet=False, counterparty_is_funder=True,
                        amount=amount, debit=["{funder}"], credit=["{wallet}"],
                    ))
                rules.append(LedgerRuleConfig(
                    name=f"{n}.{label}.internal", counterparty_is_wallet=True,
                    debit=["{wallet}"], credit=["{counterparty_wallet}"], **common,
                ))
        else:
            # indexer/xrpl/decode.py writes one row per (transaction, watched
            # account), address = that account, with `direction` seen from it:
            # a payment between two watched wallets is booked once, on the
            # receiving row. delivered_amount, never Amount: partial payments.
            common = dict(chain=n, source="*", event="Payment", wallet="address", counterparty="counterparty",
                          amount="delivered_amount", where={"direction": "in", "status": "success"})
            rules.append(LedgerRuleConfig(
                name=f"{n}.deposit", counterparty_is_wallet=False, debit=["{wallet}"],
                credit=[*first, "user:{chain}:tag:{destination_tag}", "user:{chain}:{counterparty}"], **common,
            ))
            if funded:
                rules.append(LedgerRuleConfig(
                    name=f"{n}.defunding", chain=n, source="*", event="Payment", wallet="address",
                    counterparty="counterparty", counterparty_is_wallet=False, counterparty_is_funder=True,
                    amount="delivered_amount", where={"direction": "out", "status": "success"},
                    debit=["{funder}"], credit=["{wallet}"],
                ))
            rules.append(LedgerRuleConfig(
                name=f"{n}.internal", counterparty_is_wallet=True, debit=["{wallet}"],
                credit=["{counterparty_wallet}"], **common,
            ))
            # Every transaction a wallet sends burns its fee, tec results included.
            rules.append(LedgerRuleConfig(
                name=f"{n}.fee", chain=n, source="*", event="*", wallet="address", where={"role": "sender"},
                amount="fee", asset=NATIVE, debit=["fee:{chain}"], credit=["{wallet}"],
            ))
    return rules


def effective_rules(settings: Settings) -> list[LedgerRuleConfig]:
    rules = list(settings.ledger.rules)
    if settings.ledger.default_rules:
        taken = {r.name for r in rules}
        rules += [r for r in default_rules(settings) if r.name not in taken]
    return rules


def compile_rules(settings: Settings, chain_name: str) -> list[dict]:
    """The rules of one chain as rows for `jsonb_to_recordset` in ledger/hook.sql."""
    chain = settings.chain(chain_name)
    contracts = {c.name: c.address for c in chain.contracts}
    funders = funder_accounts(settings, chain_name)
    out = []
    for r in effective_rules(settings):
        if r.chain != chain_name:
            continue
        if r.source == "*":
            source = None
        elif r.source == NATIVE:
            source = NATIVE
        else:
            source = contracts[r.source]
        if r.asset == "auto":
            mode = "native" if r.source == NATIVE else ("xrpl" if chain.kind == "xrpl" else "contract")
            fixed, path = None, None
        elif r.asset.startswith("{"):
            mode, fixed, path = "address", None, norm_path(r.asset[1:-1])
        else:
            mode, fixed, path = "fixed", asset_id(chain_name, r.asset), None
        conds = []
        for k, v in r.where.items():
            text = str(v).lower() if isinstance(v, bool) else str(v)
            ref = _PLACEHOLDER.fullmatch(text)
            conds.append({"path": norm_path(k), "value": None if ref else text,
                          "ref": norm_path(ref.group(1)) if ref else None})
        out.append({
            "name": r.name,
            "source": source,
            "event": None if r.event == "*" else r.event,
            "wallet_path": norm_path(r.wallet),
            "cp_path": norm_path(r.counterparty) if r.counterparty else None,
            "cp_is_wallet": r.counterparty_is_wallet,
            "cp_is_funder": r.counterparty_is_funder,
            "funders": funders,
            "conds": conds,
            "amount_path": norm_path(r.amount),
            "asset_mode": mode,
            "asset_id": fixed,
            "asset_path": path,
            "debit": [norm_template(t) for t in r.debit],
            "credit": [norm_template(t) for t in r.credit],
        })
    return out


# -- validation ---------------------------------------------------------------


def check_ledger_config(settings: Settings) -> None:
    """Cross-section checks (chains, contracts, wallets, assets, rules); ConfigError names the field."""
    chains = {c.name: c for c in settings.chains}
    known_assets = {a.id for a in asset_specs(settings)}
    for i, a in enumerate(settings.ledger.assets):
        where = f"ledger.assets[{i}]"
        chain = chains.get(a.chain)
        if chain is None:
            raise ConfigError(f"{where}.chain: no chain named {a.chain!r}")
        if chain.kind == "evm" and a.currency is not None:
            raise ConfigError(f"{where}.currency: issued currencies exist only on XRPL chains")
        if chain.kind == "evm" and a.name != NATIVE and a.name not in {c.name for c in chain.contracts}:
            raise ConfigError(f"{where}.name: {a.name!r} is not a contract of chain {a.chain!r}")
        if chain.kind == "xrpl" and a.name != NATIVE:
            if a.currency is None:
                raise ConfigError(f"{where}: an XRPL asset other than 'native' needs currency and issuer")
            if not _XRPL_CLASSIC.match(a.issuer or ""):
                raise ConfigError(f"{where}.issuer: not an XRPL classic address")
    for ci, chain in enumerate(settings.chains):
        for wi, w in enumerate(chain.wallets):
            where = f"chains[{ci}].wallets[{wi}]"
            if chain.kind == "xrpl" and not _XRPL_CLASSIC.match(w.address):
                raise ConfigError(f"{where}.address: not an XRPL classic address (r...)")
            for a in w.assets:
                if asset_id(chain.name, a) not in known_assets:
                    hint = "a contract of this chain" if chain.kind == "evm" else "an issued currency in [[ledger.assets]]"
                    raise ConfigError(f"{where}.assets: {a!r} is neither 'native' nor {hint}")
        addresses = [norm_address(chain.kind, w.address) for w in chain.wallets]
        if len(set(addresses)) != len(addresses):
            raise ConfigError(f"chains[{ci}].wallets: the same address is configured twice")
    for i, r in enumerate(settings.ledger.rules):
        _check_rule(settings, f"ledger.rules[{i}]", r, chains, known_assets)
    for i, f in enumerate(settings.ledger.funders):
        _check_funder(f"ledger.funders[{i}]", f, chains)
    for key in settings.reconcile.tolerances:
        if key not in known_assets:
            raise ConfigError(f"reconcile.tolerances: {key!r} is not a known asset ({', '.join(sorted(known_assets)) or 'none'})")


def _check_funder(where: str, f, chains: dict) -> None:
    chain = chains.get(f.chain)
    if chain is None:
        raise ConfigError(f"{where}.chain: no chain named {f.chain!r}")
    if chain.kind == "xrpl" and not _XRPL_CLASSIC.match(f.address):
        raise ConfigError(f"{where}.address: not an XRPL classic address (r...)")
    if chain.kind == "evm" and not re.fullmatch(r"0x[0-9a-fA-F]{40}", f.address):
        raise ConfigError(f"{where}.address: not an EVM address (0x and 40 hex digits)")
    address = norm_address(chain.kind, f.address)
    if address in {norm_address(chain.kind, w.address) for w in chain.wallets}:
        raise ConfigError(f"{where}.address: a configured wallet of {f.chain!r} cannot also be a funder "
                          "(moves between wallets are internal transfers)")


def _check_rule(settings: Settings, where: str, r: LedgerRuleConfig, chains: dict, known_assets: set[str]) -> None:
    chain = chains.get(r.chain)
    if chain is None:
        raise ConfigError(f"{where}.chain: no chain named {r.chain!r}")
    if r.source == NATIVE:
        if chain.kind != "evm":
            raise ConfigError(f"{where}.source: 'native' events come from the EVM native-transfer scanner")
        if r.event not in (NATIVE_TRANSFER, NATIVE_FEE, INTERNAL_TRANSFER, "*"):
            raise ConfigError(f"{where}.event: native sources emit {NATIVE_TRANSFER}, {NATIVE_FEE} and "
                              f"{INTERNAL_TRANSFER}")
    elif r.source != "*":
        contract = next((c for c in chain.contracts if c.name == r.source), None)
        if contract is None:
            raise ConfigError(f"{where}.source: {r.source!r} is not 'native', '*' or a contract of chain {r.chain!r}")
        events = contract.events or [e["name"] for e in load_abi(contract.abi, settings.base_dir) if e.get("type") == "event"]
        if r.event != "*" and r.event not in events:
            raise ConfigError(f"{where}.event: contract {r.source!r} does not index an event {r.event!r}")
    if r.asset not in ("auto",) and not r.asset.startswith("{") and asset_id(r.chain, r.asset) not in known_assets:
        raise ConfigError(f"{where}.asset: {r.asset!r} is not an asset of chain {r.chain!r}")
    if r.asset == "auto" and r.source not in (NATIVE, "*") and chain.kind == "evm":
        addr = next(c.address for c in chain.contracts if c.name == r.source)
        if not any(a.contract == addr for a in asset_specs(settings) if a.chain == r.chain):
            raise ConfigError(
                f"{where}.asset: 'auto' means the emitting contract {r.source!r}, which no wallet holds; "
                f"name the asset or use {{path}}"
            )

