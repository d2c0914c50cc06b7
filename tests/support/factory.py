"""A factory of rounds on anvil, and what the chain says its children and their events are."""

from __future__ import annotations

from eth_utils import keccak

from daemon.devchain import ARTIFACTS, DEPLOYER, calldata, deploy, send, wait_receipt

from .anvil import rpc_sync

ROUND_CREATED = "0x" + keccak(text="RoundCreated(address,uint256)").hex()
EVENT_NAMES = {
    ROUND_CREATED: "RoundCreated",
    "0x" + keccak(text="Opened(uint256)").hex(): "Opened",
    "0x" + keccak(text="Ticket(address,uint256)").hex(): "Ticket",
}


def deploy_factory(url: str) -> str:
    return deploy(url, "TestRoundFactory")


def factory_contract(address: str, start_block: int = 0) -> dict:
    """The `[[chains.contracts]]` entry of a round factory."""
    return {
        "name": "Rounds", "address": address, "abi": str(ARTIFACTS / "TestRoundFactory.json"),
        "start_block": start_block,
        "factory": {"event": "RoundCreated", "parameter": "round", "child_abi": str(ARTIFACTS / "TestRound.json")},
    }


def create_tx(factory: str, tickets: int = 0) -> dict:
    data = calldata("createAndBuy(uint256)", ["uint256"], [tickets]) if tickets else calldata("create()", [], [])
    return {"from": DEPLOYER, "to": factory, "data": data, "gas": hex(400_000 + 3_000 * tickets)}


def create(url: str, factory: str, tickets: int = 0) -> dict:
    tx = create_tx(factory, tickets)
    return send(url, DEPLOYER, factory, tx["data"], gas=int(tx["gas"], 16))


def created(receipt: dict) -> str:
    """The round a create transaction announced."""
    return next("0x" + lg["topics"][1][-40:] for lg in receipt["logs"] if lg["topics"][0] == ROUND_CREATED)


def buy_tx(round_address: str, n: int = 1) -> dict:
    return {"from": DEPLOYER, "to": round_address, "data": calldata("buyMany(uint256)", ["uint256"], [n]),
            "gas": hex(60_000 + 3_000 * n)}


def buy(url: str, round_address: str, n: int = 1) -> dict:
    tx = buy_tx(round_address, n)
    return send(url, DEPLOYER, round_address, tx["data"], gas=int(tx["gas"], 16))


def mine_together(url: str, txs: list[dict]) -> list[dict]:
    """`txs` in one block, in this order."""
    rpc_sync(url, "evm_setAutomine", [False])
    try:
        hashes = [rpc_sync(url, "eth_sendTransaction", [tx]) for tx in txs]
        rpc_sync(url, "evm_mine", [])
    finally:
        rpc_sync(url, "evm_setAutomine", [True])
    return [wait_receipt(url, h, check=True) for h in hashes]


def canonical(url: str, factory: str, to_block: str = "latest") -> tuple[dict[str, int], list[tuple]]:
    """(children -> creation block, event keys) as the node's canonical chain has them."""
    logs = rpc_sync(url, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": to_block}])
    children: dict[str, int] = {}
    for lg in logs:
        if lg["address"].lower() == factory.lower() and lg["topics"][0] == ROUND_CREATED:
            children.setdefault("0x" + lg["topics"][1][-40:], int(lg["blockNumber"], 16))
    watched = {factory.lower(), *children}
    keys = sorted(
        (int(lg["blockNumber"], 16), lg["blockHash"].lower(), lg["transactionHash"].lower(), int(lg["logIndex"], 16),
         lg["address"].lower(), EVENT_NAMES[lg["topics"][0]])
        for lg in logs if lg["address"].lower() in watched and lg["topics"][0] in EVENT_NAMES)
    return children, keys


async def stored(pool, chain: str = "local") -> tuple[dict[str, int], list[tuple]]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        children = {r["address"]: r["block_number"] for r in await conn.fetch(
            "SELECT address, block_number FROM factory_children WHERE chain = $1", chain)}
        keys = sorted(tuple(r) for r in await conn.fetch(
            """SELECT block_number, block_hash, tx_hash, log_index, address, event FROM events
               WHERE chain = $1 AND address <> 'native'""", chain))
    return children, keys
