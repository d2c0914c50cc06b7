"""Sign-in messages (pure): EIP-4361 for EVM accounts, the same layout for XRPL.

EIP-4361 (https://eips.ethereum.org/EIPS/eip-4361), version 1:

    ${domain} wants you to sign in with your Ethereum account:
    ${address}

    ${statement}

    URI: ${uri}
    Version: 1
    Chain ID: ${chain-id}
    Nonce: ${nonce}
    Issued At: ${issued-at}
    Expiration Time: ${expiration-time}
    [Not Before: ..., Request ID: ..., Resources: ...]

The address is EIP-55 checksummed; times are RFC 3339; without a statement
the address is followed by two blank lines (the ABNF's `LF [statement LF] LF`);
an optional `scheme://` before the domain is accepted. The XRPL challenge
uses the same lines with "your XRPL account", a classic address and
"Network ID" for the chain id, so one parser serves both.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from config import ChainsettleError

_MESSAGE = re.compile(
    r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?"
    r"(?P<domain>[^\s/]+) wants you to sign in with your (?P<kind>Ethereum|XRPL) account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40}|r[1-9A-HJ-NP-Za-km-z]{24,34})\n"
    r"\n(?:(?P<statement>[^\n]+)\n)?\n"
    r"URI: (?P<uri>\S+)\n"
    r"Version: (?P<version>1)\n"
    r"(?:Chain|Network) ID: (?P<chain_id>[0-9]{1,19})\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{8,64})\n"
    r"Issued At: (?P<issued_at>\S+)"
    r"(?:\nExpiration Time: (?P<expiration_time>\S+))?"
    r"(?:\nNot Before: (?P<not_before>\S+))?"
    r"(?:\nRequest ID: (?P<request_id>[^\n]*))?"
    r"(?:\nResources:(?P<resources>(?:\n- \S+)+))?\Z"
)


class SigninRefused(ChainsettleError):
    """sign-in refused"""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message


@dataclass(frozen=True)
class SigninMessage:
    domain: str
    kind: str  # "siwe" | "xrpl"
    address: str
    statement: str | None
    uri: str
    chain_id: int
    nonce: str
    issued_at: dt.datetime
    expiration_time: dt.datetime | None
    not_before: dt.datetime | None


def _time(value: str | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SigninRefused("malformed", f"{field} is not an RFC 3339 time") from None
    if t.tzinfo is None:
        raise SigninRefused("malformed", f"{field} has no time zone")
    return t


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_message(*, kind: str, domain: str, address: str, statement: str | None, uri: str, chain_id: int,
                  nonce: str, issued_at: dt.datetime, expiration_time: dt.datetime) -> str:
    account = "Ethereum" if kind == "siwe" else "XRPL"
    id_line = "Chain ID" if kind == "siwe" else "Network ID"
    # ABNF: address LF LF [ statement LF ] LF "URI: " -- two blank lines when there is no statement.
    lines = [f"{domain} wants you to sign in with your {account} account:", address, ""]
    if statement:
        lines.append(statement)
    lines += ["", f"URI: {uri}", "Version: 1", f"{id_line}: {chain_id}", f"Nonce: {nonce}",
              f"Issued At: {rfc3339(issued_at)}", f"Expiration Time: {rfc3339(expiration_time)}"]
    return "\n".join(lines)


def parse_message(text: str) -> SigninMessage:
    m = _MESSAGE.match(text.replace("\r\n", "\n"))
    if m is None:
        raise SigninRefused("malformed", "not an EIP-4361 sign-in message")
    kind = "siwe" if m["kind"] == "Ethereum" else "xrpl"
    address = m["address"]
    if kind == "siwe":
        from eth_utils import is_checksum_address

        if not address.startswith("0x") or not is_checksum_address(address):
            raise SigninRefused("malformed", "the address must be EIP-55 checksummed")
    elif address.startswith("0x"):
        raise SigninRefused("malformed", "an XRPL sign-in needs a classic address")
    return SigninMessage(m["domain"], kind, address, m["statement"], m["uri"], int(m["chain_id"]), m["nonce"],
                         _time(m["issued_at"], "Issued At"), _time(m["expiration_time"], "Expiration Time"),
                         _time(m["not_before"], "Not Before"))


def check_times(msg: SigninMessage, now: dt.datetime, skew: dt.timedelta = dt.timedelta(seconds=60)) -> None:
    if msg.expiration_time is not None and msg.expiration_time <= now:
        raise SigninRefused("expired", "the message's Expiration Time has passed")
    if msg.not_before is not None and msg.not_before > now + skew:
        raise SigninRefused("not_yet_valid", "the message's Not Before is in the future")
    if msg.issued_at > now + skew:
        raise SigninRefused("malformed", "Issued At is in the future")


def recover_eoa(message: str, signature: str) -> str | None:
    """The address that signed `message` under EIP-191 personal_sign, lowercase; None if unreadable."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature).lower()
    except Exception:  # malformed signature bytes, bad v/r/s: simply not this signer
        return None


def eip191_hash(message: str) -> bytes:
    from eth_account.messages import _hash_eip191_message, encode_defunct

    return _hash_eip191_message(encode_defunct(text=message))


def xrpl_signature_ok(message: str, signature: str, public_key: str) -> bool:
    """`signature` (hex) by `public_key` over the message's UTF-8 bytes (whose key it is: see signin)."""
    from xrpl.core.keypairs import is_valid_message

    try:
        return is_valid_message(message.encode(), bytes.fromhex(signature), public_key)
    except Exception:  # malformed key or signature: not a valid signature
        return False


def xrpl_key_address(public_key: str) -> str | None:
    from xrpl.core.keypairs import derive_classic_address

    try:
        return derive_classic_address(public_key)
    except Exception:  # not a secp256k1 or ed25519 public key
        return None
