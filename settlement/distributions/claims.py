"""Pull: Merkle claims of a distribution from a ClaimDistributor epoch.

The tree: one leaf `(index, account, amount)` per share, in the
OpenZeppelin StandardMerkleTree encoding (merkle.py); rebuilt on demand from
the immutable shares, so the published dump, root and proofs never change.

`open_epoch` fixes, once, the contract and epoch id the tree is claimed from
and the claim deadline (block time), and returns the owner's calls:
`createEpoch(epoch, root, asset, total, deadline, sweepTo)` with total = the
sum of the tree (the contract refuses every claim until that exact total is
funded) and `fundEpoch`.

Ledger. Each share stays in its recipient's entitlement account
(`entitlement:<id>:<recipient>`, entitlements.py) until its claim is FINAL:
`settle` reads the contract's final `Claimed` events of the epoch and, per
share, in one transaction, marks it claimed and books (cause 'event', keyed
to the Claimed event, so the indexer's reorg delete would remove it with the
event) debit the entitlement / credit the account
of the contract: its wallet account when the ClaimDistributor is a configured
wallet (so funding it from another wallet is an internal move), else
`external:<chain>:<contract>`. Claims above the final height are shown as
pending, never settled: a reorg that drops one leaves nothing to undo, and
the claim settles once its replacement is final. A share whose settling
event vanished (only a reorg deeper than finality could do it) goes back to
owed.

Expiry. Once a final block's time is past the deadline no claim can still
come (the contract refuses them), and every claim made in time is final: in
the same transaction the remaining owed shares become expired and the
distribution closes, once. With `unclaimed = 'pool'` the expired
entitlements go back to `app:dist.<id>` and their sum from there to the pool
account (transfer `distribution:<id>:expired`); with 'rollover' they stay
owed in the entitlements until a later distribution names this one in
`carry_from`: that one adds each expired share to the same recipient's share
and takes the liability over (through both hubs: transfer
`distribution:<new>:carried`), once. The owner's `sweep` moves the
same amount on chain (to `sweepTo`, or into the next epoch's funding).
"""

from __future__ import annotations

import asyncpg
from prometheus_client import Counter

from config import Settings
from config.logs import get_logger
from db import audit
from db.values import amount_text
from settlement.distributions import claim_abi
from settlement.distributions.book import book_linked, contract_account
from settlement.distributions.entitlements import entitlement_account, fan
from settlement.distributions.merkle import StandardMerkleTree, claim_tree
from settlement.distributions.snapshots import NotFound, Q, SnapshotRefused
from settlement.ledger.books import Posting, post_transaction
from settlement.ledger.pauses import pause_asset
from settlement.ledger.transfers import Transfer, retrying

log = get_logger("settlement.distributions.claims")
ACTOR = "claims"
CLAIM_MISMATCHES = Counter("chainsettle_distribution_claim_mismatches_total",
                           "Final Claimed events that paid a leaf which is not the distribution's share "
                           "(the asset's payouts pause)", ["asset"])
_HEX = "0123456789abcdef"


class ClaimsRefused(SnapshotRefused):
    """claims refused"""


async def tree_of(conn: asyncpg.Connection, distribution_id: str) -> StandardMerkleTree:
    d = await conn.fetchrow(Q.find_distribution, distribution_id)
    if d is None:
        raise NotFound("id", f"no distribution {distribution_id!r}")
    if d["mode"] != "pull":
        raise ClaimsRefused("mode", f"{distribution_id} is pushed, it has no claim tree")
    rows = await conn.fetch(Q.all_shares, distribution_id)
    for r in rows:
        a = r["recipient"]
        if not (len(a) == 42 and a.startswith("0x") and all(c in _HEX for c in a[2:])):
            raise ClaimsRefused("snapshot", f"share {r['idx']}: {a!r} is not an EVM address; claims are EVM only")
    return claim_tree([(r["idx"], r["recipient"], int(r["amount"])) for r in rows])


