"""The test ledger's transaction engine: rippled's rules and result codes, in memory."""

from __future__ import annotations

from decimal import Decimal

import pytest
from xrpl.core.binarycodec import encode
from xrpl.models.transactions.transaction import Transaction

from tests.support.xrpl import (
    ASF_DEFAULT_RIPPLE,
    ASF_REQUIRE_DEST,
    GENESIS,
    TF_PARTIAL_PAYMENT,
    XRP,
    Driver,
    sign,
    usd,
    wallet,
)
from tests.xrpl_ledger import GENESIS_ADDRESS, LedgerNode, TestLedger
from tests.xrpl_ledger.results import RpcFail
from tests.xrpl_ledger.state import account_key, order_pair

A, B, C, ISSUER = wallet(1), wallet(2), wallet(3), wallet(4)


@pytest.fixture
def d() -> Driver:
    drv = Driver(LedgerNode(TestLedger()))
    drv.fund(A, B, ISSUER)
    drv.close()
    return drv


def balance(d: Driver, w) -> int:
    return d.ledger.open_state.accounts[w.classic_address].balance


def test_xrp_payment_moves_drops_burns_the_fee_and_creates_the_account(d):
    total = d.ledger.open_state.total_drops
    before = balance(d, A)
    res = d.pay(A, C.classic_address, str(5 * XRP))
    assert res["engine_result"] == "tesSUCCESS" and res["applied"] and res["engine_result_code"] == 0
    closed = d.close()
    assert balance(d, A) == before - 5 * XRP - 10
    assert balance(d, C) == 5 * XRP
    assert d.ledger.open_state.total_drops == total - 10
    assert d.ledger.open_state.accounts[C.classic_address].sequence == closed.index  # DeletableAccounts
    [rec] = closed.txs
    assert rec.hash == Transaction.from_blob(rec.blob).get_hash()  # the same hash clients compute
    created = [n["CreatedNode"] for n in rec.meta["AffectedNodes"] if "CreatedNode" in n]
    assert created == [{"LedgerEntryType": "AccountRoot", "LedgerIndex": account_key(C.classic_address),
                        "NewFields": {"Account": C.classic_address, "Balance": str(5 * XRP), "Sequence": closed.index}}]
    assert rec.meta["TransactionIndex"] == 0 and rec.accounts == {A.classic_address, C.classic_address}


def test_xrp_to_xrp_partial_payment_is_malformed(d):
    before, seq = balance(d, A), d.next_sequence(A.classic_address)
    res = d.pay(A, B.classic_address, str(XRP), Flags=TF_PARTIAL_PAYMENT)
    assert (res["engine_result"], res["engine_result_code"]) == ("temBAD_SEND_XRP_PARTIAL", -285)
    assert not res["applied"] and not res["accepted"]
    assert (balance(d, A), d.next_sequence(A.classic_address)) == (before, seq)  # no fee, no Sequence used
    assert d.pay(A, B.classic_address, str(XRP), SendMax=str(2 * XRP))["engine_result"] == "temBAD_SEND_XRP_MAX"
    assert d.pay(A, A.classic_address, str(XRP))["engine_result"] == "temREDUNDANT"


def test_tec_results_burn_the_fee_and_use_the_sequence_but_move_nothing(d):
    before, seq = balance(d, A), d.next_sequence(A.classic_address)
    res = d.pay(A, C.classic_address, str(XRP - 1))  # below the 1 XRP base reserve
    assert res["engine_result"] == "tecNO_DST_INSUF_XRP" and res["applied"]
    assert C.classic_address not in d.ledger.open_state.accounts
    assert (balance(d, A), d.next_sequence(A.classic_address)) == (before - 10, seq + 1)
    # rippled's rule: prior balance >= amount + max(reserve, fee); reserve = 1 XRP + 0.2 XRP per object.
    spendable = balance(d, A) - XRP
    assert d.pay(A, B.classic_address, str(spendable + 1))["engine_result"] == "tecUNFUNDED_PAYMENT"
    assert d.pay(A, B.classic_address, str(spendable - 10))["engine_result"] == "tesSUCCESS"
    rec = d.ledger.open_txs[0]
    assert rec.result == "tecNO_DST_INSUF_XRP"
    assert [list(n)[0] for n in rec.meta["AffectedNodes"]] == ["ModifiedNode"]


