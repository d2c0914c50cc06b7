"""A chain with an indexed ERC-20 and ERC-721, events written straight into Postgres."""

from __future__ import annotations

from tests.support.config import make_settings
from tests.support.ledger import BATCHER, CHAIN

TOKEN = "0x" + "70" * 20
NFT = "0x" + "71" * 20
ZERO = "0x" + "00" * 20


def dist_settings(tmp_path, *, accounts=(), nft_start=0, payouts=False, require_balance=True):
    """ledger_settings' chain, plus an indexed ERC-20 (tok) and ERC-721 (nft)."""
    import os

    chain = {"name": CHAIN, "preset": "anvil", "rpc": ["http://127.0.0.1:1"],
             "wallets": [{"name": "hot", "address": "0x" + "a1" * 20, "assets": ["native"]}],
             "contracts": [{"name": "tok", "address": TOKEN, "abi": "erc20"},
                           {"name": "nft", "address": NFT, "abi": "erc721", "start_block": nft_start}]}
    data: dict = {"chains": [chain], "ledger": {"accounts": list(accounts), "create_app_accounts": False}}
    if payouts:
        os.environ.setdefault("CS_TEST_SIGNER_KEY", "0x" + "11" * 32)
        os.environ.setdefault("CS_TEST_SENDER_KEY", "0x" + "22" * 32)
        data["payouts"] = {"require_balance": require_balance, "chains": [{
            "chain": CHAIN, "batcher": BATCHER, "signer": {"key": "env:CS_TEST_SIGNER_KEY"},
            "sender": {"key": "env:CS_TEST_SENDER_KEY"}, "max_fee_per_gas": 10**11,
            "assets": [{"name": "native"}]}]}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return make_settings(tmp_path, data)


async def add_transfer(pool, contract: str, block: int, log: int, frm: str, to: str, *, value: int | None = None,
                       token_id: int | None = None) -> None:
    args = {"from": frm, "to": to}
    if value is not None:
        args["value"] = str(value)
    else:
        args["tokenId"] = str(token_id)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO events (chain, block_number, block_hash, tx_hash, tx_index, log_index, address, event, args)"
            " VALUES ($1, $2, $3, $4, 0, $5, $6, 'Transfer', $7)",
            CHAIN, block, f"0x{block:064x}", f"0x{block:062x}{log:02x}", log, contract, args)
