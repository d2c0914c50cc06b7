"""Settings, chain presets, secrets and logging; imported by every package."""

from .errors import ChainsettleError, ConfigError, SecretError
from .presets import PRESETS, Preset
from .secrets import Secret, mask_url, resolve_secret
from .settings import (
    ChainConfig,
    ContractConfig,
    FactoryConfig,
    Settings,
    WalletConfig,
    load_abi,
    load_settings,
)

__all__ = [
    "PRESETS",
    "ChainConfig",
    "ChainsettleError",
    "ConfigError",
    "ContractConfig",
    "FactoryConfig",
    "Preset",
    "Secret",
    "SecretError",
    "Settings",
    "WalletConfig",
    "load_abi",
    "load_settings",
    "mask_url",
    "resolve_secret",
]
