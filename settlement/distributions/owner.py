"""The ClaimDistributor owner's calls, queued for the daemon to send itself.

`open_epoch` (claims.py) and `request_revoke` (vouchers.py) return the
owner's calldata for an operator to send. With `--send` (CLI) or
`"send": true` (admin API) the daemon sends them instead: this module
QUEUES them, durably and once each, and the payout worker of the chain
sends them (owner_send.py).

The owner key is the chain's payout SENDER ([[payouts.chains]] `sender`):
one address, one nonce allocator (`evm_nonces`, claimed in the transaction
that stores the signed bytes), one tracking loop to final receipts. Before
anything is queued the contract's `owner()` is read: when it is not that
address the request is refused naming `contract` (the calldata is still
what `open_epoch` / `request_revoke` return without `send`).

Calls and their order (`distribution_owner_calls`, id = idempotency key):
- `epoch:<d>:create`  createEpoch(epoch, root, asset, total, deadline, sweepTo)
- `epoch:<d>:approve` token.approve(contract, total), ERC-20 only, after create
- `epoch:<d>:fund`    fundEpoch(epoch, total) (value = total for the native coin),
                      after approve (or create)
- `epoch:<d>:sweep`   sweep(epoch), after fund; queued once by the payout worker
                      when the distribution is closed (its deadline passed a
                      final block: claims.settle) and `auto_sweep` is set
- `voucher:<id>:revoke` revokeVoucher(nonce)
Each is sent only once its predecessor is CONFIRMED, i.e. its transaction's
receipt is in a final block (a mined, not yet final receipt is not enough).

Operator way out: a failed call (a final receipt with status 0, or a
simulation that reverts before anything is signed) is `retry`-ed (queued
again, a new transaction) or `cancel`-led; so is a queued one. Both audited.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from config import Settings
from config.logs import get_logger
from db import Queries, audit
from db.values import amount_text
from indexer.errors import RpcError
from indexer.evm.rpc import EvmRpc
from settlement.distributions import claim_abi
from settlement.distributions.claims import open_epoch, token_address
from settlement.distributions.snapshots import NotFound, SnapshotConflict, SnapshotRefused
from settlement.distributions.vouchers import Q as VQ
from settlement.distributions.vouchers import request_revoke
from settlement.payouts.evm.config import load_key
from settlement.payouts.evm.signer import SignerError

Q = Queries(Path(__file__).with_name("owner.sql"))
log = get_logger("settlement.distributions.owner")
OWNER_SELECTOR = "0x8da5cb5b"  # owner()
STATES = ("queued", "sent", "confirmed", "failed", "cancelled")


class OwnerRefused(SnapshotRefused):
    """owner call refused"""

    def __init__(self, field: str | None, reason: str, *, code: str | None = None, calls: dict | None = None) -> None:
        super().__init__(field, reason, code=code)
        self.calls = calls  # what the operator sends instead (the calldata), when there is any


class OwnerConflict(SnapshotConflict):
    """the owner call was queued with different values"""


def approve(spender: str, amount: int) -> bytes:
    return function_signature_to_4byte_selector("approve(address,uint256)") + encode(
        ["address", "uint256"], [spender, amount])


def call_view(row) -> dict:
    keys = row.keys()
    return {"id": row["id"], "kind": row["kind"], "chain": row["chain"], "sender": row["sender"],
            "contract": row["contract"], "to": row["target"], "calldata": row["calldata"],
            "value": amount_text(row["value"]), "distribution": row["distribution_id"], "voucher": row["voucher_id"],
            "after": row["after_id"], "after_state": row["after_state"] if "after_state" in keys else None,
            "state": row["state"], "sends": row["sends"], "tx_hash": row["tx_hash"],
            "block_number": row["block_number"], "reason": row["reason"], "created_by": row["created_by"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def payout_sender(settings: Settings, chain: str) -> str:
    """The address of the chain's payout sender; refused (field `send`) without a usable one."""
    for i, pc in enumerate(settings.payouts.chains):
        if pc.chain == chain and pc.kind != "xrpl":
            try:
                return load_key(pc.sender, f"payouts.chains[{i}].sender").address.lower()
            except SignerError as exc:
                raise OwnerRefused("send", f"the payout sender of {chain} is not usable: {exc}") from None
    raise OwnerRefused("send", f"{chain} has no EVM payout sender ([[payouts.chains]]): the daemon cannot send "
                               "owner calls there; send the calldata yourself")


