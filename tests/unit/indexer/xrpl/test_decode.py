"""Decoding recorded mainnet transactions (tests/fixtures/xrpl) into event rows."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import orjson
import pytest
from xrpl.core.binarycodec import encode, encode_for_signing
from xrpl.core.keypairs import is_valid_message

from indexer.xrpl.decode import (
    XrplDecodeError,
    decode_args,
    decode_memos,
    event_rows,
    normalize_amount,
    normalize_entry,
    plain_decimal,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "xrpl"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def signed_transactions():
    """(file, tx dict) for every transaction in every fixture."""
    for path in sorted(FIXTURES.glob("*.json")):
        data = json.loads(path.read_text())
        body = data.get("result", data)
        if "ledger" in body:
            txs = body["ledger"]["transactions"]
        elif "transactions" in body:
            txs = [e["tx"] for e in body["transactions"]]
        else:
            txs = [body.get("tx_json", body)]
        for i, tx in enumerate(txs):
            yield pytest.param(tx, body.get("hash", tx.get("hash")), id=f"{path.stem}-{i}")


@pytest.mark.parametrize("tx,expected_hash", list(signed_transactions()))
def test_fixture_is_a_real_signed_transaction(tx, expected_hash):
    # Rebuild the signed blob from the JSON: its hash must be the recorded
    # one and the signature must verify, so the fixture was not edited.
    fields = {k: v for k, v in tx.items()
              if k not in {"hash", "date", "inLedger", "ledger_index", "meta", "metaData", "ctid", "validated", "DeliverMax"}}
    if "DeliverMax" in tx:
        fields.setdefault("Amount", tx["DeliverMax"])  # API v2 shows a Payment's Amount as DeliverMax
    blob = encode(fields)
    assert hashlib.sha512(bytes.fromhex("54584E00" + blob)).digest()[:32].hex().upper() == expected_hash
    assert is_valid_message(bytes.fromhex(encode_for_signing(fields)), bytes.fromhex(fields["TxnSignature"]),
                            fields["SigningPubKey"])


def test_iou_partial_payment_is_credited_with_what_it_delivered():
    entry = load("tx_partial_payment_iou_A0A074D1.json")
    with pytest.raises(XrplDecodeError, match="ledger_index"):
        normalize_entry(entry)  # the recording has no ledger fields; the caller must supply them
    raw = normalize_entry(entry, ledger_index=1, ledger_hash="AB" * 32)
    args = decode_args(raw, "rNNuQMuExCiEjeZ4h9JJnj5PSWypdMXDj4")
    assert args["direction"] == "in"
    assert args["counterparty"] == "rGFuMiw48HdbnrUbkRYuitXTmfrDBNTCnX"
    assert args["amount"] == {"currency": "USD", "issuer": "rvYAfWj5gh67oV6fW32ZzP3Aw4Eubs59B", "value": "10"}
    assert args["delivered_amount"] == {"currency": "USD", "issuer": "rvYAfWj5gh67oV6fW32ZzP3Aw4Eubs59B",
                                        "value": "9.980039920159681"}
    assert args["partial_payment"] is True
    assert args["status"] == "success" and args["result"] == "tesSUCCESS"
    assert args["fee"] == "10000" and args["sequence"] == "23295"


def test_cross_currency_partial_payment_delivers_drops():
    raw = normalize_entry(load("tx_partial_payment_xrp_E788964F.json"))
    assert raw.ledger_index == 63810536 and raw.index == 4 and raw.ledger_hash is None
    args = decode_args(raw, "rPdvC6ccq8hCdPKSPJkPmyZ4Mi1oG2FFkT")
    assert args["amount"] == "100000000"
    assert args["delivered_amount"] == "52945"
    assert args["delivered_source"] == "meta"
    assert args["send_max"] == {"currency": "USD", "issuer": "rhub8VRN55s94qWKDv6jmDy1pUykJzF3wq", "value": "0.05"}
    out = decode_args(raw, "rQHYSEyxX3GKK3F6sXRvdd2NHhUqaxtC6F")
    assert out["direction"] == "out" and out["role"] == "sender"
    assert out["counterparty"] == "rPdvC6ccq8hCdPKSPJkPmyZ4Mi1oG2FFkT"


def test_old_iou_payment_with_unavailable_delivered_amount():
    raw = normalize_entry(load("tx_iou_payment_E08D6E97.json"))
    assert raw.ledger_hash == "195F62F34EB2CCFA4C5888BA20387E82EB353DDB4508BAE6A835AF19FB8B0C09"
    assert raw.close_time_iso == "2013-03-12T23:16:50Z"
    [row] = event_rows("xrpl", raw, ["r9cZA1mLK5R5Am25ArfXFmqgNwjZgnfk59"], raw.ledger_hash)
    assert (row.block_number, row.tx_index, row.log_index, row.event) == (348734, 0, 0, "Payment")
    assert row.tx_hash == "E08D6E9754025BA2534A78707605E0601F03ACE063687A0CA1BDDACFCD1698C7"
    args = orjson.loads(row.args)
    # Not a partial payment, so it delivered exactly its Amount (DeliverMax in API v2).
    assert args["delivered_amount"] == {"currency": "USD", "issuer": "r9cZA1mLK5R5Am25ArfXFmqgNwjZgnfk59", "value": "1"}
    assert args["delivered_source"] == "amount_not_partial"
    assert args["direction"] == "in"


def test_unavailable_delivered_amount_of_a_partial_payment_stays_unknown():
    raw = normalize_entry(load("tx_iou_payment_E08D6E97.json"))
    flagged = dataclasses.replace(raw, tx={**raw.tx, "Flags": 0x00020000})
    args = decode_args(flagged, "r9cZA1mLK5R5Am25ArfXFmqgNwjZgnfk59")
    assert args["delivered_amount"] == "unavailable"
    assert args["delivered_source"] == "unavailable"


def test_payment_with_memo_and_destination_tag():
    data = load("ledger_87704323_payment_17FAF3B5.json")
    [entry] = data["ledger"]["transactions"]
    raw = normalize_entry(entry, ledger_index=data["ledger_index"], ledger_hash=data["ledger_hash"])
    rows = event_rows("xrpl", raw, ["r3RaNVLvWjqqtFAawC6jbRhgKyFH7HvRS8", "rSCXRaUyg9CkzHMidE7oYETB4W2bM2se7"],
                      raw.ledger_hash)
    assert [r.address for r in rows] == ["r3RaNVLvWjqqtFAawC6jbRhgKyFH7HvRS8", "rSCXRaUyg9CkzHMidE7oYETB4W2bM2se7"]
    assert {(r.block_number, r.block_hash, r.tx_index) for r in rows} == {
        (87704323, "BAA4AF508E9A9CB7685D9E61B82486681E52E9B920904B0650499497F050D8FA", 7)}
    incoming, outgoing = (orjson.loads(r.args) for r in rows)
    assert incoming["direction"] == "in" and outgoing["direction"] == "out"
    assert incoming["destination_tag"] == "811921039"
    assert incoming["memos"] == [{"data": "811921039"}]
    assert incoming["delivered_amount"] == {"currency": "CSC", "issuer": "rCSCManTZ8ME9EoLrSHHYKW8PPwWMgkwr",
                                            "value": "25799"}
    assert incoming["partial_payment"] is True


def test_utf8_memos_are_decoded_and_hex_currency_kept():
    raw = normalize_entry(load("tx_iou_memos_F96C0462.json"))
    args = decode_args(raw, "rwwyrB83G6hS8vp4oLMqwRiMNLWToVCX6L")
    assert [m["data"] for m in args["memos"]][1] == "Congratulation from the Treasury Academy \U0001F389\U0001F393"
    assert args["memos"][4] == {"data": "Your Grade: 100%"}
    assert args["delivered_amount"]["currency"] == "5452535259000000000000000000000000000000"
    memo = decode_args(normalize_entry(load("tx_xrp_memo_2854762B.json")), "rLUmNB4HDBXceBoDTZwcMn2akcpSj44BaB")
    assert memo["memos"] == [{"data": "Thank you for helping out translating XUMM \U0001F48B"}]
    assert memo["delivered_amount"] == "3000000"


def test_v1_account_tx_entries_of_other_types():
    page = load("account_tx_rf1BiGeX_v1.json")["result"]["transactions"]
    check, preauth = (normalize_entry(e) for e in page)
    assert (check.ledger_index, check.index, check.ledger_hash) == (61965653, 12, None)
    args = decode_args(check, "rf1BiGeXwwQoi8Z2ueFYTEXSwuJYfV2Jpn")
    assert args["role"] == "sender" and "direction" not in args
    assert args["fields"] == {
        "Destination": "ra5nK24KXen9AHvsdFTKHSANinZseWnPcX", "DestinationTag": "13",
        "SendMax": {"currency": "USD", "issuer": "ra5nK24KXen9AHvsdFTKHSANinZseWnPcX", "value": "10"},
    }
    assert decode_args(preauth, "ra5nK24KXen9AHvsdFTKHSANinZseWnPcX")["role"] == "affected"


def test_failed_payment_is_never_credited():
    raw = normalize_entry(load("tx_xrp_memo_2854762B.json"))
    failed = dataclasses.replace(raw, meta={**raw.meta, "TransactionResult": "tecUNFUNDED_PAYMENT"})
    args = decode_args(failed, "rLUmNB4HDBXceBoDTZwcMn2akcpSj44BaB")
    assert args["status"] == "failed" and args["result"] == "tecUNFUNDED_PAYMENT"
    assert args["delivered_amount"] is None
    assert args["amount"] == "3000000"


def test_direction_self_and_other():
    raw = normalize_entry(load("tx_iou_memos_F96C0462.json"))
    issuer = decode_args(raw, "rLBnhMjV6ifEHYeV4gaS6jPKerZhQddFxW")
    assert (issuer["direction"], issuer["role"], issuer["counterparty"]) == ("other", "affected", raw.tx["Account"])
    to_self = dataclasses.replace(raw, tx={**raw.tx, "Destination": raw.tx["Account"]})
    assert decode_args(to_self, raw.tx["Account"])["direction"] == "self"


@pytest.mark.parametrize("mutate,field", [
    (lambda e: e.pop("meta"), "meta"),
    (lambda e: e.update(hash="XYZ"), "hash"),
    (lambda e: e["meta"].pop("TransactionResult"), "TransactionResult"),
    (lambda e: e["meta"].update(TransactionIndex=-1), "TransactionIndex"),
    (lambda e: e.pop("Account"), "Account"),
])
def test_malformed_entries_name_the_field(mutate, field):
    entry = load("tx_xrp_memo_2854762B.json")
    mutate(entry)
    with pytest.raises(XrplDecodeError, match=field):
        normalize_entry(entry)


def test_amounts_are_exact_strings():
    assert normalize_amount("000123", "x") == "123"
    assert normalize_amount({"currency": "USD", "issuer": "r", "value": "1000000000000000e-96"}, "x")["value"] \
        == "0." + "0" * 80 + "1"
    assert plain_decimal("1e3", "x") == "1000" and plain_decimal("-0", "x") == "0" and plain_decimal("0.50", "x") == "0.5"
    with pytest.raises(XrplDecodeError, match="Amount"):
        normalize_amount("1.5", "Amount")
    with pytest.raises(XrplDecodeError, match="SendMax.value"):
        normalize_amount({"currency": "USD", "issuer": "r", "value": "abc"}, "SendMax")


def test_memo_fields_that_are_not_utf8_stay_hex():
    assert decode_memos([{"Memo": {"MemoType": "C3", "MemoData": "68656C6C6F", "MemoFormat": "zz"}}]) == [
        {"type_hex": "C3", "data": "hello", "format_hex": "ZZ"}]
    with pytest.raises(XrplDecodeError, match=r"Memos\[0\]"):
        decode_memos([{"NotMemo": {}}])
