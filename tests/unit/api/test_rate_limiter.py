"""Per-client rate limits: an IPv6 client is keyed on its /64, so rotating
through the addresses of its own prefix buys no fresh buckets."""

from __future__ import annotations

from types import SimpleNamespace

from api.middleware import RateLimiter, client_prefix


def request(remote: str, forwarded: str | None = None):
    return SimpleNamespace(remote=remote, headers={"X-Forwarded-For": forwarded} if forwarded else {})


def test_ipv6_clients_share_their_64():
    rl = RateLimiter(rate=0.001, burst=2)
    keys = {rl.client_key(request(f"2001:db8:1:2::{n:x}")) for n in range(1, 50)}
    assert keys == {"2001:db8:1:2::/64"}
    for n in range(2):
        assert rl.take(rl.client_key(request(f"2001:db8:1:2::{n + 1:x}")), 0.0) == 0
    assert rl.take(rl.client_key(request("2001:db8:1:2:ffff::9")), 0.0) > 0  # same /64: limited
    assert rl.take(rl.client_key(request("2001:db8:1:3::1")), 0.0) == 0  # another /64: its own bucket


def test_ipv4_and_forwarded_clients():
    assert client_prefix("203.0.113.7") == "203.0.113.7"
    assert client_prefix("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_prefix("fe80::1%eth0") == "fe80::/64"
    assert client_prefix("unknown") == "unknown"
    rl = RateLimiter(rate=1, burst=1, trusted_proxies=["10.0.0.0/8"])
    assert rl.client_key(request("10.0.0.1", "2001:db8::5, 10.0.0.2")) == "2001:db8::/64"
    assert rl.client_key(request("10.0.0.1", "198.51.100.4")) == "198.51.100.4"
