"""The `chainsettle` command: bad configs are one stderr line and exit 2; check-config hides secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.config.test_config import BAD_CONFIGS, CHAIN, CONTRACT

ROOT = Path(__file__).resolve().parents[3]


def chainsettle(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_") and k != "DATABASE_URL"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=60)


CLI_CASES = {c[0]: c for c in BAD_CONFIGS if c[0] in ("unknown preset", "bad address", "missing rpc", "wrong type",
                                                       "unknown chain key", "bad TOML", "unknown event", "unknown builtin abi")}


# Every command loads the config the same way: all cases for check-config, two for the others.
CLI_PARAMS = [(c, ["check-config"]) for c in sorted(CLI_CASES)] + [
    ("unknown preset", ["index", "--chain", "local"]), ("bad TOML", ["run"]), ("unknown event", ["migrate"])]


@pytest.mark.parametrize("case,command", CLI_PARAMS, ids=[f"{c}-{cmd[0]}" for c, cmd in CLI_PARAMS])
def test_bad_config_one_line_exit_2(tmp_path, case, command):
    _, text, names = CLI_CASES[case]
    path = tmp_path / "chainsettle.toml"
    path.write_text(text)
    out = chainsettle("--config", str(path), *command)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"config error: {path}: ")
    assert names in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_missing_config_file_and_unknown_chain(tmp_path):
    out = chainsettle("--config", str(tmp_path / "nope.toml"), "check-config")
    assert (out.returncode, out.stderr) == (2, f"config error: {tmp_path / 'nope.toml'}: config file not found\n")
    path = tmp_path / "chainsettle.toml"
    path.write_text(CHAIN)
    out = chainsettle("--config", str(path), "index", "--chain", "mainnet")
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["config error: chains: no chain named 'mainnet' (have: local)"]


def test_check_config_masks_secrets(tmp_path):
    secrets = ["APIKEY-IN-PATH-123", "QUERYKEY-456", "WS-KEY-789", "USERINFO-PASS", "pw-HUNTER2", "literal-admin-token-XYZ"]
    path = tmp_path / "chainsettle.toml"
    path.write_text(
        '[database]\nurl = "postgresql://app:pw-HUNTER2@db.internal:5432/chainsettle"\n'
        '[api]\nadmin_token = "literal-admin-token-XYZ"\n'
        '[[chains]]\nname = "flare"\npreset = "flare"\n'
        'rpc = ["https://flare.example.com/ext/bc/C/rpc/APIKEY-IN-PATH-123", "https://rpc.example.org/?apikey=QUERYKEY-456",'
        ' "https://user:USERINFO-PASS@node.example.net:8545"]\n'
        'ws = "wss://flare.example.com/ws/WS-KEY-789"\n'
        + CONTRACT
    )
    out = chainsettle("--config", str(path), "check-config")
    assert out.returncode == 0, out.stderr
    for s in secrets:
        assert s not in out.stdout and s not in out.stderr
    shown = json.loads(out.stdout)
    chain = shown["chains"][0]
    # Where each endpoint points stays visible; what identifies the account does not.
    assert chain["rpc"] == ["https://flare.example.com/***", "https://rpc.example.org/***", "https://node.example.net:8545/***"]
    assert chain["ws"] == "wss://flare.example.com/***"
    assert shown["database"]["url"] == "postgresql://db.internal:5432/***"
    assert shown["api"]["admin_token"] == "***"


def test_check_config_masks_database_url_from_the_environment(tmp_path):
    path = tmp_path / "chainsettle.toml"
    path.write_text(CHAIN)
    out = chainsettle("--config", str(path), "check-config", env={"DATABASE_URL": "postgresql://u:ENV-PASSWORD@h/db"})
    assert out.returncode == 0, out.stderr
    assert "ENV-PASSWORD" not in out.stdout
    assert json.loads(out.stdout)["database"]["url"] == "postgresql://h/***"
