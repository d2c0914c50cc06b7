"""[[deliveries]] validation names the field; message ids, keys, stages and bodies are stable."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from config import ConfigError, load_settings
from config.section_deliveries import DeliverySettings
from delivery.fanout import Filter, Subscription
from delivery.messages import PositionError, format_position, from_event, from_outbox, parse_position
from delivery.ssrf import TargetRefused, address_allowed, check_url

AT = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("body,field", [
    ('id = "Bad"\nsink = "webhook"\nurl = "https://x.example/h"\nsecrets = ["env:X"]', "deliveries[0].id"),
    ('id = "a"\nsink = "webhook"\nurl = "https://x.example/h"', "secrets"),
    ('id = "a"\nsink = "redis"\nurl = "redis://127.0.0.1"', "stream"),
    ('id = "a"\nsink = "webhook"\nurl = "ftp://x"\nsecrets = ["env:X"]', "url"),
    ('id = "a"\nsink = "kafka"\nurl = "https://x"', "deliveries[0].sink"),
    ('id = "a"\nsink = "webhook"\nurl = "https://x.example/h"\nsecrets = ["env:X"]\nordering = "fifo"',
     "deliveries[0].ordering"),
])
def test_bad_subscriptions_name_the_field(tmp_path, body, field):
    path = tmp_path / "c.toml"
    path.write_text("[[deliveries]]\n" + body + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert field in str(err.value)


def test_duplicate_ids_and_bad_cidr(tmp_path):
    path = tmp_path / "c.toml"
    sub = '[[deliveries]]\nid = "a"\nsink = "redis"\nurl = "redis://h"\nstream = "s"\n'
    path.write_text(sub + sub)
    with pytest.raises(ConfigError, match="ids must be unique: a"):
        load_settings(path)
    path.write_text('[delivery]\nallow_private = ["10.0.0.0/33"]\n')
    with pytest.raises(ConfigError, match=r"delivery.allow_private\[0\]"):
        load_settings(path)


def event_row(**kw):
    row = {"tx": "900", "id": 7, "chain": "bsc", "block_number": 5, "block_hash": "0xb", "tx_hash": "0xt",
           "tx_index": 0, "log_index": 2, "address": "0xAA", "event": "Transfer",
           "args": {"to": "0x" + "cd" * 20, "value": "10"}, "at": AT}
    row.update(kw)
    return row


def test_event_message_ids_keys_and_stable_body():
    m = from_event(event_row())
    assert (m.msg_id, m.event_id, m.type, m.key) == ("ev_bsc_7_observed", "ev_bsc_7", "chain_event.observed", "bsc:0xaa")
    assert format_position(m.position) == "900.7"
    assert m.body() == from_event(event_row()).body()             # the same bytes every time
    doc = orjson.loads(m.body())
    assert doc["cursor"] == "900.7" and doc["data"]["args"]["value"] == "10"
    assert "user:bsc:0x" + "cd" * 20 in m.accounts


def test_outbox_kinds_unknown_ones_included():
    rec = {"tx": "5", "id": 3, "kind": "reconciliation", "subject": "9", "chain": "bsc", "at": AT,
           "payload": {"status": "done", "mismatches": 2, "results": [{"account": "wallet:bsc:0x1"}]}}
    m = from_outbox(rec)
    assert (m.type, m.msg_id, format_position(m.position)) == ("reconciliation.mismatch", "fo_3", "5.o3")
    new = from_outbox({**rec, "kind": "invoice", "payload": {"state": "paid"}})
    assert new.type == "invoice.paid" and new.key == "invoice:9"


def test_filters_and_finality():
    obs = from_event(event_row())
    sub = Subscription("s", "webhook", "https://x", None, Filter.from_json({"contracts": ["0xaa"]}), "final",
                       "strict", "active")
    assert not sub.wants(obs)                                      # final mode: no observed stage
    sub.finality = "instant"
    assert sub.wants(obs)
    assert not Subscription("s", "webhook", "", None, Filter.from_json({"events": ["Approval"]}), "instant",
                            "strict", "active").wants(obs)
    assert Subscription("s", "webhook", "", None, Filter.from_json({"types": ["chain_event.observed"],
                                                                    "chains": ["bsc"]}), "instant",
                        "strict", "active").wants(obs)
    assert Subscription("s", "webhook", "", None, Filter.from_json({"accounts": ["0x" + "CD" * 20]}), "instant",
                        "strict", "active").wants(obs)


def test_positions_round_trip_and_refuse_garbage():
    for text in ("1.2", "7351.o12", "7351.d9", "7351.f1042"):
        assert format_position(parse_position(text)) == text
    for bad in ("", "1.x2", "1.", "99999999999999999999999.1"):
        with pytest.raises(PositionError):
            parse_position(bad)


def test_ssrf_static_checks():
    s = DeliverySettings()
    for url in ("http://example.com/h", "https://127.0.0.1/h", "https://10.0.0.1/h", "https://[::ffff:10.0.0.1]/h",
                "https://user:pw@example.com/h", "https://0.0.0.0/h", "http://[", "https://localhost/h"):
        with pytest.raises(TargetRefused):
            check_url(url, s)
    check_url("https://hooks.example.com/h", s)
    check_url("http://127.0.0.1:8000/h", DeliverySettings(allow_loopback=True))
    check_url("https://10.0.0.1/h", DeliverySettings(allow_private=["10.0.0.0/8"]))


def test_ssrf_only_globally_routable_addresses():
    """Shared address space (CGNAT), IETF protocol assignments, 6to4 and NAT64 of a private address were let
    through by the old denylist; only globally routable addresses pass now."""
    s = DeliverySettings()
    for ip in ("100.64.0.1", "100.127.255.254", "192.0.0.192", "192.0.0.8", "2002::1", "2002:7f00:1::1",
               "2002:a00:1::", "64:ff9b::a00:1", "198.18.0.1", "fc00::1", "fe80::1", "::"):
        assert address_allowed(ip, s) is not None, ip
        with pytest.raises(TargetRefused):
            check_url(f"https://{ip if '.' in ip else f'[{ip}]'}/h", s)
    for ip in ("8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"):
        assert address_allowed(ip, s) is None, ip
    assert address_allowed("100.64.0.1", DeliverySettings(allow_private=["100.64.0.0/10"])) is None


@pytest.mark.parametrize("kind,payload,stage", [
    ("payout", {"state": "pending", "previous_state": None}, "requested"),
    ("payout", {"state": "batched", "previous_state": "pending"}, "batched"),
    ("payout", {"state": "paid", "previous_state": "batched"}, "confirmed"),
    ("payout", {"state": "held", "previous_state": "pending"}, "held"),
    ("payout", {"state": "pending", "previous_state": "batched", "reason": "batch expired"}, "failed"),
    ("batch", {"state": "signed"}, "sent"),
    ("batch", {"state": "expired"}, "failed"),
    ("batch", {"state": "awaiting_approval"}, "awaiting_approval"),
    ("asset_pause", {"paused": False}, "resolved"),
])
def test_payout_lifecycle_stages(kind, payload, stage):
    from delivery.messages import outbox_stage
    assert outbox_stage(kind, payload) == stage
