"""Keys that sign payout batches, kept out of every repr, log line and error.

`Signer` is the port the payout pipeline signs through: a local key today, a
remote signer (KMS, HSM) later. `LocalKeySigner` holds a secp256k1 key read
from a secret reference (`env:NAME`, `file:PATH`) or an encrypted keystore
JSON file (geth / eth-account format) whose password is a secret reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

from eth_account import Account
from eth_keys import keys
from eth_utils import to_checksum_address

from config.errors import ChainsettleError
from config.secrets import Secret, resolve_secret

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SignerError(ChainsettleError):
    """payout signer error"""


@runtime_checkable
class Signer(Protocol):
    @property
    def address(self) -> str:
        """Checksummed address the signatures recover to."""
        ...

    def sign_hash(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest: 65 bytes r || s || v, low s, v in {27, 28}."""
        ...


class LocalKeySigner:
    """A private key in process memory; only `sign_hash` ever uses it."""

    __slots__ = ("_key", "_address", "source")

    def __init__(self, key: Secret | bytes, *, source: str = "literal", field: str = "signer") -> None:
        raw = key.reveal() if isinstance(key, Secret) else key
        if isinstance(key, Secret):
            source = key.source
        self._key = _parse_key(raw, field)
        self._address = to_checksum_address(keys.PrivateKey(self._key).public_key.to_address())
        self.source = source  # "env:NAME" / "file:PATH" / "keystore:PATH": safe to show

    @classmethod
    def from_ref(cls, ref: str, field: str) -> "LocalKeySigner":
        """From a secret reference holding the key as 64 hex digits (0x optional)."""
        return cls(_resolve(ref, field), field=field)

    @classmethod
    def from_keystore(cls, path: str | Path, password_ref: str, field: str) -> "LocalKeySigner":
        """From an encrypted keystore JSON file; the password is a secret reference."""
        path = Path(path).expanduser()
        try:
            keyfile = json.loads(path.read_text())
        except OSError as exc:
            raise SignerError(f"{field}: cannot read keystore {path}: {exc.strerror}") from None
        except ValueError:
            raise SignerError(f"{field}: keystore {path} is not JSON") from None
        password = _resolve(password_ref, f"{field}.password")
        try:
            key = bytes(Account.decrypt(keyfile, password.reveal()))
        except Exception:  # eth-keyfile raises ValueError/KeyError/TypeError; none may echo inputs
            raise SignerError(
                f"{field}: cannot decrypt keystore {path}: wrong password or not a keystore file"
            ) from None
        return cls(key, source=f"keystore:{path}", field=field)

    @property
    def address(self) -> str:
        return self._address

    def sign_hash(self, digest: bytes) -> bytes:
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
            raise SignerError("digest: must be exactly 32 bytes")
        # eth-keys signs deterministically (RFC 6979) and returns low s, the
        # only form PayoutBatcher accepts; the unit tests check both.
        sig = keys.PrivateKey(self._key).sign_msg_hash(bytes(digest))
        return sig.to_bytes()[:64] + bytes([sig.v + 27])

    def __repr__(self) -> str:
        return f"LocalKeySigner(address={self._address}, source={self.source})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("LocalKeySigner cannot be pickled: it holds a private key")


def _resolve(ref: str, field: str) -> Secret:
    # A literal would put the key (or its password) in the config file itself.
    if not ref.startswith(("env:", "file:")):
        raise SignerError(f"{field}: must be a reference, env:NAME or file:PATH, not a literal value")
    return resolve_secret(ref, field)


def _parse_key(raw: str | bytes, field: str) -> bytes:
    """Key bytes from hex text or raw bytes; errors never quote the input."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        if len(text) != 64:
            raise SignerError(f"{field}: private key must be 32 bytes (64 hex digits), got {len(text)} characters")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise SignerError(f"{field}: private key is not hexadecimal") from None
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != 32:
        raise SignerError(f"{field}: private key must be 32 bytes")
    # Checked here because eth-keys' own range error quotes the key.
    if not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
        raise SignerError(f"{field}: private key is out of range for secp256k1")
    return bytes(raw)


def recover_address(digest: bytes, signature: bytes) -> str:
    """The address that signed `digest`, or SignerError for a malformed signature."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise SignerError("signature: must be 65 bytes r || s || v with v in {27, 28}")
    try:
        sig = keys.Signature(signature[:64] + bytes([signature[64] - 27]))
        return to_checksum_address(sig.recover_public_key_from_msg_hash(digest).to_address())
    except Exception:  # eth-keys raises several types for garbage r/s
        raise SignerError("signature: does not recover to any address") from None
