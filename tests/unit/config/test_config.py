"""A bad config is one line naming the file and the field, and never shows a secret."""

from __future__ import annotations

import os

import pytest

from config import ConfigError, load_settings

TOKEN = "0x" + "ab" * 20
CHAIN = '[[chains]]\nname = "local"\npreset = "anvil"\nrpc = ["http://127.0.0.1:8545"]\n'
CONTRACT = f'[[chains.contracts]]\nname = "Token"\naddress = "{TOKEN}"\n'

# (case, TOML text, what the one line must name)
BAD_CONFIGS = [
    ("unknown preset", CHAIN.replace('"anvil"', '"anvill"'), "chains[0].preset: unknown preset 'anvill'"),
    ("missing rpc", '[[chains]]\nname = "local"\npreset = "anvil"\n', "chains[0].rpc: Field required"),
    ("rpc not a list", CHAIN.replace('["http://127.0.0.1:8545"]', '"http://127.0.0.1:8545"'), "chains[0].rpc"),
    ("rpc not a URL", CHAIN.replace("http://127.0.0.1:8545", "127.0.0.1:8545"), "chains[0].rpc"),
    ("wrong type", CHAIN + 'finality_depth = "three"\n', "chains[0].finality_depth"),
    ("out of range", CHAIN + "request_timeout = -1\n", "chains[0].request_timeout"),
    ("bad enum", '[log]\nlevel = "loud"\n', "log.level"),
    ("unknown chain key", CHAIN + "bogus = 1\n", "chains[0].bogus: Extra inputs are not permitted"),
    ("unknown top-level key", "colour = 'blue'\n" + CHAIN, "colour: Extra inputs are not permitted"),
    ("unknown section key", '[database]\npool_size = 3\n', "database.pool_size"),
    ("bad chain name", CHAIN.replace('"local"', '"Local Chain"'), "chains[0].name"),
    ("duplicate chains", CHAIN + CHAIN, "chain names must be unique: local"),
    ("bad address", CHAIN + CONTRACT.replace(TOKEN, "0x1234"), "chains[0].contracts[0].address"),
    ("unknown event", CHAIN + CONTRACT + 'events = ["Transfr"]\n', "chains[0].contracts[0].events: 'Transfr' is not an event"),
    ("unknown builtin abi", CHAIN + CONTRACT + 'abi = "erc4626"\n', "chains[0].contracts[0].abi: unknown builtin ABI 'erc4626'"),
    ("missing abi file", CHAIN + CONTRACT + 'abi = "abis/nope.json"\n', "chains[0].contracts[0].abi: cannot read ABI file"),
    ("second chain", CHAIN + CHAIN.replace('"local"', '"other"').replace('"anvil"', '"nope"'), "chains[1].preset"),
    ("bad TOML", '[[chains]\nname = "local"\n', "not valid TOML: Expected ']]'"),
    ("bad TOML value", CHAIN + "max_attempts = \n", "not valid TOML"),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith("CHAINSETTLE_") or k == "DATABASE_URL":
            monkeypatch.delenv(k)


def error_for(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


@pytest.mark.parametrize("case,text,names", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_one_line_naming_file_and_field(tmp_path, case, text, names):
    path = tmp_path / "chainsettle.toml"
    path.write_text(text)
    msg = error_for(path)
    assert msg.startswith(f"{path}: ")
    assert names in msg
    assert "\n" not in msg


def test_missing_file_unreadable_file_and_bad_encoding(tmp_path):
    assert error_for(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: config file not found"
    (tmp_path / "dir.toml").mkdir()
    assert error_for(tmp_path / "dir.toml").startswith(f"{tmp_path / 'dir.toml'}: cannot read config file")
    (tmp_path / "latin1.toml").write_bytes(CHAIN.encode() + b"# caf\xe9\n")
    assert "not UTF-8" in error_for(tmp_path / "latin1.toml")


def test_environment_overrides_are_validated_too(tmp_path, monkeypatch):
    path = tmp_path / "chainsettle.toml"
    path.write_text(CHAIN)
    monkeypatch.setenv("CHAINSETTLE_LOG__LEVEL", "loud")
    assert "log.level" in error_for(path)


def test_errors_do_not_repeat_secret_values(tmp_path):
    path = tmp_path / "chainsettle.toml"
    path.write_text(
        '[database]\nurl = "postgresql://app:pw-HUNTER2@db/x"\npool_min = 0\n'
        + CHAIN.replace("http://127.0.0.1:8545", "htps://eth.example.com/v3/KEY-SECRET-123")
    )
    msg = error_for(path)
    assert "HUNTER2" not in msg and "KEY-SECRET-123" not in msg
    assert "(and 1 more)" in msg


def test_a_good_config_loads_with_defaults_from_the_preset(tmp_path):
    path = tmp_path / "chainsettle.toml"
    path.write_text(CHAIN + CONTRACT + 'events = ["Transfer"]\nstart_block = 7\n')
    s = load_settings(path)
    (c,) = s.chains
    assert (c.kind, c.effective_chain_id, c.effective_start_block) == ("evm", 31337, 7)
    assert c.contracts[0].address == TOKEN
    assert s.base_dir == tmp_path
