"""LocalKeySigner: loads keys from secret references and keystores, signs
in the form PayoutBatcher accepts, and never lets the key out."""

from __future__ import annotations

import copy
import json
import os
import pickle
import traceback

import pytest
from eth_account import Account
from eth_utils import keccak

from config.errors import SecretError
from settlement.payouts.evm.signer import (
    SECP256K1_N,
    LocalKeySigner,
    Signer,
    SignerError,
    recover_address,
)

# anvil dev account #1: public, used only on local dev chains
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
KEY_HEX = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def leaks(text: str, *secrets: str) -> bool:
    low = text.lower()
    return any(s.lower().removeprefix("0x") in low for s in secrets)


def full_traceback(exc: BaseException) -> str:
    """What a logger's exc_info would print, chained exceptions included."""
    return "".join(traceback.format_exception(exc))


def test_from_env_reference(monkeypatch):
    monkeypatch.setenv("CS_TEST_SIGNER_KEY", "0x" + KEY_HEX)
    signer = LocalKeySigner.from_ref("env:CS_TEST_SIGNER_KEY", "payouts.signer.key")
    assert signer.address == ADDRESS
    assert signer.source == "env:CS_TEST_SIGNER_KEY"
    assert isinstance(signer, Signer)


def test_from_file_reference_without_prefix(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY_HEX.upper() + "\n")
    signer = LocalKeySigner.from_ref(f"file:{path}", "payouts.signer.key")
    assert signer.address == ADDRESS


def test_repr_str_and_pickling_never_show_the_key(monkeypatch):
    monkeypatch.setenv("CS_TEST_SIGNER_KEY", KEY_HEX)
    signer = LocalKeySigner.from_ref("env:CS_TEST_SIGNER_KEY", "payouts.signer.key")
    for text in (repr(signer), str(signer), f"{signer}", repr([signer]), repr({"s": signer})):
        assert ADDRESS in text
        assert not leaks(text, KEY_HEX)
    with pytest.raises(TypeError) as err:
        pickle.dumps(signer)
    assert not leaks(str(err.value), KEY_HEX)
    with pytest.raises(TypeError):
        copy.deepcopy(signer)
    assert not hasattr(signer, "__dict__")


def test_a_literal_key_in_the_config_is_refused():
    with pytest.raises(SignerError) as err:
        LocalKeySigner.from_ref("0x" + KEY_HEX, "payouts.signer.key")
    assert "payouts.signer.key" in str(err.value)
    assert not leaks(str(err.value), KEY_HEX)


def test_missing_reference_names_the_field(monkeypatch):
    monkeypatch.delenv("CS_TEST_NOT_SET", raising=False)
    with pytest.raises(SecretError, match="payouts.signer.key: environment variable CS_TEST_NOT_SET"):
        LocalKeySigner.from_ref("env:CS_TEST_NOT_SET", "payouts.signer.key")


@pytest.mark.parametrize(
    "bad",
    [
        KEY_HEX[:-2] + "zz",  # not hex
        KEY_HEX[:-2],  # too short
        KEY_HEX + "00",  # too long
        "00" * 32,  # zero
        f"{SECP256K1_N:064x}",  # the group order
        "ff" * 32,  # above it
    ],
)
def test_bad_keys_are_refused_without_quoting_them(monkeypatch, bad):
    monkeypatch.setenv("CS_TEST_SIGNER_KEY", bad)
    with pytest.raises(SignerError) as err:
        LocalKeySigner.from_ref("env:CS_TEST_SIGNER_KEY", "payouts.signer.key")
    assert str(err.value).startswith("payouts.signer.key: ")
    assert not leaks(full_traceback(err.value), bad)


def _keystore(tmp_path, password: str):
    path = tmp_path / "signer.json"
    # pbkdf2 with few rounds keeps the test fast; decrypt reads the parameters from the file.
    path.write_text(json.dumps(Account.encrypt(bytes.fromhex(KEY_HEX), password, kdf="pbkdf2", iterations=16)))
    return path


def test_from_encrypted_keystore(tmp_path, monkeypatch):
    password = "correct horse battery staple"
    path = _keystore(tmp_path, password)
    monkeypatch.setenv("CS_TEST_KEYSTORE_PW", password)
    signer = LocalKeySigner.from_keystore(path, "env:CS_TEST_KEYSTORE_PW", "payouts.signer")
    assert signer.address == ADDRESS
    assert signer.source == f"keystore:{path}"
    assert not leaks(repr(signer), KEY_HEX, password)


def test_keystore_errors_name_the_field_and_leak_nothing(tmp_path, monkeypatch):
    password = "correct horse battery staple"
    path = _keystore(tmp_path, password)
    monkeypatch.setenv("CS_TEST_KEYSTORE_PW", "wrong " + password)
    with pytest.raises(SignerError) as err:
        LocalKeySigner.from_keystore(path, "env:CS_TEST_KEYSTORE_PW", "payouts.signer")
    assert str(err.value).startswith("payouts.signer: cannot decrypt keystore")
    assert not leaks(full_traceback(err.value), KEY_HEX, password)

    with pytest.raises(SignerError, match="payouts.signer: cannot read keystore"):
        LocalKeySigner.from_keystore(tmp_path / "missing.json", "env:CS_TEST_KEYSTORE_PW", "payouts.signer")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    with pytest.raises(SignerError, match="payouts.signer: keystore .* is not JSON"):
        LocalKeySigner.from_keystore(garbage, "env:CS_TEST_KEYSTORE_PW", "payouts.signer")
    with pytest.raises(SignerError, match="payouts.signer.password: must be a reference"):
        LocalKeySigner.from_keystore(path, password, "payouts.signer")


def test_signatures_recover_to_the_address_with_low_s():
    signer = LocalKeySigner(bytes.fromhex(KEY_HEX))
    for i in range(40):
        digest = keccak(os.urandom(32) + bytes([i]))
        sig = signer.sign_hash(digest)
        assert len(sig) == 65 and sig[64] in (27, 28)
        assert int.from_bytes(sig[32:64], "big") <= SECP256K1_N // 2
        assert Account._recover_hash(digest, signature=sig) == ADDRESS
        assert recover_address(digest, sig) == ADDRESS
    # Deterministic (RFC 6979): re-signing gives the same bytes.
    assert signer.sign_hash(digest) == sig


def test_sign_hash_refuses_anything_but_32_bytes():
    signer = LocalKeySigner(bytes.fromhex(KEY_HEX))
    for bad in (b"", b"\x01" * 31, b"\x01" * 33, "00" * 32):
        with pytest.raises(SignerError, match="digest: must be exactly 32 bytes"):
            signer.sign_hash(bad)


def test_recover_address_rejects_malformed_signatures():
    digest = keccak(b"x")
    sig = LocalKeySigner(bytes.fromhex(KEY_HEX)).sign_hash(digest)
    for bad in (sig[:64], sig[:64] + b"\x00", sig + b"\x00"):
        with pytest.raises(SignerError, match="signature: must be 65 bytes"):
            recover_address(digest, bad)
    with pytest.raises(SignerError, match="does not recover"):
        recover_address(digest, b"\x00" * 64 + b"\x1b")
