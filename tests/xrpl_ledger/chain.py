"""The chain: validated ledgers, the open ledger, submission and closing.

Transactions apply to the open ledger when they are submitted (as rippled
applies them provisionally); that result is final here because nothing
else competes for the open ledger. Closing the ledger validates it at once
(standalone mode has no consensus). `terPRE_SEQ` transactions are held
and retried after every applied transaction and at every close, until
their LastLedgerSequence has passed.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from xrpl.core.binarycodec import decode, encode_for_signing
from xrpl.core.keypairs import is_valid_message

from .engine import Fees, apply_tx
from .results import RpcFail, is_applied, ter
from .state import (
    RIPPLE_EPOCH,
    ZERO_HASH,
    AccountRoot,
    ClosedLedger,
    LedgerState,
    TxRecord,
    sha512_half,
)

# rippled's well-known genesis account ("masterpassphrase"); public, test-only.
GENESIS_SEED = "snoPBrXtMeMyMHUVTgbuqAfg1SUTb"
GENESIS_ADDRESS = "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh"
TOTAL_DROPS = 10**17
_REQUIRED = ("TransactionType", "Account", "Fee", "Sequence", "SigningPubKey", "TxnSignature")


class TestLedger:
    """One standalone XRP Ledger: shared by every server (node) that serves it."""

    __test__ = False  # not a pytest class

    def __init__(self, *, network_id: int = 0, fees: Fees | None = None, clock: Callable[[], float] = time.time) -> None:
        self.network_id = network_id
        self.fees = fees or Fees()
        self.clock = clock
        self.ledgers: dict[int, ClosedLedger] = {}
        self.by_hash: dict[str, ClosedLedger] = {}
        self.txs: dict[str, TxRecord] = {}
        self.history: dict[str, list[TxRecord]] = {}
        self.listeners: list[Callable[[ClosedLedger], None]] = []
        self.open_txs: list[TxRecord] = []
        self.held: dict[str, tuple[dict, str]] = {}
        self.open_index = 1
        self.open_state = LedgerState({GENESIS_ADDRESS: AccountRoot(GENESIS_ADDRESS, TOTAL_DROPS, 1)}, {}, TOTAL_DROPS)
        self.last: ClosedLedger | None = None
        self.close()

    # -- reading ------------------------------------------------------------

    @property
    def validated(self) -> ClosedLedger:
        assert self.last is not None
        return self.last

    def ledger(self, index: int) -> ClosedLedger | None:
        return self.ledgers.get(index)

    def open_tx(self, tx_hash: str) -> TxRecord | None:
        return next((r for r in self.open_txs if r.hash == tx_hash), None)

    # -- submitting -----------------------------------------------------------

    def submit(self, blob: str, *, drop: bool = False) -> dict:
        """rippled's `submit` for a signed blob; `drop` answers as usual but keeps nothing."""
        try:
            raw = bytes.fromhex(blob)
        except (TypeError, ValueError):
            raise RpcFail("invalidParams", "Invalid parameter.") from None
        if not raw:
            raise RpcFail("invalidParams", "Invalid parameter.")
        try:
            tx = decode(blob)
        except Exception as exc:  # the codec raises many types on garbage
            raise RpcFail("invalidTransaction", f"{exc.__class__.__name__}: {exc}") from None
        missing = [f for f in _REQUIRED if f not in tx]
        if missing:
            raise RpcFail("invalidTransaction", f"Field '{missing[0]}' is required but missing.")
        if not _signature_ok(tx):
            raise RpcFail("invalidTransaction", "fails local checks: Invalid signature.")
        tx_hash = sha512_half(b"TXN\x00" + raw)
        if drop:
            outcome = apply_tx(self.open_state.copy(), tx, tx_hash, ledger_seq=self.open_index, fees=self.fees,
                               network_id=self.network_id)
            return self._answer(tx, blob, tx_hash, outcome.result, held=False)
        if self.open_tx(tx_hash) is not None:
            return self._answer(tx, blob, tx_hash, "tefALREADY", held=False)
        result = self._apply(tx, blob, tx_hash)
        held = result == "terPRE_SEQ"
        if held:
            self.held[tx_hash] = (tx, blob)
        elif is_applied(result):
            self._retry_held()
        return self._answer(tx, blob, tx_hash, result, held=held)

    def _apply(self, tx: dict, blob: str, tx_hash: str) -> str:
        out = apply_tx(self.open_state, tx, tx_hash, ledger_seq=self.open_index, fees=self.fees, network_id=self.network_id)
        if out.meta is not None:
            self.open_txs.append(TxRecord(tx_hash, blob.upper(), tx, out.meta, out.result, out.accounts, self.open_index,
                                          len(self.open_txs)))
        return out.result

    def _retry_held(self) -> None:
        progress = True
        while progress and self.held:
            progress = False
            for tx_hash, (tx, blob) in list(self.held.items()):
                lls = tx.get("LastLedgerSequence")
                if lls is not None and lls < self.open_index:
                    del self.held[tx_hash]
                    continue
                result = self._apply(tx, blob, tx_hash)
                if result != "terPRE_SEQ":
                    del self.held[tx_hash]
                    progress = progress or is_applied(result)

    def _answer(self, tx: dict, blob: str, tx_hash: str, result: str, *, held: bool) -> dict:
        token, code, message = ter(result)
        applied = is_applied(result)
        acct = self.open_state.accounts.get(tx["Account"])
        out = {
            "accepted": applied or held,
            "applied": applied,
            "broadcast": applied,
            "engine_result": token,
            "engine_result_code": code,
            "engine_result_message": message,
            "kept": applied or held,
            "open_ledger_cost": str(self.fees.base_fee),
            "queued": False,
            "tx_blob": blob.upper(),
            "tx_json": {**tx, "hash": tx_hash},
            "validated_ledger_index": self.validated.index,
        }
        if acct is not None:
            out["account_sequence_available"] = acct.sequence
            out["account_sequence_next"] = acct.sequence
        return out

    # -- closing --------------------------------------------------------------

    def close(self) -> ClosedLedger:
        """Close the open ledger and validate it; open the next one."""
        parent = self.last
        parent_hash = parent.hash if parent else ZERO_HASH
        parent_close = parent.close_time if parent else 0
        close_time = max(parent_close + 1, int(self.clock()) - RIPPLE_EPOCH)
        for i, rec in enumerate(self.open_txs):
            rec.index = i
            rec.meta = {"AffectedNodes": rec.meta["AffectedNodes"], "TransactionIndex": i,
                        **{k: v for k, v in rec.meta.items() if k not in ("AffectedNodes", "TransactionIndex")}}
        state = self.open_state.copy()
        tx_root = sha512_half(b"".join(bytes.fromhex(r.hash) for r in self.open_txs)) if self.open_txs else ZERO_HASH
        account_root = state.digest()
        header = (struct.pack(">IQ", self.open_index, state.total_drops) + bytes.fromhex(parent_hash)
                  + bytes.fromhex(tx_root) + bytes.fromhex(account_root)
                  + struct.pack(">IIBB", parent_close, close_time, 10, 0))
        closed = ClosedLedger(self.open_index, sha512_half(b"LWR\x00" + header), parent_hash, close_time, parent_close,
                              state.total_drops, tx_root, account_root, self.open_txs, state)
        self.ledgers[closed.index] = closed
        self.by_hash[closed.hash] = closed
        for rec in closed.txs:
            self.txs[rec.hash] = rec
            for acct in rec.accounts:
                self.history.setdefault(acct, []).append(rec)
        self.last = closed
        self.open_index += 1
        self.open_txs = []
        self._retry_held()
        for listener in list(self.listeners):
            listener(closed)
        return closed


def _signature_ok(tx: dict) -> bool:
    try:
        return is_valid_message(bytes.fromhex(encode_for_signing(tx)), bytes.fromhex(tx["TxnSignature"]), tx["SigningPubKey"])
    except Exception:  # malformed keys or signatures make the crypto libraries raise anything
        return False
