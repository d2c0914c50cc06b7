"""Native-coin movements of configured wallets, from full blocks.

Logs do not show native transfers, so for chains where a wallet holds the
native coin the follower also reads each block with its transactions and
keeps the ones that touch a wallet:
- `NativeTransfer` {from, to, value}: a successful top-level transaction
  with value from or to a wallet (log_index -1);
- `NativeFee` {from, fee, gas_used, gas_price}: the fee a wallet paid for a
  transaction it sent, successful or not (log_index -2).
Both use address "native", so they never collide with a log's natural key.

Value moved by contracts through internal calls is read from call traces
where the chain's `traces` is on (indexer/evm/traces.py: InternalTransfer).
Not visible either way (the ledger will not book them; reconciliation shows
them as differences): internal calls with traces off, block rewards and priority fees to a wallet that is a
block producer, validator withdrawals, and SELFDESTRUCT beneficiaries.
A contract wallet (e.g. the payout batcher) pays out through internal
calls: book those from its own events (PayoutSent) instead.

`native_events` is pure; `NativeTransferSource.fetch` is the I/O around it
and fits the follower's RangeSource port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import orjson

from indexer.errors import BadRpcResponse
from indexer.evm.rpc import EvmRpc
from indexer.evm.traces import Tracer
from indexer.models import EventRow

NATIVE_ADDRESS = "native"
TRANSFER_LOG_INDEX = -1
FEE_LOG_INDEX = -2


def _hex_int(value: object, what: str) -> int:
    try:
        return int(value, 16)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRpcResponse(f"{what}: not a hex quantity: {str(value)[:40]}") from None


def _addr(value: object) -> str | None:
    return value.lower() if isinstance(value, str) else None


def touching(block: dict, wallets: frozenset[str]) -> list[dict]:
    """Transactions of a full block sent by a wallet, or sending value to one."""
    txs = block.get("transactions")
    if not isinstance(txs, list):
        raise BadRpcResponse(f"block {block.get('number')}: no transaction list")
    out = []
    for tx in txs:
        if not isinstance(tx, dict):
            raise BadRpcResponse(f"block {block.get('number')}: transactions are hashes, not objects (ask with full=true)")
        frm, to = _addr(tx.get("from")), _addr(tx.get("to"))
        if frm in wallets or (to in wallets and tx.get("value") not in (None, "0x0", "0x")):
            out.append(tx)
    return out


def native_events(
    chain: str, blocks: Sequence[dict], wallets: Iterable[str], receipts: Mapping[str, dict]
) -> list[EventRow]:
    """EventRows for the wallet-touching transactions of `blocks`.

    `receipts` maps lowercase tx hash to receipt for every transaction that
    `touching` returned: the status decides whether value moved, and gas
    used times the effective price is the fee.
    """
    wset = frozenset(w.lower() for w in wallets)
    rows: list[EventRow] = []
    dumps = orjson.dumps
    for block in blocks:
        number = _hex_int(block.get("number"), "block number")
        block_hash = str(block.get("hash", "")).lower()
        if len(block_hash) != 66:
            raise BadRpcResponse(f"block {number}: hash is not 32 bytes")
        for tx in touching(block, wset):
            tx_hash = str(tx.get("hash", "")).lower()
            receipt = receipts.get(tx_hash)
            if not isinstance(receipt, dict):
                raise BadRpcResponse(f"transaction {tx_hash}: receipt missing")
            if str(receipt.get("blockHash", "")).lower() != block_hash:
                raise BadRpcResponse(f"transaction {tx_hash}: receipt is from another block (reorg in progress)")
            tx_index = _hex_int(tx.get("transactionIndex"), f"transaction {tx_hash} index")
            frm = _addr(tx.get("from"))
            to = _addr(tx.get("to")) or _addr(receipt.get("contractAddress"))
            value = _hex_int(tx.get("value", "0x0"), f"transaction {tx_hash} value")
            # Pre-Byzantium receipts have no status; every chain here is later.
            ok = receipt.get("status", "0x1") == "0x1"
            if value > 0 and ok and (frm in wset or to in wset):
                args = {"from": frm, "to": to, "value": str(value)}
                rows.append(EventRow(chain, number, block_hash, tx_hash, tx_index, TRANSFER_LOG_INDEX,
                                     NATIVE_ADDRESS, "NativeTransfer", dumps(args).decode()))
            if frm in wset:
                gas_used = _hex_int(receipt.get("gasUsed"), f"receipt {tx_hash} gasUsed")
                price_raw = receipt.get("effectiveGasPrice") or tx.get("gasPrice")
                price = _hex_int(price_raw, f"receipt {tx_hash} effectiveGasPrice")
                fee = gas_used * price
                if receipt.get("blobGasUsed") and receipt.get("blobGasPrice"):
                    fee += _hex_int(receipt["blobGasUsed"], "blobGasUsed") * _hex_int(receipt["blobGasPrice"], "blobGasPrice")
                if fee > 0:
                    args = {"from": frm, "fee": str(fee), "gas_used": str(gas_used), "gas_price": str(price)}
                    rows.append(EventRow(chain, number, block_hash, tx_hash, tx_index, FEE_LOG_INDEX,
                                         NATIVE_ADDRESS, "NativeFee", dumps(args).decode()))
    return rows


class NativeTransferSource:
    """RangeSource for the EVM follower: native movements of `wallets` in a block range.

    Costs one full block per block of the range (batched) plus one receipt
    per wallet-touching transaction, so enable it only for chains where a
    configured wallet holds the native coin.
    """

    def __init__(self, chain: str, wallets: Iterable[str], *, batch_size: int = 25, tracer: Tracer | None = None) -> None:
        self.chain = chain
        self.wallets = frozenset(w.lower() for w in wallets)
        self.batch_size = batch_size
        # Internal value transfers (indexer/evm/traces.py), from the same full blocks.
        self.tracer = tracer

    async def fetch(self, rpc: EvmRpc, from_block: int, to_block: int) -> list[EventRow]:
        if not self.wallets:
            return []
        rows: list[EventRow] = []
        for start in range(from_block, to_block + 1, self.batch_size):
            numbers = list(range(start, min(to_block, start + self.batch_size - 1) + 1))
            blocks = await rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
            for n, block in zip(numbers, blocks):
                if not isinstance(block, dict) or _hex_int(block.get("number"), "block number") != n:
                    raise BadRpcResponse(f"eth_getBlockByNumber({hex(n)}, true): missing or another block")
            hashes = [str(tx.get("hash", "")).lower() for b in blocks for tx in touching(b, self.wallets)]
            receipts: dict[str, dict] = {}
            for i in range(0, len(hashes), 100):
                chunk = hashes[i: i + 100]
                for h, r in zip(chunk, await rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk])):
                    receipts[h] = r
            rows += native_events(self.chain, blocks, self.wallets, receipts)
            if self.tracer is not None:
                rows += await self.tracer.transfers(rpc, blocks, self.wallets)
        return rows