async def proof_of(conn: asyncpg.Connection, distribution_id: str, account: str,
                   tree: StandardMerkleTree | None = None) -> dict:
    """One account's leaf and proof (`tree`: the distribution's, when the caller has it already)."""
    tree = tree or await tree_of(conn, distribution_id)
    share = await conn.fetchrow(Q.share_of, distribution_id, account.lower())
    if share is None:
        raise NotFound("account", f"{account} has no share in {distribution_id}")
    d = await conn.fetchrow(Q.find_distribution, distribution_id)
    idx = share["idx"]
    return {"distribution": distribution_id, "index": idx, "account": share["recipient"],
            "amount": amount_text(share["amount"]), "state": share["state"], "root": tree.root, "proof": tree.proof(idx),
            "contract": d["claim_contract"], "epoch": None if d["epoch"] is None else amount_text(d["epoch"])}


async def open_epoch(pool: asyncpg.Pool, settings: Settings, distribution_id: str, *, contract: str, epoch: int,
                     deadline: int, sweep_to: str, actor: str) -> dict:
    """Fix the epoch (once; the same values replay) and return the owner's calldata."""
    contract = contract.lower()
    async with pool.acquire() as conn, conn.transaction():
        d = await conn.fetchrow(Q.lock_distribution, distribution_id)
        if d is None:
            raise NotFound("id", f"no distribution {distribution_id!r}")
        tree = await tree_of(conn, distribution_id)
        if d["epoch"] is None:
            await conn.fetchval(Q.set_epoch, distribution_id, contract, epoch, tree.root, deadline)
            await audit(conn, actor, "distribution.epoch", f"distribution:{distribution_id}",
                        {"contract": contract, "epoch": str(epoch), "root": tree.root, "deadline": deadline})
        elif (d["claim_contract"], int(d["epoch"]), d["deadline"]) != (contract, epoch, deadline):
            raise ClaimsRefused("epoch", f"{distribution_id} is already claimed from epoch {d['epoch']} of "
                                         f"{d['claim_contract']} until {d['deadline']}")
    chain, name = d["asset_id"].split(":", 1)
    asset = claim_abi.NATIVE if name == "native" else token_address(settings, chain, name)
    owed = int(d["total"]) - int(d["remainder"]) + int(d["carried"])
    return {"contract": contract, "epoch": str(epoch), "root": tree.root, "total": str(owed), "deadline": deadline,
            "create_epoch": "0x" + claim_abi.create_epoch(epoch, tree.root, asset, owed, deadline, sweep_to).hex(),
            "fund_epoch": "0x" + claim_abi.fund_epoch(epoch, owed).hex(),
            "fund_value": str(owed) if asset == claim_abi.NATIVE else "0"}


def token_address(settings: Settings, chain: str, name: str) -> str:
    for c in settings.chain(chain).contracts:
        if c.name == name:
            return c.address.lower()
    raise ClaimsRefused("asset", f"{chain}:{name} is not a configured token contract")


async def _mismatch(conn: asyncpg.Connection, d: asyncpg.Record, e: asyncpg.Record) -> None:
    """A final Claimed event the epoch's contract paid for a leaf that is not this distribution's share:
    the contract's root is not the daemon's tree, so what it pays is not what the books owe. Fail closed,
    once per event, in the settling transaction: payouts of the asset pause (an operator resolves it),
    an audit row, a metric; the share stays owed and the rest of the epoch keeps settling."""
    subject = f"distribution:{d['id']}"
    if await conn.fetchval(Q.mismatch_seen, subject, str(e["id"])):
        return
    detail = {"event_id": str(e["id"]), "index": str(e["idx"]), "account": e["account"], "amount": str(e["amount"]),
              "contract": d["claim_contract"], "epoch": str(d["epoch"])}
    await audit(conn, ACTOR, "distribution.claim_mismatch", subject, detail)
    await pause_asset(conn, d["asset_id"], f"distribution {d['id']}: final Claimed event {e['id']} paid leaf "
                                           f"{e['idx']} of epoch {d['epoch']}, which is not its share", ACTOR)
    CLAIM_MISMATCHES.labels(d["asset_id"]).inc()
    log.error("distribution.claim_mismatch", id=d["id"], **detail)


