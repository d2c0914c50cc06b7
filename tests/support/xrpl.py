"""The standalone XRPL test ledger for pytest: a fixture and signing helpers.

`xrpl_ledger` starts `tests.xrpl_ledger` in the test's event loop on a free
port (import the fixture into a test module to use it). `Driver` builds
ledger state through the node's real `submit` path with properly signed
blobs; `sign` signs any transaction dict, including ones xrpl-py's models
refuse (an XRP partial payment), because rippled must reject those itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from xrpl.constants import CryptoAlgorithm
from xrpl.core.binarycodec import encode, encode_for_signing
from xrpl.core.keypairs import generate_seed
from xrpl.core.keypairs import sign as key_sign
from xrpl.wallet import Wallet

from tests.xrpl_ledger import (
    GENESIS_SEED,
    LedgerNode,
    LedgerServer,
    TestLedger,
    start_ledger_server,
)
from tests.xrpl_ledger.state import ClosedLedger

GENESIS = Wallet.from_seed(GENESIS_SEED, algorithm=CryptoAlgorithm.SECP256K1)
XRP = 1_000_000  # drops
TF_PARTIAL_PAYMENT = 0x00020000
ASF_REQUIRE_DEST = 1
ASF_DEFAULT_RIPPLE = 8


def wallet(n: int) -> Wallet:
    """A deterministic ed25519 test wallet (the keys are throwaway)."""
    return Wallet.from_seed(generate_seed(f"{n:032x}", CryptoAlgorithm.ED25519))


def sign(tx: dict[str, Any], signer: Wallet) -> str:
    """The signed blob of `tx` (hex), whatever fields it has."""
    tx = dict(tx, SigningPubKey=signer.public_key)
    tx["TxnSignature"] = key_sign(bytes.fromhex(encode_for_signing(tx)), signer.private_key)
    return encode(tx)


def usd(issuer: str, value: str) -> dict[str, str]:
    return {"currency": "USD", "issuer": issuer, "value": value}


class Driver:
    """Submits signed transactions to one node, as a client would over the API."""

    def __init__(self, node: LedgerNode | LedgerServer) -> None:
        self.node = node.node if isinstance(node, LedgerServer) else node

    @property
    def ledger(self) -> TestLedger:
        return self.node.ledger

    def next_sequence(self, address: str) -> int:
        return self.ledger.open_state.accounts[address].sequence

    def submit(self, signer: Wallet, tx: dict[str, Any], *, api_version: int = 2) -> dict:
        body = {"Account": signer.classic_address, "Fee": "10", "Flags": 0, **tx}
        body.setdefault("Sequence", self.next_sequence(signer.classic_address))
        return self.node.call("submit", {"tx_blob": sign(body, signer)}, api_version)

    def pay(self, signer: Wallet, destination: str, amount: str | dict, **fields: Any) -> dict:
        return self.submit(signer, {"TransactionType": "Payment", "Destination": destination, "Amount": amount, **fields})

    def fund(self, *wallets: Wallet, drops: int = 1_000 * XRP) -> None:
        for w in wallets:
            res = self.pay(GENESIS, w.classic_address, str(drops))
            assert res["engine_result"] == "tesSUCCESS", res

    def trust(self, holder: Wallet, issuer: str, limit: str, currency: str = "USD") -> dict:
        return self.submit(holder, {"TransactionType": "TrustSet",
                                    "LimitAmount": {"currency": currency, "issuer": issuer, "value": limit}})

    def account_set(self, signer: Wallet, **fields: Any) -> dict:
        return self.submit(signer, {"TransactionType": "AccountSet", **fields})

    def close(self) -> ClosedLedger:
        return self.ledger.close()


def ledger_record(ledger: TestLedger, accounts: list[str], lo: int = 1, hi: int | None = None) -> set[tuple]:
    """The ledger's own history of `accounts`: (ledger, tx hash, index, account, type, result)."""
    hi = ledger.validated.index if hi is None else hi
    return {
        (rec.ledger_index, rec.hash, rec.index, acct, rec.tx["TransactionType"], rec.result)
        for acct in accounts for rec in ledger.history.get(acct, []) if lo <= rec.ledger_index <= hi
    }


@pytest.fixture
async def xrpl_ledger():
    """A fresh test ledger node on a free port; ledgers close only when the test closes them."""
    server, _ = await start_ledger_server()
    try:
        yield server
    finally:
        await server.stop()
