"""`chainsettle contracts deploy-batcher`: PayoutBatcher on a dev chain.

The deployment is signed with the configured sender key and authorises the
configured signer. Production chains are deployed by hand (README): their
owner should be a multisig, not the hot key that pays gas.
"""

from __future__ import annotations

import asyncio

from eth_abi import encode
from eth_utils import to_checksum_address

from config import ChainsettleError, Settings
from indexer.evm.rpc import EvmRpc
from settlement.payouts.evm.batcher_abi import ARTIFACT
from settlement.payouts.evm.config import load_key
from settlement.payouts.evm.fees import initial_fees
from settlement.payouts.evm.tx import sign_tx

DEV_PRESETS = ("anvil",)
DEPLOY_GAS = 3_000_000


async def deploy_batcher(settings: Settings, chain: str, *, owner: str | None = None) -> str:
    import json

    cfg = settings.chain(chain)
    if cfg.preset not in DEV_PRESETS:
        raise ChainsettleError(f"chain: {chain!r} is not a dev chain; deploy production batchers as the README shows")
    pc = settings.payouts.chain(chain)
    if pc is None:
        raise ChainsettleError(f"chain: add a [[payouts.chains]] entry for {chain!r} (its signer and sender keys)")
    i = settings.payouts.chains.index(pc)
    signer = load_key(pc.signer, f"payouts.chains[{i}].signer")
    sender = load_key(pc.sender, f"payouts.chains[{i}].sender")
    art = json.loads(ARTIFACT.read_text())
    data = bytes.fromhex(art["bytecode"].removeprefix("0x")) + encode(
        ["address", "address"], [to_checksum_address(owner or sender.address), signer.address])
    rpc = EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=cfg.max_attempts)
    try:
        block = await rpc.call("eth_getBlockByNumber", ["latest", False])
        nonce = int(await rpc.call("eth_getTransactionCount", [sender.address, "pending"]), 16)
        fees = initial_fees(base_fee=int(block.get("baseFeePerGas") or "0x0", 16), suggested_priority=pc.max_priority_fee_per_gas,
                            cap=pc.max_fee_per_gas, max_priority=pc.max_priority_fee_per_gas)
        tx = sign_tx(sender, chain_id=cfg.effective_chain_id, nonce=nonce, to=None, data=data, gas=DEPLOY_GAS, fees=fees)
        await rpc.call("eth_sendRawTransaction", [tx.raw])
        for _ in range(600):
            receipt = await rpc.call("eth_getTransactionReceipt", [tx.tx_hash])
            if receipt:
                if int(receipt["status"], 16) != 1:
                    raise ChainsettleError(f"deployment transaction {tx.tx_hash} reverted")
                return to_checksum_address(receipt["contractAddress"])
            await asyncio.sleep(0.1)
        raise ChainsettleError(f"deployment transaction {tx.tx_hash} not mined within 60 s")
    finally:
        await rpc.close()
