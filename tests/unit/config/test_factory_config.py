"""Factory and trace settings: accepted as documented, refused naming the field."""

from __future__ import annotations

import os

import pytest

from config import ConfigError, load_settings
from daemon.devchain import ARTIFACTS

FACTORY = "0x" + "ab" * 20
CHAIN = '[[chains]]\nname = "local"\npreset = "anvil"\nrpc = ["http://127.0.0.1:8545"]\n'


def contract(factory: str, events: str = "") -> str:
    return (f'[[chains.contracts]]\nname = "Rounds"\naddress = "{FACTORY}"\n'
            f'abi = "{ARTIFACTS / "TestRoundFactory.json"}"\n{events}factory = {factory}\n')


GOOD = f'{{ event = "RoundCreated", parameter = "round", child_abi = "{ARTIFACTS / "TestRound.json"}" }}'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith("CHAINSETTLE_") or k == "DATABASE_URL":
            monkeypatch.delenv(k)


def load(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path)


def test_a_factory_and_traces_as_documented(tmp_path):
    s = load(tmp_path, CHAIN + 'traces = "auto"\ntrace_blocks = "all"\n' + contract(GOOD))
    chain = s.chains[0]
    assert (chain.traces, chain.trace_blocks) == ("auto", "all")
    f = chain.contracts[0].factory
    assert (f.event, f.parameter, f.child_events) == ("RoundCreated", "round", None)
    assert load(tmp_path, CHAIN).chains[0].traces == "off"


@pytest.mark.parametrize(("factory", "events", "field"), [
    (GOOD.replace("RoundCreated", "RoundMade"), "", "factory.event: 'RoundMade' is not an event"),
    (GOOD.replace('"round"', '"number"'), "", "factory.parameter: RoundCreated has no address argument 'number'"),
    (GOOD.replace(" }", ', child_events = ["Nope"] }'), "", "factory.child_events: 'Nope' is not an event"),
    (GOOD.replace("TestRound.json", "Missing.json"), "", "factory.child_abi: cannot read ABI file"),
    (GOOD, 'events = ["RoundCreated"]\n', None),
    (GOOD, 'events = []\n', "factory.event: 'RoundCreated' must be among the contract's events"),
])
def test_bad_factory_is_one_line_naming_the_field(tmp_path, factory, events, field):
    text = CHAIN + contract(factory, events)
    if field is None:
        load(tmp_path, text)
        return
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert f"chains[0].contracts[0].{field}" in str(info.value)


def test_traces_refused_on_xrpl_and_unknown_methods(tmp_path):
    xrpl = '[[chains]]\nname = "x"\npreset = "xrpl"\nrpc = ["wss://s.altnet.rippletest.net:51233"]\ntraces = "auto"\n'
    with pytest.raises(ConfigError, match="traces"):
        load(tmp_path, xrpl)
    with pytest.raises(ConfigError, match=r"chains\[0\].traces"):
        load(tmp_path, CHAIN + 'traces = "geth"\n')
