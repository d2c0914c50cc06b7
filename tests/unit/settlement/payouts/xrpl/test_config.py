"""XRPL payout config: the seed stays a reference and never shows; pure decisions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.section_payouts import PayoutSettings, XrplPayoutChainConfig
from config.settings import format_validation_error
from settlement.payouts.xrpl.config import HotWallet, XrplAsset
from settlement.payouts.xrpl.sender import submit_action
from settlement.payouts.xrpl.worker import refusal

SEED = "snoPBrXtMeMyMHUVTgbuqAfg1SUTb"  # the public genesis seed of test networks


def test_seed_must_be_a_reference_and_is_not_echoed():
    with pytest.raises(ValidationError) as err:
        PayoutSettings(chains=[{"chain": "xr", "seed": SEED, "assets": [{"name": "native"}]}])
    text = format_validation_error("chainsettle.toml", err.value)  # how the daemon reports it
    assert "seed" in text and "env:NAME or file:PATH" in text and SEED not in text
    ps = PayoutSettings(chains=[{"chain": "xr", "seed": "env:X", "assets": [{"name": "native"}]}])
    assert isinstance(ps.chains[0], XrplPayoutChainConfig) and ps.chains[0].kind == "xrpl"


def test_hot_wallet_never_shows_its_seed(monkeypatch, tmp_path):
    monkeypatch.setenv("HOT_SEED_T", SEED)
    hot = HotWallet("env:HOT_SEED_T", "payouts.chains[0].seed")
    assert hot.address == "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
    assert SEED not in repr(hot) and SEED not in str(hot)
    bad = tmp_path / "seed"
    bad.write_text("not-a-seed-value")
    with pytest.raises(Exception) as err:
        HotWallet(f"file:{bad}", "payouts.chains[0].seed")
    assert "payouts.chains[0].seed" in str(err.value) and "not-a-seed-value" not in str(err.value)


def test_submit_results_only_tem_is_final():
    assert submit_action("temBAD_AMOUNT") == "refused"
    for r in ("tesSUCCESS", "tecDST_TAG_NEEDED", "terPRE_SEQ", "telINSUF_FEE_P", "tefPAST_SEQ", "tefMAX_LEDGER"):
        assert submit_action(r) == "pending"


def test_refusal_rules():
    xrp = XrplAsset("native")
    usd = XrplAsset("USD", "USD", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", 6)
    dest = {"flags": {"requireDestinationTag": True}, "Flags": 0}
    assert "RequireDest" in refusal(xrp, 5, None, dest, None, 1_000_000)
    assert refusal(xrp, 5, 7, dest, None, 1_000_000) is None
    assert "base reserve" in refusal(xrp, 999_999, None, None, None, 1_000_000)
    assert refusal(xrp, 1_000_000, None, None, None, 1_000_000) is None
    open_dest = {"flags": {}, "Flags": 0}
    assert "room for 1000000" in refusal(usd, 2_000_000, None, open_dest, {"limit": "3", "balance": "2"}, 1)
    assert refusal(usd, 1_000_000, None, open_dest, {"limit": "3", "balance": "2"}, 1) is None
    assert usd.amount(12_500_000) == {"currency": "USD", "issuer": usd.issuer, "value": "12.5"}