def test_require_dest_needs_a_destination_tag(d):
    assert d.account_set(B, SetFlag=ASF_REQUIRE_DEST)["engine_result"] == "tesSUCCESS"
    assert d.pay(A, B.classic_address, str(XRP))["engine_result"] == "tecDST_TAG_NEEDED"
    assert d.pay(A, B.classic_address, str(XRP), DestinationTag=42)["engine_result"] == "tesSUCCESS"
    d.account_set(B, ClearFlag=ASF_REQUIRE_DEST)
    assert d.pay(A, B.classic_address, str(XRP))["engine_result"] == "tesSUCCESS"


def test_sequence_gaps_are_held_and_past_sequences_refused(d):
    seq = d.next_sequence(A.classic_address)
    later = d.pay(A, B.classic_address, str(XRP), Sequence=seq + 1)
    assert later["engine_result"] == "terPRE_SEQ" and later["kept"] and not later["applied"]
    assert d.pay(A, B.classic_address, str(XRP), Sequence=seq)["engine_result"] == "tesSUCCESS"
    assert [r.tx["Sequence"] for r in d.ledger.open_txs] == [seq, seq + 1]  # the held one applied after
    assert d.pay(A, B.classic_address, str(XRP), Sequence=seq)["engine_result"] == "tefALREADY"  # same blob again
    assert d.pay(A, B.classic_address, str(2 * XRP), Sequence=seq)["engine_result"] == "tefPAST_SEQ"


def test_last_ledger_sequence(d):
    open_index = d.ledger.open_index
    assert d.pay(A, B.classic_address, "1", LastLedgerSequence=open_index - 1)["engine_result"] == "tefMAX_LEDGER"
    seq = d.next_sequence(A.classic_address)
    held = d.pay(A, B.classic_address, str(XRP), Sequence=seq + 1, LastLedgerSequence=open_index)
    assert held["engine_result"] == "terPRE_SEQ"
    d.close()  # the held transaction's last ledger closed without it: it expires
    assert d.pay(A, B.classic_address, str(XRP), Sequence=seq)["engine_result"] == "tesSUCCESS"
    assert [r.tx["Sequence"] for r in d.ledger.open_txs] == [seq]


def test_signatures_keys_and_fees(d):
    blob = sign({"TransactionType": "Payment", "Account": A.classic_address, "Destination": B.classic_address,
                 "Amount": "1", "Fee": "10", "Sequence": d.next_sequence(A.classic_address)}, A)
    tampered = blob[:-8] + ("00000000" if not blob.endswith("00000000") else "11111111")
    with pytest.raises(RpcFail) as err:
        d.node.call("submit", {"tx_blob": tampered}, 2)
    assert err.value.token == "invalidTransaction" and err.value.code is None
    with pytest.raises(RpcFail) as err:
        d.node.call("submit", {"tx_blob": "zz"}, 2)
    assert err.value.token == "invalidParams"
    # B's key signing for A: a valid signature, but not A's key.
    forged = sign({"TransactionType": "Payment", "Account": A.classic_address, "Destination": B.classic_address,
                   "Amount": "1", "Fee": "10", "Sequence": d.next_sequence(A.classic_address)}, B)
    assert d.node.call("submit", {"tx_blob": forged}, 2)["engine_result"] == "tefBAD_AUTH"
    assert d.pay(A, B.classic_address, "1", Fee="9")["engine_result"] == "telINSUF_FEE_P"
    assert d.pay(A, B.classic_address, "1", NetworkID=5)["engine_result"] == "telNETWORK_ID_MAKES_TX_NON_CANONICAL"


def test_issued_currency_payments_follow_trust_lines(d):
    iss = ISSUER.classic_address
    assert d.pay(ISSUER, A.classic_address, usd(iss, "5"))["engine_result"] == "tecPATH_DRY"  # no trust line yet
    owners = d.ledger.open_state.accounts[A.classic_address].owner_count
    assert d.trust(A, iss, "100")["engine_result"] == "tesSUCCESS"
    assert d.trust(B, iss, "1000")["engine_result"] == "tesSUCCESS"
    assert d.ledger.open_state.accounts[A.classic_address].owner_count == owners + 1
    assert d.pay(ISSUER, A.classic_address, usd(iss, "150"))["engine_result"] == "tecPATH_PARTIAL"  # over the limit
    assert d.pay(ISSUER, A.classic_address, usd(iss, "60"))["engine_result"] == "tesSUCCESS"
    # Holder to holder ripples through the issuer only with DefaultRipple.
    assert d.pay(A, B.classic_address, usd(iss, "10"))["engine_result"] == "tecPATH_DRY"
    d.account_set(ISSUER, SetFlag=ASF_DEFAULT_RIPPLE)
    assert d.pay(A, B.classic_address, usd(iss, "10"))["engine_result"] == "tesSUCCESS"
    assert d.pay(A, B.classic_address, usd(iss, "51"))["engine_result"] == "tecPATH_PARTIAL"
    line = d.ledger.open_state.lines[(*order_pair(A.classic_address, iss), "USD")]
    assert line.holds(A.classic_address) == Decimal(50)
    assert d.pay(A, iss, usd(iss, "50"))["engine_result"] == "tesSUCCESS"  # redeem everything
    assert d.ledger.open_state.lines[(*order_pair(A.classic_address, iss), "USD")].holds(A.classic_address) == 0


