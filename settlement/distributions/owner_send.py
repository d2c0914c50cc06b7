"""Sending the queued ClaimDistributor owner calls from the chain's payout worker.

The payout worker of a chain runs `OwnerCalls.step` after its tracking pass
(`EvmTxSender.track`, which rebroadcasts, bumps and reads receipts of every
open nonce of the sender, owner calls included). A step:

1. decides SENT calls from their transactions (those of the current send,
   `evm_txs.owner_call_id`, id >= `sent_tx_id`): an attempt mined in a block
   the tracker marked FINAL (at or below the final height, canonical by
   hash) confirms the call (status 1) or fails it (status 0: metric, error
   log, audit row with the decoded revert); every attempt dropped (a final
   block shows the nonce used by another, none of ours mined, so none ever
   can be) queues it again. Anything else is still in flight: mined but not
   final is not decided.
2. queues `sweep(epoch)` once for closed auto-sweep distributions (owner.py).
3. unless the kill switch is on or the run is dry: sends READY calls (queued,
   predecessor confirmed; approve and fundEpoch not while their asset is
   paused), one at a time: simulate (`eth_estimateGas` from the
   sender: a revert fails the call before anything is signed, with its
   reason), then in ONE transaction, under the call's row lock, claim the
   nonce, sign and store the transaction (`store_tx`, linking it to the call)
   and mark the call sent; broadcast after commit. A crash between commit and
   broadcast leaves a stored transaction the next tracking pass broadcasts
   as it is (same nonce, same hash); the call, being 'sent', is never signed
   again. A call whose stored owner is no longer the chain's sender fails
   ("sender") instead of being signed by another key.
"""

from __future__ import annotations

import re

import asyncpg
from eth_abi import decode

from config.logs import get_logger
from db import audit
from indexer.errors import RpcError, RpcErrorKind
from settlement.distributions import claim_abi
from settlement.distributions.owner import Q, queue_sweeps
from settlement.ledger.pauses import open_pauses
from settlement.payouts import metrics as pm
from settlement.payouts.evm.sender import EvmTxSender

log = get_logger("settlement.distributions.owner")
ACTOR = "owner-calls"
LIVE = ("signed", "broadcast", "stuck_fee_cap", "mined")
MOVES_VALUE = ("approve", "fund_epoch")
STUCK_SECONDS = 1800
GAS_MARGIN = 1.25
_ERRORS = claim_abi.errors()
_DATA = re.compile(r"\((0x[0-9a-fA-F]*)\)")


def revert_text(data: str | None) -> str:
    """A ClaimDistributor custom error by name (with its arguments), else the raw revert data."""
    raw = bytes.fromhex((data or "0x")[2:]) if isinstance(data, str) and data.startswith("0x") else b""
    if raw[:4] in _ERRORS:
        name, types = _ERRORS[raw[:4]]
        try:
            args = decode(types, raw[4:])
        except Exception:  # noqa: BLE001 - malformed revert data: show its name only
            return name
        return f"{name}({', '.join('0x' + a.hex() if isinstance(a, bytes) else str(a) for a in args)})"
    if raw[:4] == bytes.fromhex("08c379a0"):
        return f"Error({decode(['string'], raw[4:])[0][:200]!r})"
    return "reverted" + (f" (0x{raw.hex()[:200]})" if raw else "")


def _revert_data(exc: RpcError) -> str | None:
    """The revert data the RPC layer appends to the message as `(0x...)` (indexer/evm/rpc.py)."""
    found = _DATA.findall(str(exc.args[0]) if exc.args else "")
    return found[-1] if found else None


