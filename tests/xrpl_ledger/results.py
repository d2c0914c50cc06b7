"""rippled's transaction result codes and RPC error shapes.

Numeric codes come from xrpl-py's copy of rippled's definitions.json, so
they cannot drift from the codec; messages are rippled's own texts
(src/libxrpl/protocol/TER.cpp and ErrorCodes.cpp).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import xrpl

_DEFINITIONS = Path(xrpl.__file__).parent / "core" / "binarycodec" / "definitions" / "definitions.json"

TER_MESSAGES = {
    "tesSUCCESS": "The transaction was applied. Only final in a validated ledger.",
    "tecPATH_PARTIAL": "Path could not send full amount.",
    "tecPATH_DRY": "Path could not send partial amount.",
    "tecUNFUNDED_PAYMENT": "Insufficient XRP balance to send.",
    "tecNO_DST": "Destination does not exist. Send XRP to create it.",
    "tecNO_DST_INSUF_XRP": "Destination does not exist. Too little XRP sent to create it.",
    "tecNO_LINE_INSUF_RESERVE": "No such line. Too little reserve to create it.",
    "tecNO_LINE_REDUNDANT": "Can't set non-existent line to default.",
    "tecINSUF_RESERVE_LINE": "Insufficient reserve to add trust line.",
    "tecNO_LINE": "No such line.",
    "tecDST_TAG_NEEDED": "A destination tag is required.",
    "tefALREADY": "The exact transaction was already in this ledger.",
    "tefBAD_AUTH": "Transaction's public key is not authorized.",
    "tefMAX_LEDGER": "Ledger sequence too high.",
    "tefPAST_SEQ": "This sequence number has already passed.",
    "telINSUF_FEE_P": "Fee insufficient.",
    "telNO_DST_PARTIAL": "Partial payment to create account not allowed.",
    "telWRONG_NETWORK": "Transaction specifies a Network ID that differs from that of the local node.",
    "telREQUIRES_NETWORK_ID": "Transactions submitted to this node/network must include a correct NetworkID field.",
    "telNETWORK_ID_MAKES_TX_NON_CANONICAL": "Transactions submitted to this node/network must NOT include a NetworkID field.",
    "temMALFORMED": "Malformed transaction.",
    "temBAD_AMOUNT": "Malformed: Bad amount.",
    "temBAD_CURRENCY": "Malformed: Bad currency.",
    "temBAD_FEE": "Invalid fee, negative or not XRP.",
    "temBAD_LIMIT": "Limits must be non-negative.",
    "temBAD_SEND_XRP_LIMIT": "Malformed: Limit quality is not allowed for XRP to XRP.",
    "temBAD_SEND_XRP_MAX": "Malformed: Send max is not allowed for XRP to XRP.",
    "temBAD_SEND_XRP_NO_DIRECT": "Malformed: No Ripple direct is not allowed for XRP to XRP.",
    "temBAD_SEND_XRP_PARTIAL": "Malformed: Partial payment is not allowed for XRP to XRP.",
    "temBAD_SEND_XRP_PATHS": "Malformed: Paths are not allowed for XRP to XRP.",
    "temDST_IS_SRC": "Destination may not be source.",
    "temDST_NEEDED": "Destination not specified.",
    "temDISABLED": "The transaction requires logic that is currently disabled.",
    "temINVALID_FLAG": "The transaction has an invalid flag.",
    "temREDUNDANT": "The transaction is redundant.",
    "terINSUF_FEE_B": "Account balance can't pay fee.",
    "terNO_ACCOUNT": "The source account does not exist.",
    "terPRE_SEQ": "Missing/inapplicable prior transaction.",
}

# token -> (error_code, default message), from rippled's ErrorCodes.h/.cpp.
RPC_ERRORS = {
    "badSyntax": (1, "Syntax error."),
    "noPermission": (6, "You don't have permission for this command."),
    "noEvents": (7, "Current transport does not support events."),
    "notSynced": (18, "Not synced to the network."),
    "actNotFound": (19, "Account not found."),
    "lgrNotFound": (21, "Ledger not found."),
    "lgrNotValidated": (22, "Ledger not validated."),
    "txnNotFound": (29, "Transaction not found."),
    "invalidParams": (31, "Invalid parameters."),
    "unknownCmd": (32, "Unknown method."),
    "actMalformed": (35, "Account malformed."),
    "lgrIdxsInvalid": (57, "Ledger indexes invalid."),
    "lgrIdxMalformed": (58, "Ledger index malformed."),
    "malformedStream": (71, "Stream malformed."),
    "internal": (73, "Internal error."),
    "notImpl": (74, "Not implemented."),
    "invalidLgrRange": (79, "Ledger range is invalid."),
}


@cache
def ter_codes() -> dict[str, int]:
    return json.loads(_DEFINITIONS.read_text())["TRANSACTION_RESULTS"]


def ter(name: str) -> tuple[str, int, str]:
    """(token, code, message) for a result name."""
    return name, ter_codes()[name], TER_MESSAGES.get(name, name)


def is_applied(result: str) -> bool:
    """tes and tec results go into the ledger (tec: fee charged, Sequence used)."""
    return result.startswith(("tes", "tec"))


class RpcFail(Exception):
    """An RPC answered with rippled's error shape instead of a result."""

    def __init__(self, token: str, message: str | None = None, **extra: object) -> None:
        code, default = RPC_ERRORS.get(token, (None, token))
        super().__init__(message or default)
        self.token = token
        self.code = code
        self.message = message or default
        self.extra = extra

    def fields(self) -> dict:
        out: dict = {"error": self.token}
        if self.code is not None:
            out["error_code"] = self.code
            out["error_message"] = self.message
        else:
            # rippled sets some errors (e.g. invalidTransaction) as a bare token
            # plus `error_exception`; they carry no numeric code.
            out["error_exception"] = self.message
        out.update(self.extra)
        return out
