"""Short-lived session tokens: compact JWS with HS256 (RFC 7515/7519), the key a configured secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson

from config import Secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(key: Secret, claims: dict) -> str:
    head = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    body = _b64(orjson.dumps(claims))
    mac = hmac.new(key.reveal().encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def verify_token(key: Secret, token: str, *, now: float | None = None) -> dict | None:
    """The claims of a token this key signed and that has not expired; None otherwise."""
    try:
        head, body, mac = token.split(".")
        want = hmac.new(key.reveal().encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, _unb64(mac)):
            return None
        if orjson.loads(_unb64(head)).get("alg") != "HS256":
            return None
        claims = orjson.loads(_unb64(body))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or claims.get("exp", 0) <= (time.time() if now is None else now):
        return None
    return claims
