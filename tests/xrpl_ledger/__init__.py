"""A standalone XRP Ledger for tests and the demo (no rippled exists for these machines).

Start it on its own with `python -m tests.xrpl_ledger --port P` (WebSocket
and JSON-RPC on the same port), or in-process with
`server, url = await start_ledger_server()`.

Genesis: ledger 1 holds all 100,000,000,000 XRP in rippled's well-known
genesis account `rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh`, whose seed is
`snoPBrXtMeMyMHUVTgbuqAfg1SUTb` (secp256k1, "masterpassphrase"; public and
only ever used on test networks). Fund other accounts with signed Payments.

What it models, as rippled does:
- methods `server_info`, `fee`, `ledger`, `ledger_closed`, `ledger_current`,
  `account_info`, `account_lines`, `account_tx` (markers, `forward`, API v2
  range rules: `lgrIdxMalformed` outside the validated range), `tx`,
  `submit`, `subscribe`/`unsubscribe` to the `ledger` stream (WebSocket),
  `ping` and the admin `ledger_accept`; API versions 1 and 2; rippled's
  error shapes and codes (WebSocket: top-level `error`/`error_code`/
  `error_message`/`request`; JSON-RPC: inside `result`);
- submitted blobs are decoded and their signatures verified with xrpl-py's
  codec and keypairs; the transaction hash is SHA-512Half("TXN\\0" + blob),
  the same as xrpl-py's `get_hash()`;
- real account state in drops: fees burnt (total coins fall), Sequence
  (`tefPAST_SEQ`; `terPRE_SEQ` held and applied once the gap fills),
  `LastLedgerSequence` (`tefMAX_LEDGER`; held transactions expire),
  reserves of 1 XRP + 0.2 XRP per owned object (mainnet values since
  December 2024; configurable through `engine.Fees`), the master key as the
  only signer (`tefBAD_AUTH` otherwise), NetworkID rules (`tel*`);
- Payment in XRP (`tecUNFUNDED_PAYMENT`, `tecNO_DST_INSUF_XRP`,
  `telNO_DST_PARTIAL`, `temBAD_SEND_XRP_PARTIAL`/`_MAX`/`_PATHS`/`_LIMIT`/
  `_NO_DIRECT`, `temREDUNDANT`) and in issued currencies through one issuer
  (issue, redeem, or ripple between two holders when the issuer has
  DefaultRipple): `tecPATH_DRY`, `tecPATH_PARTIAL`, `tfPartialPayment` with
  `DeliverMin`, `DeliveredAmount` in metadata and `delivered_amount` in
  responses; destination tags and RequireDest (`tecDST_TAG_NEEDED`);
- TrustSet (create, change, delete at default; reserve rules including
  rippled's two free objects; NoRipple flags) and AccountSet (RequireDest by
  SetFlag/ClearFlag 1 or tfRequireDestTag/tfOptionalDestTag; DefaultRipple,
  flag 8);
- metadata with ModifiedNode/CreatedNode/DeletedNode for AccountRoot and
  RippleState under their real keylets, PreviousTxnID threading and
  TransactionIndex; `account_tx` lists a transaction for exactly the accounts
  rippled does (TxMeta::getAffectedAccounts: account fields and trust-line
  issuers in the metadata, so a tec payment is not in the destination's
  history); pages are capped by `account_tx_max_limit` (default 400, as
  rippled caps non-admin requests) to exercise markers;
- transactions apply to the open ledger at submit (the result is final here:
  nothing competes); closing validates at once; ledgers close on a timer
  (`--close-interval`) and on `ledger_accept`.

Test hooks (admin methods, also methods of `LedgerServer`):
- `test_drop_next {"count": n}`: the next n submissions on this node get
  their normal preliminary answer but are never kept (a lost submission);
- `test_set_gap {"start": a, "end": b}` / `test_clear_gap`: this node stops
  / resumes serving ledgers a..b; `complete_ledgers`, `ledger`, `tx` and
  `account_tx` behave as on a rippled missing that history. Several nodes
  can serve one chain (`start_ledger_server(ledger=other.ledger)`), so a gap
  on one can be filled from another.

Not modelled: consensus, validators and amendments; the SHAMap (ledger
`account_hash`/`transaction_hash` are digests, so ledger hashes are
well-formed and chained but differ from rippled's); binary (`binary: true`)
answers; transaction types other than Payment, TrustSet and AccountSet
(they answer `temDISABLED`), tickets, multi-signing and regular keys;
order books, AMM, paths and cross-currency payments (`tecPATH_DRY`);
transfer fees, freezes, authorized trust lines, DepositAuth,
DisallowIncomingXRP; owner directories (no DirectoryNode metadata);
fee escalation and the transaction queue (`queued` is always false);
`account_lines` markers; the `transactions`/`accounts` streams; signing
on the server (`submit` with `secret`).
"""

from .chain import GENESIS_ADDRESS, GENESIS_SEED, TestLedger
from .engine import Fees
from .rpc import LedgerNode
from .server import LedgerServer, start_ledger_server

__all__ = ["GENESIS_ADDRESS", "GENESIS_SEED", "Fees", "LedgerNode", "LedgerServer", "TestLedger", "start_ledger_server"]