async def settle(pool: asyncpg.Pool, settings: Settings, distribution_id: str, actor: str = "claims") -> dict:
    """Settle final claims, un-settle vanished ones, expire after the deadline: one transaction."""

    async def work(conn: asyncpg.Connection) -> dict:
        d = await conn.fetchrow(Q.lock_distribution, distribution_id)
        if d is None:
            raise NotFound("id", f"no distribution {distribution_id!r}")
        out = {"settled": [], "unsettled": [], "expired": 0, "pending": 0, "closed": False, "mismatched": []}
        if d["epoch"] is None or d["state"] != "open":
            return out
        chain = d["asset_id"].split(":", 1)[0]
        contract, epoch = d["claim_contract"], d["epoch"]
        shares = {r["idx"]: r for r in await conn.fetch(Q.all_shares, distribution_id)}
        events = await conn.fetch(Q.final_claims, chain, contract, epoch)
        counter = await contract_account(conn, chain, contract)
        for e in events:
            s = shares.get(int(e["idx"]))
            if s is None or s["recipient"] != e["account"] or int(s["amount"]) != int(e["amount"]):
                await _mismatch(conn, d, e)
                out["mismatched"].append(int(e["idx"]))
                continue
            if await conn.fetchrow(Q.settle_share, distribution_id, s["idx"], e["id"]) is None:
                continue
            amount = int(s["amount"])
            await post_transaction(
                conn, key=f"claim:{distribution_id}:{s['idx']}:{e['id']}", cause_kind="event",
                cause={"distribution": distribution_id, "index": s["idx"], "epoch": str(epoch)}, chain=chain,
                block_number=e["block_number"], event_id=e["id"], tx_hash=e["tx_hash"],
                postings=[Posting(entitlement_account(distribution_id, s["recipient"]), d["asset_id"], amount),
                          Posting(counter, d["asset_id"], -amount)])
            out["settled"].append(s["idx"])
        out["unsettled"] = [r["idx"] for r in await conn.fetch(Q.unsettle_shares, distribution_id,
                                                                [e["id"] for e in events])]
        out["pending"] = await conn.fetchval(Q.pending_claims, chain, contract, epoch)
        final_time = await conn.fetchval(Q.final_block_time, chain)
        if final_time is not None and final_time > d["deadline"]:
            expired = await conn.fetch(Q.expire_shares, distribution_id)
            rest = sum(int(r["amount"]) for r in expired)
            # 'rollover': the rest stays owed in this account until a later distribution carries it.
            if rest and d["unclaimed"] == "pool":
                await fan(conn, key=f"distribution:{distribution_id}:expired-shares", hub=d["account"],
                          asset=d["asset_id"], distribution_id=distribution_id,
                          amounts=[(r["recipient"], int(r["amount"])) for r in expired], direction=-1, actor=actor,
                          memo="unclaimed at the deadline")
                await book_linked(conn, settings, [Transfer(
                    f"distribution:{distribution_id}:expired", d["account"], d["pool_account"], d["asset_id"], rest,
                    memo=f"distribution {distribution_id}: unclaimed at the deadline")], actor)
            out["expired"] = len(expired)
            out["closed"] = await conn.fetchval(Q.close_distribution, distribution_id) is not None
            await audit(conn, actor, "distribution.expired", f"distribution:{distribution_id}",
                        {"shares": len(expired), "amount": str(rest), "unclaimed": d["unclaimed"]})
        return out

    out = await retrying(pool, work)
    if out["settled"] or out["expired"] or out["unsettled"]:
        log.info("distribution.claims", id=distribution_id, settled=len(out["settled"]),
                 unsettled=len(out["unsettled"]), expired=out["expired"], pending=out["pending"])
    return out
