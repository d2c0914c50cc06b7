"""Write a real TOML config for a test and load it the way the daemon does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from config import Settings, load_settings


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)


def _table(name: str, d: dict, out: list[str], array: bool = False) -> None:
    out.append(f"[[{name}]]" if array else f"[{name}]")
    nested = []
    for k, v in d.items():
        if isinstance(v, dict):
            nested.append((k, v, False))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            nested.append((k, v, True))
        else:
            out.append(f"{_key(k)} = {_toml_value(v)}")
    for k, v, is_array in nested:
        if is_array:
            for item in v:
                _table(f"{name}.{k}", item, out, array=True)
        else:
            _table(f"{name}.{k}", v, out)


def to_toml(data: dict) -> str:
    out: list[str] = []
    for k, v in data.items():
        if isinstance(v, list):
            for item in v:
                _table(k, item, out, array=True)
        else:
            _table(k, v, out)
    return "\n".join(out) + "\n"


def write_config(path: Path, data: dict) -> Path:
    # Daemons started by tests serve their API on a free port, never a fixed one.
    data = {"api": {"listen": "127.0.0.1:0"}, **data}
    path.write_text(to_toml(data))
    return path


def make_settings(tmp_path: Path, data: dict) -> Settings:
    return load_settings(write_config(tmp_path / "chainsettle.toml", data))


def evm_chain(name: str, rpc: list[str] | str, token: str | None = None, **extra) -> dict:
    chain = {"name": name, "preset": "anvil", "rpc": [rpc] if isinstance(rpc, str) else rpc}
    chain.update(extra)
    if token:
        chain.setdefault("contracts", []).append({"name": "Token", "address": token, "abi": "erc20", "start_block": 0})
    return chain