async def contract_owner(settings: Settings, chain: str, contract: str, rpc: EvmRpc | None = None) -> str:
    """`owner()` of the contract at the latest block."""
    cfg = settings.chain(chain)
    own = rpc is None
    rpc = rpc or EvmRpc(cfg.rpc, chain=cfg.name, timeout=cfg.request_timeout, max_attempts=cfg.max_attempts)
    try:
        out = await rpc.call("eth_call", [{"to": contract, "data": OWNER_SELECTOR}, "latest"])
    except RpcError as exc:
        raise OwnerRefused("contract", f"owner() of {contract} on {chain} could not be read "
                                       f"({exc.kind.value})") from None
    finally:
        if own:
            await rpc.close()
    raw = bytes.fromhex((out or "0x")[2:])
    if len(raw) != 32:
        raise OwnerRefused("contract", f"{contract} on {chain} has no owner() (not a ClaimDistributor?)")
    return "0x" + raw[12:].hex()


async def check_owner(settings: Settings, chain: str, contract: str, calls: dict | None = None) -> str:
    """The payout sender of `chain` when it is the contract's owner; refused naming `contract` otherwise."""
    sender = payout_sender(settings, chain)
    owner = await contract_owner(settings, chain, contract)
    if owner != sender:
        raise OwnerRefused("contract", f"owner() of {contract} on {chain} is {owner}, not the payout sender {sender} "
                                       "of that chain: the daemon does not send its calls; the owner sends the "
                                       "calldata", calls=calls)
    return sender


async def _insert(conn: asyncpg.Connection, actor: str, call_id: str, kind: str, chain: str, sender: str,
                  contract: str, target: str, data: bytes, value: int, *, distribution: str | None = None,
                  voucher: str | None = None, after: str | None = None) -> asyncpg.Record:
    """Queue one call once; the same id with other values is a conflict naming what differs."""
    calldata = "0x" + data.hex()
    row = await conn.fetchrow(Q.insert_call, call_id, kind, chain, sender, contract, target, calldata, value,
                              distribution, voucher, after, actor)
    if row is not None:
        await audit(conn, actor, "owner_call.queued", f"owner_call:{call_id}",
                    {"kind": kind, "chain": chain, "to": target, "value": str(value), "after": after})
        return row
    row = await conn.fetchrow(Q.find_call, call_id)
    for field, mine, stored in (("contract", contract, row["contract"]), ("sender", sender, row["sender"]),
                                ("calldata", calldata, row["calldata"]), ("value", value, int(row["value"]))):
        if mine != stored:
            raise OwnerConflict(field, f"{call_id} is queued already with another {field}")
    return row


async def send_epoch(pool: asyncpg.Pool, settings: Settings, distribution_id: str, *, contract: str, epoch: int,
                     deadline: int, sweep_to: str, auto_sweep: bool, actor: str) -> dict:
    """`open_epoch`, then queue its owner calls for the chain's payout worker (each once)."""
    calls = await open_epoch(pool, settings, distribution_id, contract=contract, epoch=epoch, deadline=deadline,
                             sweep_to=sweep_to, actor=actor)
    async with pool.acquire() as conn:
        asset_id = await conn.fetchval("SELECT asset_id FROM distributions WHERE id = $1", distribution_id)
    chain, name = asset_id.split(":", 1)
    contract = calls["contract"]
    sender = await check_owner(settings, chain, contract, calls)
    total, value = int(calls["total"]), int(calls["fund_value"])
    key = f"epoch:{distribution_id}"
    async with pool.acquire() as conn, conn.transaction():
        rows = [await _insert(conn, actor, f"{key}:create", "create_epoch", chain, sender, contract, contract,
                              bytes.fromhex(calls["create_epoch"][2:]), 0, distribution=distribution_id)]
        after = rows[0]["id"]
        if name != "native":
            token = token_address(settings, chain, name)
            rows.append(await _insert(conn, actor, f"{key}:approve", "approve", chain, sender, contract, token,
                                      approve(contract, total), 0, distribution=distribution_id, after=after))
            after = rows[-1]["id"]
        rows.append(await _insert(conn, actor, f"{key}:fund", "fund_epoch", chain, sender, contract, contract,
                                  bytes.fromhex(calls["fund_epoch"][2:]), value, distribution=distribution_id,
                                  after=after))
        await conn.execute(Q.insert_epoch, distribution_id, chain, contract, epoch, auto_sweep, actor)
        stored = await conn.fetchrow(Q.find_epoch, distribution_id)
    log.info("owner_calls.queued", distribution=distribution_id, chain=chain, calls=[r["id"] for r in rows])
    return {**calls, "auto_sweep": stored["auto_sweep"], "owner_calls": [call_view(r) for r in rows]}


