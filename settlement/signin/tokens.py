"""Short-lived access tokens: JWTs (RFC 7519) signed HS256 with PyJWT, the keys configured secrets.

`sign_token` signs with the first key (`[invoices.signin] token_key`) and
names it in the header (`kid`: a digest of the key, never the key);
`verify_token` accepts any of the keys given (`previous_token_keys` during a
rotation), HS256 only, an `exp` in the future and a `sub`.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator, Sequence

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from config import Secret

ALGORITHM = "HS256"
LEEWAY = 0


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keys are configured secrets (32+ random bytes recommended, README); a shorter one
    is the operator's choice, not a warning per request."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        yield


def key_id(key: Secret) -> str:
    return hashlib.sha256(b"chainsettle-kid:" + key.reveal().encode()).hexdigest()[:16]


def _keys(key: Secret | Sequence[Secret]) -> list[Secret]:
    return [key] if isinstance(key, Secret) else list(key)


def sign_token(key: Secret | Sequence[Secret], claims: dict) -> str:
    signer = _keys(key)[0]
    with _quiet():
        return jwt.encode(claims, signer.reveal(), algorithm=ALGORITHM, headers={"kid": key_id(signer)})


def verify_token(key: Secret | Sequence[Secret], token: str, *, now: float | None = None) -> dict | None:
    """The claims of an unexpired token one of these keys signed; None otherwise."""
    keys = _keys(key)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    if header.get("alg") != ALGORITHM:
        return None
    kid = header.get("kid")
    # The key the header names first; a token without a kid (or an unknown one) tries every key.
    keys.sort(key=lambda k: key_id(k) != kid)
    options = {"require": ["exp", "sub"], "verify_exp": now is None}
    with _quiet():
        for k in keys:
            try:
                claims = jwt.decode(token, k.reveal(), algorithms=[ALGORITHM], options=options, leeway=LEEWAY)
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                return None
            if now is not None and claims["exp"] <= now:
                return None
            return claims if isinstance(claims, dict) else None
        return None
