"""Settings: one TOML file plus environment overrides, validated by pydantic.

Sources, strongest first: `DATABASE_URL`, `CHAINSETTLE_*` variables (nested
with `__`, e.g. `CHAINSETTLE_LOG__LEVEL=debug`), then the TOML file given by
`--config` or `CHAINSETTLE_CONFIG`. Any validation problem becomes one
`ConfigError` line naming the file and the field.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError, SecretError
from .presets import PRESETS, Preset
from .secrets import resolve_secret
from .section_deliveries import unique_ids as unique_deliveries
from .sections import (
    ApiSettings,
    DeliveryConfig,
    DeliverySettings,
    InvoiceSettings,
    LedgerSettings,
    PayoutSettings,
    ReconcileSettings,
)

BUILTIN_ABI_DIR = Path(__file__).parent / "abis"
_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_toml_path: ContextVar[Path | None] = ContextVar("chainsettle_toml_path", default=None)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(Strict):
    url: str | None = None  # None: start the embedded server under embedded_dir
    embedded_dir: str = ".state/pg"
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(10, ge=1)
    statement_timeout_ms: int = Field(60_000, ge=0)
    idle_in_transaction_timeout_ms: int = Field(60_000, ge=0)

    def __repr_args__(self):  # the URL may carry a password
        for k, v in super().__repr_args__():
            yield k, ("***" if k == "url" and v else v)


class LogSettings(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class FactoryConfig(Strict):
    """A contract whose event announces contracts it created (the children).

    `event` is the factory's announcing event, `parameter` the name of its
    address argument; the children are indexed with `child_abi` (all its
    events, or `child_events`) from the block that created them.
    """

    event: str
    parameter: str
    child_abi: str
    child_events: list[str] | None = None


class ContractConfig(Strict):
    name: str
    address: str
    abi: str = "erc20"
    start_block: int = Field(0, ge=0)
    events: list[str] | None = None
    factory: FactoryConfig | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not _EVM_ADDRESS.match(v):
            raise ValueError("must be a 0x-prefixed 20-byte hex address")
        return v.lower()

    def abi_entries(self, base_dir: Path | None = None) -> list[dict[str, Any]]:
        return load_abi(self.abi, base_dir)


class WalletConfig(Strict):
    name: str
    address: str
    # Assets of this wallet to reconcile: "native" and/or contract names.
    # Unset in a chain's config: native plus every ERC-20 contract configured
    # on that chain (a user who lists a wallet and a token expects the token
    # reconciled); see ChainConfig._default_wallet_assets.
    assets: list[str] = Field(default_factory=lambda: ["native"])


class ChainConfig(Strict):
    name: str
    preset: str
    rpc: list[str] = Field(min_length=1)
    ws: str | None = None  # EVM: a ws:// URL for newHeads; polling otherwise
    chain_id: int | None = None
    finality_depth: int | None = Field(None, ge=1)
    # Top blocks re-queried before they count as final (default: the preset's,
    # 3 on the chains final at inclusion); 0 turns the window off.
    confirmation_blocks: int | None = Field(None, ge=0, le=1000)
    rescan_interval: float = Field(60.0, gt=0)  # seconds between background re-scans of a final sample
    rescan_blocks: int = Field(100, ge=1)  # blocks per background re-scan sample
    poll_interval: float | None = Field(None, gt=0)
    max_logs_range: int | None = Field(None, ge=1)
    min_logs_range: int = Field(1, ge=1)
    request_timeout: float = Field(15.0, gt=0)
    max_attempts: int = Field(6, ge=1)
    lag_threshold_blocks: int = Field(50, ge=1)
    start_block: int | None = Field(None, ge=0)
    start_ledger: int | None = Field(None, ge=1)
    contracts: list[ContractConfig] = Field(default_factory=list)
    wallets: list[WalletConfig] = Field(default_factory=list)
    # Internal value transfers from call traces (indexer/evm/traces.py):
    # "auto" uses whichever of debug_traceBlockByHash (callTracer) and
    # trace_block (parity) the endpoints answer, and none when neither.
    traces: Literal["off", "auto", "callTracer", "parity"] = "off"
    # Which blocks are traced: those with a transaction from or to a native
    # wallet, or a log naming one ("wallets"), or every block ("all").
    trace_blocks: Literal["wallets", "all"] = "wallets"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (max 63)")
        return v

    @field_validator("preset")
    @classmethod
    def _preset(cls, v: str) -> str:
        if v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; one of {', '.join(PRESETS)}")
        return v

    @field_validator("rpc", mode="before")
    @classmethod
    def _rpc(cls, v: object) -> object:
        if not isinstance(v, list):
            return v
        # Provider URLs often embed an API key: allow env:/file: references.
        return [_resolve_url(u, f"rpc[{i}]") if isinstance(u, str) else u for i, u in enumerate(v)]

    @field_validator("ws", mode="before")
    @classmethod
    def _ws(cls, v: object) -> object:
        return _resolve_url(v, "ws") if isinstance(v, str) else v

    @field_validator("wallets")
    @classmethod
    def _wallet_addresses(cls, v: list[WalletConfig], info) -> list[WalletConfig]:
        preset = PRESETS.get(info.data.get("preset", ""))
        if preset is None:
            return v
        for i, w in enumerate(v):
            if preset.kind == "evm" and not _EVM_ADDRESS.match(w.address):
                raise ValueError(f"[{i}].address: must be a 0x-prefixed 20-byte hex address (wallet {w.name})")
            if preset.kind == "xrpl":
                from xrpl.core.addresscodec import is_valid_classic_address

                if not is_valid_classic_address(w.address):
                    raise ValueError(f"[{i}].address: must be a classic XRPL address, r... (wallet {w.name})")
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_wallet_assets(cls, data: object) -> object:
        if not isinstance(data, dict) or not isinstance(data.get("wallets"), list):
            return data
        contracts = data.get("contracts") if isinstance(data.get("contracts"), list) else []
        tokens = [c["name"] for c in contracts
                  if isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("abi", "erc20") == "erc20"]
        wallets = [{**w, "assets": ["native", *tokens]} if isinstance(w, dict) and "assets" not in w else w
                   for w in data["wallets"]]
        return {**data, "wallets": wallets}

    @model_validator(mode="after")
    def _kind_rules(self) -> "ChainConfig":
        names = [c.name for c in self.contracts]
        if len(set(names)) != len(names):
            raise ValueError("contract names must be unique within a chain")
        if self.kind == "xrpl" and self.contracts:
                raise ValueError("XRPL chains have no contracts; watch accounts with [[chains.wallets]]")
        if self.kind == "xrpl" and self.traces != "off":
            raise ValueError("traces: call traces exist only on EVM chains")
        return self

    @property
    def preset_info(self) -> Preset:
        return PRESETS[self.preset]

    @property
    def kind(self) -> str:
        return PRESETS[self.preset].kind

    @property
    def effective_chain_id(self) -> int:
        return self.chain_id if self.chain_id is not None else self.preset_info.chain_id

    @property
    def effective_finality_depth(self) -> int:
        return self.finality_depth or self.preset_info.finality_depth

    @property
    def effective_confirmation_blocks(self) -> int:
        if self.confirmation_blocks is not None:
            return self.confirmation_blocks
        # The presets of chains final at inclusion carry a window (public
        # endpoints are load balancers); `anvil` is one local node and has none.
        return self.preset_info.confirmation_blocks

    @property
    def uses_finalized_tag(self) -> bool:
        # An explicit depth overrides the tag: useful for nodes that lack it.
        return self.preset_info.finality == "tag" and self.finality_depth is None

    @property
    def effective_poll_interval(self) -> float:
        return self.poll_interval or min(self.preset_info.block_time / 2, 1.0)

    @property
    def effective_max_logs_range(self) -> int:
        return self.max_logs_range or self.preset_info.max_logs_range

    @property
    def effective_start_block(self) -> int:
        if self.start_block is not None:
            return self.start_block
        starts = [c.start_block for c in self.contracts]
        return min(starts) if starts else 0


def _resolve_url(value: str, field: str) -> str:
    try:
        url = resolve_secret(value, field).reveal() if value.startswith(("env:", "file:")) else value
    except SecretError as exc:
        raise ValueError(str(exc).removeprefix(f"{field}: ")) from None
    if not re.match(r"^(https?|wss?)://[^/\s]+", url):
        raise ValueError("must be an http(s):// or ws(s):// URL (or an env:/file: reference to one)")
    return url


class _DatabaseUrlEnv(PydanticBaseSettingsSource):
    """DATABASE_URL, the variable every Postgres tool knows, beats the file."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        url = os.environ.get("DATABASE_URL")
        return {"database": {"url": url}} if url else {}


