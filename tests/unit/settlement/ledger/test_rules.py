"""Ledger configuration: validation names the field; defaults and compilation."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from settlement.ledger.rules import (
    asset_specs,
    check_ledger_config,
    compile_rules,
    default_rules,
    norm_template,
    wallet_specs,
)
from tests.support.config import make_settings, write_config

TOKEN = "0x" + "7" * 40
W = "0x" + "a1" * 20
XW = "rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe"
ISSUER = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"


def evm(**extra):
    chain = {"name": "e", "preset": "anvil", "rpc": ["http://127.0.0.1:1"],
             "contracts": [{"name": "Token", "address": TOKEN, "abi": "erc20"}],
             "wallets": [{"name": "hot", "address": W, "assets": ["Token", "native"]}]}
    chain.update(extra)
    return chain


def xrpl(**extra):
    chain = {"name": "x", "preset": "xrpl-testnet", "rpc": ["http://127.0.0.1:2"],
             "wallets": [{"name": "xw", "address": XW, "assets": ["native", "USD"]}]}
    chain.update(extra)
    return chain


USD = {"chain": "x", "name": "USD", "currency": "USD", "issuer": ISSUER, "decimals": 6}


def test_assets_wallets_and_default_rules(tmp_path):
    s = make_settings(tmp_path, {"chains": [evm(), xrpl()], "ledger": {"assets": [USD]}})
    check_ledger_config(s)
    assets = {a.id: a for a in asset_specs(s)}
    assert assets["e:Token"].contract == TOKEN and assets["e:Token"].kind == "erc20"
    assert assets["e:native"].decimals == 18 and assets["x:native"].decimals == 6
    assert (assets["x:USD"].currency, assets["x:USD"].issuer, assets["x:USD"].decimals) == ("USD", ISSUER, 6)
    assert [(w.chain, w.account_code, w.asset_ids) for w in wallet_specs(s)] == [
        ("e", f"wallet:e:{W}", ("e:Token", "e:native")), ("x", f"wallet:x:{XW}", ("x:native", "x:USD"))]
    names = sorted(r.name for r in default_rules(s))
    assert names == ["e.Token.deposit", "e.Token.internal", "e.native.deposit", "e.native.fee", "e.native.internal",
                     "x.deposit", "x.fee", "x.internal"]
    compiled = {r["name"]: r for r in compile_rules(s, "e")}
    dep = compiled["e.Token.deposit"]
    assert dep["source"] == TOKEN and dep["event"] == "Transfer" and dep["asset_mode"] == "contract"
    assert dep["wallet_path"] == ["args", "to"] and dep["cp_is_wallet"] is False
    assert dep["credit"] == ["user:{chain}:{args.from}"] and dep["debit"] == ["{wallet}"]
    fee = compiled["e.native.fee"]
    assert (fee["source"], fee["asset_mode"], fee["asset_id"], fee["amount_path"]) == ("native", "fixed", "e:native", ["args", "fee"])
    x = {r["name"]: r for r in compile_rules(s, "x")}
    assert x["x.deposit"]["asset_mode"] == "xrpl" and x["x.deposit"]["source"] is None
    assert x["x.deposit"]["wallet_path"] == ["address"]
    assert {"path": ["args", "direction"], "value": "in", "ref": None} in x["x.deposit"]["conds"]
    assert x["x.fee"]["event"] is None


def test_explicit_rule_replaces_default_of_same_name_and_defaults_can_be_off(tmp_path):
    rule = {"name": "e.Token.deposit", "chain": "e", "source": "Token", "event": "Transfer", "wallet": "to",
            "debit": "{wallet}", "credit": "external:{chain}:{from}"}
    s = make_settings(tmp_path, {"chains": [evm()], "ledger": {"rules": [rule]}})
    compiled = {r["name"]: r for r in compile_rules(s, "e")}
    assert compiled["e.Token.deposit"]["credit"] == ["external:{chain}:{args.from}"]
    assert "e.Token.internal" in compiled
    s = make_settings(tmp_path, {"chains": [evm()], "ledger": {"default_rules": False, "rules": [rule]}})
    assert [r["name"] for r in compile_rules(s, "e")] == ["e.Token.deposit"]


def test_templates_keep_reserved_roots_and_prefix_arguments():
    assert norm_template("user:{chain}:tag:{DestinationTag}") == "user:{chain}:tag:{args.DestinationTag}"
    assert norm_template("{wallet}") == "{wallet}"
    assert norm_template("external:{chain}:{args.to}:{meta.x}") == "external:{chain}:{args.to}:{args.meta.x}"


@pytest.mark.parametrize("data, field", [
    ({"chains": [evm(wallets=[{"name": "w", "address": W, "assets": ["Nope"]}])]}, "chains[0].wallets[0].assets"),
    ({"chains": [xrpl(wallets=[{"name": "w", "address": "0x" + "1" * 40}])]}, "chains[0].wallets[0].address"),
    ({"chains": [xrpl()]}, "chains[0].wallets[0].assets"),  # USD not configured
    ({"chains": [evm()], "ledger": {"assets": [dict(USD, chain="e")]}}, "ledger.assets[0].currency"),
    ({"chains": [evm()], "ledger": {"assets": [{"chain": "nope", "name": "native"}]}}, "ledger.assets[0].chain"),
    ({"chains": [evm()], "ledger": {"rules": [{"name": "r", "chain": "e", "source": "Other", "event": "Transfer",
                                               "wallet": "to", "debit": "{wallet}", "credit": "user:{chain}:{from}"}]}},
     "ledger.rules[0].source"),
    ({"chains": [evm()], "ledger": {"rules": [{"name": "r", "chain": "e", "source": "Token", "event": "Mint",
                                               "wallet": "to", "debit": "{wallet}", "credit": "user:{chain}:{from}"}]}},
     "ledger.rules[0].event"),
    ({"chains": [evm()], "ledger": {"rules": [{"name": "r", "chain": "e", "source": "Token", "event": "Transfer",
                                               "wallet": "to", "asset": "Other", "debit": "{wallet}",
                                               "credit": "user:{chain}:{from}"}]}}, "ledger.rules[0].asset"),
])
def test_cross_section_errors_name_the_field(tmp_path, data, field):
    # Some are caught when the config loads, the rest by the cross-section check.
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        check_ledger_config(make_settings(tmp_path, data))


@pytest.mark.parametrize("rule, message", [
    ({"debit": "bank:{x}"}, "account template"),
    ({"debit": "{wallet}", "credit": "user:{bad path}"}, "dotted path"),
    ({"credit": "{counterparty_wallet}"}, "counterparty_is_wallet = true"),
    ({"counterparty_is_wallet": True}, "needs counterparty"),
    ({"asset": "{a}{b}"}, "templated asset"),
])
def test_rule_shape_errors_are_config_errors_naming_the_rule(tmp_path, rule, message):
    base = {"name": "r", "chain": "e", "source": "Token", "event": "Transfer", "wallet": "to",
            "debit": "{wallet}", "credit": "user:{chain}:{from}"}
    with pytest.raises(ConfigError, match=r"ledger\.rules\[0\].*" + message):
        make_settings(tmp_path, {"chains": [evm()], "ledger": {"rules": [dict(base, **rule)]}})


def with_tolerances(tmp_path, table: str):
    # Asset ids contain ':', so the keys are quoted TOML by hand.
    path = write_config(tmp_path / "c.toml", {"chains": [evm()]})
    path.write_text(path.read_text() + "[reconcile]\ntolerance = 3\n[reconcile.tolerances]\n" + table)
    return load_settings(path)


def test_tolerances_accept_big_integers_as_text(tmp_path):
    s = with_tolerances(tmp_path, f'"e:native" = "{10**30}"\n')
    check_ledger_config(s)
    assert s.reconcile.tolerance_for("e:native") == 10**30
    assert s.reconcile.tolerance_for("e:Token") == 3


def test_tolerance_of_unknown_asset_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"reconcile\.tolerances: 'e:Nope'"):
        check_ledger_config(with_tolerances(tmp_path, '"e:Nope" = 5\n'))
    with pytest.raises(ConfigError, match=r"reconcile\.tolerances.*asset ids"):
        with_tolerances(tmp_path, "native = 5\n")
