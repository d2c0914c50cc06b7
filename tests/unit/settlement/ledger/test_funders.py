"""[[ledger.funders]]: validation names the field; the deposit rules credit the funder's app account."""

from __future__ import annotations

import pytest

from config import ConfigError
from settlement.ledger.rules import check_ledger_config, compile_rules, default_rules, funder_accounts
from tests.support.config import make_settings

from .test_rules import ISSUER, USD, XW, W, evm, xrpl

FUNDER = "0x" + "F3" * 20
XFUNDER = ISSUER


def settings(tmp_path, funders):
    return make_settings(tmp_path, {"chains": [evm(), xrpl()], "ledger": {"assets": [USD], "funders": funders}})


def test_funders_credit_their_app_account_and_defund_back(tmp_path):
    s = settings(tmp_path, [{"chain": "e", "address": FUNDER, "account": "app:treasury"},
                            {"chain": "x", "address": XFUNDER, "account": "app:xrpl-float"}])
    check_ledger_config(s)
    assert funder_accounts(s, "e") == {FUNDER.lower(): "app:treasury"}
    assert funder_accounts(s, "x") == {XFUNDER: "app:xrpl-float"}
    names = sorted(r.name for r in default_rules(s))
    assert {"e.Token.defunding", "e.native.defunding", "x.defunding"} <= set(names)
    e = {r["name"]: r for r in compile_rules(s, "e")}
    dep = e["e.Token.deposit"]
    assert dep["credit"] == ["{funder}", "user:{chain}:{args.from}"] and dep["funders"] == {FUNDER.lower(): "app:treasury"}
    back = e["e.Token.defunding"]
    assert (back["wallet_path"], back["cp_path"], back["cp_is_funder"], back["cp_is_wallet"]) == (
        ["args", "from"], ["args", "to"], True, False)
    assert (back["debit"], back["credit"]) == (["{funder}"], ["{wallet}"])
    x = {r["name"]: r for r in compile_rules(s, "x")}
    assert x["x.deposit"]["credit"][0] == "{funder}"
    assert {"path": ["args", "direction"], "value": "out", "ref": None} in x["x.defunding"]["conds"]


def test_without_funders_the_rules_are_unchanged(tmp_path):
    s = settings(tmp_path, [])
    e = {r["name"]: r for r in compile_rules(s, "e")}
    assert e["e.Token.deposit"]["credit"] == ["user:{chain}:{args.from}"] and e["e.Token.deposit"]["funders"] == {}
    assert not any(n.endswith("defunding") for n in e)


@pytest.mark.parametrize(("funder", "message"), [
    ({"chain": "e", "address": "0x1234"}, r"ledger\.funders\[0\]\.address"),
    ({"chain": "e", "address": FUNDER, "account": "user:e:me"}, r"ledger\.funders\[0\]\.account.*app:<name>"),
    ({"chain": "e", "address": FUNDER, "account": "app:"}, r"ledger\.funders\[0\]\.account"),
    ({"chain": "e", "address": FUNDER, "extra": 1}, r"ledger\.funders\[0\]\.extra"),
])
def test_funder_shape_errors_name_the_field(tmp_path, funder, message):
    with pytest.raises(ConfigError, match=message):
        settings(tmp_path, [funder])


@pytest.mark.parametrize(("funder", "message"), [
    ({"chain": "nope", "address": FUNDER}, r"ledger\.funders\[0\]\.chain"),
    ({"chain": "x", "address": FUNDER}, r"ledger\.funders\[0\]\.address: not an XRPL"),
    ({"chain": "e", "address": XFUNDER}, r"ledger\.funders\[0\]\.address: not an EVM"),
    ({"chain": "e", "address": W.upper().replace("0X", "0x")}, r"ledger\.funders\[0\]\.address: a configured wallet"),
    ({"chain": "x", "address": XW}, r"ledger\.funders\[0\]\.address: a configured wallet"),
])
def test_funder_cross_section_errors_name_the_field(tmp_path, funder, message):
    with pytest.raises(ConfigError, match=message):
        check_ledger_config(settings(tmp_path, [funder]))


def test_a_rule_using_funder_needs_a_counterparty(tmp_path):
    rule = {"name": "r", "chain": "e", "source": "Token", "event": "Transfer", "wallet": "to",
            "debit": "{wallet}", "credit": ["{funder}", "user:{chain}:{from}"]}
    with pytest.raises(ConfigError, match=r"ledger\.rules\[0\].*\{funder\} needs counterparty"):
        make_settings(tmp_path, {"chains": [evm()], "ledger": {"rules": [rule]}})


def test_a_funder_listed_twice_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="funders listed twice: e:" + FUNDER.lower()):
        settings(tmp_path, [{"chain": "e", "address": FUNDER}, {"chain": "e", "address": FUNDER.lower()}])



async def test_a_payout_to_a_funder_is_refused_naming_to(tmp_path):
    from config import load_settings
    from settlement.payouts.requests import PayoutError, request_payout
    from tests.unit.settlement.payouts.test_plan import CONTRACT, _config, _payouts

    funder = '\n[[ledger.funders]]\nchain = "anvil"\naddress = "' + FUNDER + '"\n'
    s = load_settings(_config(tmp_path, _payouts() + funder, CONTRACT))
    with pytest.raises(PayoutError) as err:  # refused before any database access
        await request_payout(None, s, chain="anvil", asset="native", to=FUNDER.lower(), amount=5, key="k")
    assert err.value.field == "to" and "defunding" in err.value.reason