async def send_revoke(pool: asyncpg.Pool, settings: Settings, voucher_id: str, actor: str) -> dict:
    """`request_revoke`, then queue `revokeVoucher(nonce)` once for the chain's payout worker."""
    async with pool.acquire() as conn:
        v = await conn.fetchrow(VQ.find_voucher, voucher_id)
    if v is None:
        raise NotFound("id", f"no voucher {voucher_id!r}")
    if v["state"] != "issued":
        raise OwnerRefused("id", f"voucher {voucher_id} is {v['state']}; only an issued one can be revoked")
    out = await request_revoke(pool, voucher_id, actor)
    sender = await check_owner(settings, v["chain"], v["contract"], out)
    async with pool.acquire() as conn, conn.transaction():
        row = await _insert(conn, actor, f"voucher:{voucher_id}:revoke", "revoke_voucher", v["chain"], sender,
                            v["contract"], v["contract"], bytes.fromhex(out["revoke_calldata"][2:]), 0,
                            voucher=voucher_id)
    log.info("owner_calls.queued", voucher=voucher_id, chain=v["chain"], calls=[row["id"]])
    return {**out, "owner_call": call_view(row)}


async def queue_sweeps(pool: asyncpg.Pool, chain: str, actor: str = "owner-calls") -> list[str]:
    """`sweep(epoch)` of every closed auto-sweep distribution of the chain, queued once (after its fund)."""
    queued = []
    async with pool.acquire() as conn:
        due = await conn.fetch(Q.sweeps_due, chain)
    for d in due:
        async with pool.acquire() as conn, conn.transaction():
            key = f"epoch:{d['distribution_id']}"
            row = await conn.fetchrow(Q.insert_call, f"{key}:sweep", "sweep", chain, d["sender"], d["contract"],
                                      d["contract"], "0x" + claim_abi.sweep(int(d["epoch"])).hex(), 0,
                                      d["distribution_id"], None, f"{key}:fund", actor)
            if row is None:
                continue
            await audit(conn, actor, "owner_call.queued", f"owner_call:{row['id']}",
                        {"kind": "sweep", "chain": chain, "to": d["contract"], "after": f"{key}:fund"})
        queued.append(row["id"])
        log.info("owner_calls.sweep_queued", distribution=d["distribution_id"], chain=chain)
    return queued


async def list_calls(conn: asyncpg.Connection, *, state: str | None = None, chain: str | None = None,
                     limit: int = 500) -> list[dict]:
    if state is not None and state not in STATES:
        raise OwnerRefused("state", f"one of {', '.join(STATES)}")
    return [call_view(r) for r in await conn.fetch(Q.calls_page, state, chain, limit)]


async def _operate(pool: asyncpg.Pool, call_id: str, query: str, action: str, need: str, reason: str | None,
                   actor: str) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(query, call_id, reason)
        if row is None:
            found = await conn.fetchrow(Q.find_call, call_id)
            if found is None:
                raise NotFound("id", f"no owner call {call_id!r}")
            raise OwnerRefused("id", f"{call_id} is {found['state']}; {action} needs it {need}", code="conflict")
        await audit(conn, actor, f"owner_call.{action}", f"owner_call:{call_id}", {"reason": reason})
        if action == "cancel":  # what could only follow it would wait for ever: cancelled with it
            why = f"cancelled with {call_id}" + (f": {reason}" if reason else "")
            for dep in await conn.fetch(Q.cancel_dependents, call_id, why):
                await audit(conn, actor, "owner_call.cancel", f"owner_call:{dep['id']}", {"reason": why})
        row = await conn.fetchrow(Q.find_call, call_id)
    log.warning(f"owner_calls.{action}", id=call_id, actor=actor)
    return call_view(row)


async def retry_call(pool: asyncpg.Pool, call_id: str, actor: str, reason: str | None = None) -> dict:
    """A failed call queued again: the payout worker sends a new transaction for it."""
    return await _operate(pool, call_id, Q.retry_call, "retry", "failed", reason, actor)


async def cancel_call(pool: asyncpg.Pool, call_id: str, actor: str, reason: str | None = None) -> dict:
    """A queued or failed call is not sent (again), nor the queued calls that could only follow it; a sent one
    cannot be cancelled (it may be mined). A cancelled fundEpoch also means no sweep is queued."""
    return await _operate(pool, call_id, Q.cancel_call, "cancel", "queued or failed", reason, actor)
