"""A chain with an indexed ERC-20 and ERC-721, events written straight into Postgres."""

from __future__ import annotations

from tests.support.ledger import CHAIN, ledger_settings

TOKEN = "0x" + "70" * 20
NFT = "0x" + "71" * 20
ZERO = "0x" + "00" * 20


def dist_settings(tmp_path, *, accounts=(), nft_start=0, payouts=False, api=None):
    """ledger_settings' chain, plus an indexed ERC-20 (tok) and ERC-721 (nft)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    return ledger_settings(tmp_path, accounts=accounts, payouts=payouts, api=api, contracts=[
        {"name": "tok", "address": TOKEN, "abi": "erc20"},
        {"name": "nft", "address": NFT, "abi": "erc721", "start_block": nft_start}])

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


async def seed_rows(pool, chain: str, id_: str = "1") -> None:
    """A snapshot, a distribution with one share and a voucher, all with id `id_`, written directly
    (for route walks that need one of each, without funds or a signer)."""
    a = "0x" + "5e" * 20
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO distribution_snapshots (id, kind, body, holders, total_weight, created_by) "
                           "VALUES ($1, 'list', '{}', 1, 1, 'test')", id_)
        await conn.execute("INSERT INTO distribution_snapshot_weights VALUES ($1, $2, 1)", id_, a)
        await conn.execute(
            "INSERT INTO distributions (id, snapshot_id, asset_id, pool_account, account, total, remainder, "
            "remainder_account, mode, body, recipients, created_by) VALUES ($1, $1, $2, 'app:pool', $3, 5, 0, "
            "'app:pool', 'pull', '{}', 1, 'test')", id_, f"{chain}:native", f"app:dist.{id_}")
        await conn.execute("INSERT INTO distribution_shares (distribution_id, idx, recipient, amount) "
                           "VALUES ($1, 0, $2, 5)", id_, a)
        await conn.execute(
            "INSERT INTO distribution_vouchers (id, nonce, chain, contract, pool_account, account, asset_id, "
            "recipient, amount, valid_after, valid_before, signature, body, created_by) VALUES ($1, $2, $3, $4, "
            "'app:pool', 'app:vouchers.pool', $5, $4, 5, 0, 10, '0x', '{}', 'test')",
            id_, "0x" + "ab" * 32, chain, a, f"{chain}:native")