class OwnerCalls:
    """The owner-call step of one chain's payout worker (the same sender, nonces and tracking)."""

    def __init__(self, pool: asyncpg.Pool, sender: EvmTxSender) -> None:
        self.pool = pool
        self.sender = sender
        self.chain = sender.chain

    async def step(self, *, killed: bool, dry_run: bool = False) -> None:
        await self.decide()
        await queue_sweeps(self.pool, self.chain, ACTOR)
        if not killed and not dry_run:
            await self.send_ready()

    # -- deciding from final receipts ---------------------------------------------------------

    async def decide(self) -> None:
        async with self.pool.acquire() as conn:
            sent = await conn.fetch(Q.sent_calls, self.chain)
        for call in sent:
            async with self.pool.acquire() as conn:
                txs = await conn.fetch(Q.call_txs, call["id"], call["sent_tx_id"])
            final = next((t for t in txs if t["state"] == "mined" and t["final"]), None)
            if final is not None:
                await self._decide(call, final)
            elif txs and not any(t["state"] in LIVE for t in txs):
                why = "every transaction of the send was dropped (its nonce used by another): sent again"
                async with self.pool.acquire() as conn, conn.transaction():
                    if await conn.fetchval(Q.requeue_lost, call["id"], why) is not None:
                        await audit(conn, ACTOR, "owner_call.requeued", f"owner_call:{call['id']}",
                                    {"reason": why, "txs": [t["tx_hash"] for t in txs]})
                log.warning("owner_calls.requeued", id=call["id"], chain=self.chain)

    async def _decide(self, call: asyncpg.Record, tx: asyncpg.Record) -> None:
        ok = tx["receipt_status"] == 1
        reason = None if ok else await self._revert_reason(call, tx)
        state = "confirmed" if ok else "failed"
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(Q.decide_call, call["id"], state, tx["tx_hash"], tx["mined_block"],
                                   reason) is None:
                return
            await audit(conn, ACTOR, f"owner_call.{state}", f"owner_call:{call['id']}",
                        {"tx": tx["tx_hash"], "block": tx["mined_block"], "reason": reason})
        if ok:
            pm.OWNER_CALLS_CONFIRMED.labels(self.chain, call["kind"]).inc()
            log.info("owner_calls.confirmed", id=call["id"], chain=self.chain, tx=tx["tx_hash"],
                     block=tx["mined_block"])
        else:
            pm.OWNER_CALLS_FAILED.labels(self.chain, call["kind"]).inc()
            log.error("owner_calls.failed", id=call["id"], chain=self.chain, tx=tx["tx_hash"],
                      block=tx["mined_block"], reason=reason)

    async def _revert_reason(self, call: asyncpg.Record, tx: asyncpg.Record) -> str:
        """Replayed as a call on the state before its block: the contract's error, when it says one."""
        where = f"reverted in final block {tx['mined_block']} (transaction {tx['tx_hash']})"
        try:
            await self.sender.rpc.call("eth_call", [self._call(call, tx["gas_limit"]),
                                                    hex(max(tx["mined_block"] - 1, 0))])
        except RpcError as exc:
            return f"{where}: {revert_text(_revert_data(exc))}"
        return f"{where}: out of gas or state changed in its block"

    # -- sending ------------------------------------------------------------------------------

    def _call(self, call: asyncpg.Record, gas: int | None = None) -> dict:
        out = {"from": self.sender.address, "to": call["target"], "data": call["calldata"],
               "value": hex(int(call["value"]))}
        if gas:
            out["gas"] = hex(gas)
        return out

    async def send_ready(self, limit: int = 20) -> int:
        async with self.pool.acquire() as conn:
            ready = await conn.fetch(Q.ready_calls, self.chain, limit)
            paused = {p["asset_id"] for p in await open_pauses(conn)}
        sent = 0
        for call in ready:
            if call["kind"] in MOVES_VALUE and call["asset_id"] in paused:
                continue  # the asset is paused (reconciliation, fail closed): none of it leaves, as for batches
            if call["sender"] != self.sender.address:
                await self._fail_unsent(call, f"sender: queued for owner {call['sender']}, but the payout sender of "
                                              f"{self.chain} is now {self.sender.address}; retry after restoring it, "
                                              "or cancel")
                continue
            try:
                gas = await self.sender.rpc.call("eth_estimateGas", [self._call(call)])
            except RpcError as exc:
                if exc.kind is not RpcErrorKind.EXECUTION:
                    log.warning("owner_calls.estimate_failed", id=call["id"], chain=self.chain, kind=exc.kind.value)
                    continue  # a node problem, not the call's: the next pass tries again
                await self._fail_unsent(call, f"simulation from {self.sender.address} reverts: "
                                              f"{revert_text(_revert_data(exc))}")
                continue
            gas = int(int(gas, 16) * GAS_MARGIN) + 10_000
            prep = await self.sender.prepare()
            async with self.pool.acquire() as conn, conn.transaction():
                if await conn.fetchrow(Q.lock_queued, call["id"]) is None:
                    continue  # sent, cancelled or decided meanwhile (another worker, an operator)
                stored = await self.sender.store_tx(
                    conn, purpose="owner_call", batch_id=None, to=call["target"],
                    data=bytes.fromhex(call["calldata"][2:]), gas=gas, fees=prep.fees, nonce_floor=prep.nonce_floor,
                    value=int(call["value"]), owner_call_id=call["id"])
                await conn.fetchval(Q.mark_sent, call["id"], stored.id)
                await audit(conn, ACTOR, "owner_call.sent", f"owner_call:{call['id']}",
                            {"tx": stored.signed.tx_hash, "nonce": stored.nonce, "gas": gas})
            log.info("owner_calls.sent", id=call["id"], chain=self.chain, tx=stored.signed.tx_hash,
                     nonce=stored.nonce)
            await self.sender.broadcast(stored.id, stored.signed.raw, stored.signed.tx_hash)
            sent += 1
        return sent

    async def _fail_unsent(self, call: asyncpg.Record, reason: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(Q.fail_unsent, call["id"], reason) is None:
                return
            await audit(conn, ACTOR, "owner_call.failed", f"owner_call:{call['id']}", {"reason": reason})
        pm.OWNER_CALLS_FAILED.labels(self.chain, call["kind"]).inc()
        log.error("owner_calls.failed", id=call["id"], chain=self.chain, reason=reason)


async def refresh_owner_gauges(conn: asyncpg.Connection, chains: list[str]) -> None:
    """Per chain: queued / sent / failed counts and the stuck count, 0 when none (alert rules read these)."""
    counts = {(r["chain"], r["state"]): int(r["n"]) for r in await conn.fetch(Q.state_counts)}
    stuck = {r["chain"]: int(r["n"]) for r in await conn.fetch(Q.stuck_counts, STUCK_SECONDS)}
    for chain in chains:
        for state in ("queued", "sent", "failed"):
            pm.OWNER_CALLS.labels(chain, state).set(counts.get((chain, state), 0))
        pm.OWNER_CALLS_STUCK.labels(chain).set(stuck.get(chain, 0))
