"""Sign-in messages and tokens (pure): EIP-4361 layout round trip, refusals, HS256 tokens."""

from __future__ import annotations

import datetime as dt

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from config import Secret
from settlement.signin.messages import SigninRefused, build_message, check_times, parse_message, recover_eoa
from settlement.signin.tokens import sign_token, verify_token

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
ACCT = Account.from_key("0x" + "11" * 32)


def message(**kw) -> str:
    args = dict(kind="siwe", domain="app.example", address=ACCT.address, statement="Sign in.",
                uri="https://app.example", chain_id=14, nonce="abcDEF123456", issued_at=NOW,
                expiration_time=NOW + dt.timedelta(minutes=5))
    args.update(kw)
    return build_message(**args)


def test_eip4361_layout_round_trips():
    text = message()
    assert text.splitlines() == [
        "app.example wants you to sign in with your Ethereum account:", ACCT.address, "", "Sign in.", "",
        "URI: https://app.example", "Version: 1", "Chain ID: 14", "Nonce: abcDEF123456",
        "Issued At: 2026-01-02T03:04:05Z", "Expiration Time: 2026-01-02T03:09:05Z",
    ]
    m = parse_message(text)
    assert (m.domain, m.address, m.chain_id, m.nonce, m.statement) == ("app.example", ACCT.address, 14,
                                                                       "abcDEF123456", "Sign in.")
    assert m.issued_at == NOW and m.expiration_time == NOW + dt.timedelta(minutes=5)
    bare = message(statement=None)
    assert f"{ACCT.address}\n\n\nURI: " in bare  # EIP-4361 ABNF: LF [ statement LF ] LF
    assert parse_message(bare).statement is None
    assert parse_message("https://" + text).domain == "app.example"
    x = parse_message(message(kind="xrpl", address="rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", chain_id=0))
    assert (x.kind, x.chain_id) == ("xrpl", 0)


@pytest.mark.parametrize("text,reason", [
    ("hello", "malformed"),
    (message().replace(ACCT.address, ACCT.address.lower()), "malformed"),  # not EIP-55
    (message().replace("Version: 1", "Version: 2"), "malformed"),
    (message() + "\nextra", "malformed"),
    (message().replace("2026-01-02T03:09:05Z", "tomorrow"), "malformed"),
])
def test_malformed_messages_are_refused(text, reason):
    with pytest.raises(SigninRefused) as e:
        parse_message(text)
    assert e.value.reason == reason


def test_times():
    m = parse_message(message())
    check_times(m, NOW + dt.timedelta(minutes=1))
    with pytest.raises(SigninRefused) as e:
        check_times(m, NOW + dt.timedelta(minutes=5))
    assert e.value.reason == "expired"


def test_recover_eoa():
    text = message()
    sig = ACCT.sign_message(encode_defunct(text=text)).signature.hex()
    assert recover_eoa(text, sig) == ACCT.address.lower()
    assert recover_eoa(text + " ", sig) != ACCT.address.lower()
    assert recover_eoa(text, "0x00") is None


def test_tokens():
    key = Secret("k" * 32, "test")
    tok = sign_token(key, {"sub": "0xab", "exp": 2_000_000_000})
    assert verify_token(key, tok, now=1_000_000_000)["sub"] == "0xab"
    assert verify_token(key, tok, now=2_000_000_001) is None
    assert verify_token(Secret("other", "test"), tok, now=1) is None
    head, body, mac = tok.split(".")
    assert verify_token(key, f"{head}.{body}x.{mac}", now=1) is None
    assert verify_token(key, "garbage", now=1) is None