class _TomlFile(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _toml_path.get()
        if path is None:
            return {}
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: not UTF-8 (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc.__class__.__name__}") from None


def _deep_merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for k, v in high.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHAINSETTLE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database: DatabaseSettings = DatabaseSettings()
    log: LogSettings = LogSettings()
    chains: list[ChainConfig] = Field(default_factory=list)
    api: ApiSettings = ApiSettings()
    ledger: LedgerSettings = LedgerSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    payouts: PayoutSettings = PayoutSettings()
    invoices: InvoiceSettings = InvoiceSettings()
    delivery: DeliverySettings = DeliverySettings()
    deliveries: list[DeliveryConfig] = Field(default_factory=list)
    config_dir: str | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # Merged by hand so that an env override of one nested key does not
        # replace the whole table from the file.
        toml, envs, dburl = _TomlFile(settings_cls), env_settings, _DatabaseUrlEnv(settings_cls)

        class _Merged(PydanticBaseSettingsSource):
            def get_field_value(self, field, field_name):  # pragma: no cover
                return None, field_name, False

            def __call__(self) -> dict[str, Any]:
                data = toml()
                for layer in (envs(), dburl()):
                    data = _deep_merge(data, layer)
                return data

        return (init_settings, _Merged(settings_cls))

    @model_validator(mode="after")
    def _unique_chains(self) -> "Settings":
        names = [c.name for c in self.chains]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"chain names must be unique: {', '.join(dupes)}")
        unique_deliveries(self.deliveries)
        return self

    def chain(self, name: str) -> ChainConfig:
        for c in self.chains:
            if c.name == name:
                return c
        raise ConfigError(f"chains: no chain named {name!r} (have: {', '.join(c.name for c in self.chains) or 'none'})")

    @property
    def base_dir(self) -> Path:
        return Path(self.config_dir) if self.config_dir else Path.cwd()


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    errs = exc.errors(include_input=False, include_url=False)
    first = errs[0]
    msg = first["msg"].removeprefix("Value error, ")
    loc = _loc(tuple(first["loc"]))
    # A list validator names the element it refuses ("[1].address: ..."):
    # fold that into the path so the field reads chains[0].wallets[1].address.
    sub = re.match(r"^(\[\d+\](?:\.\w+)*): (.*)$", msg, re.DOTALL)
    if sub:
        loc, msg = loc + sub.group(1), sub.group(2)
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{source}: {loc}: {msg}{more}"


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate; raise ConfigError with one line naming file and field."""
    raw = path or os.environ.get("CHAINSETTLE_CONFIG")
    toml_path = Path(raw).expanduser().resolve() if raw else None
    token = _toml_path.set(toml_path)
    source = str(toml_path) if toml_path else "(no config file)"
    try:
        kwargs = {"config_dir": str(toml_path.parent)} if toml_path else {}
        settings = Settings(**kwargs)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    finally:
        _toml_path.reset(token)
    for i, chain in enumerate(settings.chains):
        for j, contract in enumerate(chain.contracts):
            try:
                abi = load_abi(contract.abi, settings.base_dir)
            except ConfigError as exc:
                raise ConfigError(f"{source}: chains[{i}].contracts[{j}].abi: {exc}") from None
            known = {e["name"] for e in abi if e.get("type") == "event"}
            for ev in contract.events or []:
                if ev not in known:
                    raise ConfigError(
                        f"{source}: chains[{i}].contracts[{j}].events: {ev!r} is not an event of ABI {contract.abi!r}"
                    )
            if contract.factory is not None:
                _check_factory(f"{source}: chains[{i}].contracts[{j}]", contract, abi, settings.base_dir)
    return settings


def _check_factory(where: str, contract: ContractConfig, abi: list[dict[str, Any]], base_dir: Path) -> None:
    f = contract.factory
    assert f is not None
    event = next((e for e in abi if e.get("type") == "event" and e.get("name") == f.event), None)
    if event is None:
        raise ConfigError(f"{where}.factory.event: {f.event!r} is not an event of ABI {contract.abi!r}")
    if contract.events is not None and f.event not in contract.events:
        raise ConfigError(f"{where}.factory.event: {f.event!r} must be among the contract's events")
    param = next((i for i in event.get("inputs", []) if i.get("name") == f.parameter), None)
    if param is None or param.get("type") != "address":
        raise ConfigError(f"{where}.factory.parameter: {f.event} has no address argument {f.parameter!r}")
    try:
        child = load_abi(f.child_abi, base_dir)
    except ConfigError as exc:
        raise ConfigError(f"{where}.factory.child_abi: {exc}") from None
    names = {e["name"] for e in child if e.get("type") == "event"}
    for ev in f.child_events or []:
        if ev not in names:
            raise ConfigError(f"{where}.factory.child_events: {ev!r} is not an event of ABI {f.child_abi!r}")


def load_abi(ref: str, base_dir: Path | None = None) -> list[dict[str, Any]]:
    """A builtin ABI name (see config/abis) or a path to an ABI JSON file.

    Accepts a bare ABI list or an artifact object with an "abi" key.
    """
    if re.fullmatch(r"[a-z0-9_]+", ref):
        path = BUILTIN_ABI_DIR / f"{ref}.json"
        if not path.exists():
            builtins = sorted(p.stem for p in BUILTIN_ABI_DIR.glob("*.json"))
            raise ConfigError(f"unknown builtin ABI {ref!r}; builtins: {', '.join(builtins)}; or give a path to a .json file")
    else:
        path = Path(ref).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read ABI file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"ABI file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "abi" in data:
        data = data["abi"]
    if not isinstance(data, list):
        raise ConfigError(f"ABI file {path} must hold a JSON list (or an object with an 'abi' list)")
    return data