def test_partial_payment_attack_delivers_only_what_the_sender_had(d):
    iss = ISSUER.classic_address
    d.account_set(ISSUER, SetFlag=ASF_DEFAULT_RIPPLE)
    d.trust(A, iss, "1000000")
    d.trust(B, iss, "1000000")
    d.pay(ISSUER, A.classic_address, usd(iss, "0.001"))
    attack = d.pay(A, B.classic_address, usd(iss, "1000"), Flags=TF_PARTIAL_PAYMENT)
    assert attack["engine_result"] == "tesSUCCESS"
    closed = d.close()
    rec = closed.txs[-1]
    assert rec.meta["DeliveredAmount"] == usd(iss, "0.001")
    answer = d.node.call("tx", {"transaction": rec.hash}, 2)
    assert answer["tx_json"]["DeliverMax"] == usd(iss, "1000") and "Amount" not in answer["tx_json"]
    assert answer["meta"]["delivered_amount"] == usd(iss, "0.001")
    v1 = d.node.call("tx", {"transaction": rec.hash}, 1)
    assert v1["Amount"] == v1["DeliverMax"] == usd(iss, "1000")
    # With nothing left to send, a partial payment is dry; DeliverMin refuses too little.
    assert d.pay(A, B.classic_address, usd(iss, "1"), Flags=TF_PARTIAL_PAYMENT)["engine_result"] == "tecPATH_DRY"
    d.pay(ISSUER, A.classic_address, usd(iss, "2"))
    assert d.pay(A, B.classic_address, usd(iss, "10"), Flags=TF_PARTIAL_PAYMENT,
                 DeliverMin=usd(iss, "3"))["engine_result"] == "tecPATH_PARTIAL"


def test_trust_line_reserve_and_removal(d):
    poor = wallet(9)
    d.pay(GENESIS, poor.classic_address, str(XRP + 100))
    for cur in ("AAA", "BBB"):  # the first two objects ride on the base reserve
        assert d.trust(poor, ISSUER.classic_address, "1", currency=cur)["engine_result"] == "tesSUCCESS"
    assert d.trust(poor, ISSUER.classic_address, "1", currency="CCC")["engine_result"] == "tecNO_LINE_INSUF_RESERVE"
    assert d.trust(poor, ISSUER.classic_address, "0", currency="DDD")["engine_result"] == "tecNO_LINE_REDUNDANT"
    assert d.trust(poor, ISSUER.classic_address, "0", currency="AAA")["engine_result"] == "tesSUCCESS"
    assert d.ledger.open_state.accounts[poor.classic_address].owner_count == 1
    assert (*order_pair(poor.classic_address, ISSUER.classic_address), "AAA") not in d.ledger.open_state.lines


def test_dropped_submission_answers_but_never_lands(d):
    d.node.drop_pending = 1
    seq = d.next_sequence(A.classic_address)
    res = d.pay(A, B.classic_address, str(XRP), LastLedgerSequence=d.ledger.open_index + 1)
    assert res["engine_result"] == "tesSUCCESS" and res["applied"]
    d.close()
    d.close()
    with pytest.raises(RpcFail) as err:
        d.node.call("tx", {"transaction": res["tx_json"]["hash"], "min_ledger": 1,
                           "max_ledger": d.ledger.validated.index}, 2)
    assert err.value.token == "txnNotFound" and err.value.extra == {"searched_all": True}
    assert d.next_sequence(A.classic_address) == seq  # nothing used: the same Sequence is free again


def test_genesis_is_rippleds(d):
    assert GENESIS.classic_address == GENESIS_ADDRESS
    assert encode({"Account": GENESIS_ADDRESS})  # a valid classic address for the codec
