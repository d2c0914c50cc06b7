"""`chainsettle payouts ...` and `chainsettle contracts deploy-batcher`: registered through daemon.cli_ext."""

from __future__ import annotations

import json

from config import ChainsettleError, Settings
from db.values import text_default

from .cli_table import add_json_flag, emit

LIST_COLUMNS = {
    "requests": ["id", "idempotency_key", "chain", "asset", "recipient", "amount", "state", "reason", "batch_id",
                 "created_at"],
    "batches": ["batch_id", "chain", "asset", "state", "item_count", "total", "approved_by", "executed_block",
                "created_at"],
    "transactions": ["id", "chain", "nonce", "attempt", "purpose", "batch_id", "tx_hash", "state", "mined_block",
                     "last_error"],
    "xrpl_payments": ["id", "chain", "sequence", "destination", "amount", "state", "result", "tx_hash", "last_error"],
    "controls": ["scope", "killed", "reason", "changed_by", "changed_at"],
}
HELD_COLUMNS = {"held": ["id", "idempotency_key", "chain", "asset", "recipient", "amount", "reason", "batch_id",
                         "batch_state", "updated_at"]}


def register(sub) -> None:
    p = sub.add_parser("payouts", help="payout requests, approvals, kill switch, listing")
    ps = p.add_subparsers(dest="payouts_command", required=True)

    r = ps.add_parser("request", help="request one payout (the same --key twice is one payout)")
    r.add_argument("--chain", required=True)
    r.add_argument("--asset", required=True)
    r.add_argument("--to", required=True)
    r.add_argument("--amount", required=True, help="integer base units")
    r.add_argument("--key", required=True, help="idempotency key")
    r.add_argument("--tag", type=int, help="XRPL destination tag of the recipient")
    r.add_argument("--from-account", help="the account paying, e.g. app:prizes (default: the recipient's own)")
    r.add_argument("--actor", default="cli")
    r.set_defaults(func=_cmd_request)

    a = ps.add_parser("approve", help="approve a batch above the approval threshold")
    a.add_argument("batch")
    a.add_argument("--by", required=True, help="who approves (recorded)")
    a.set_defaults(func=_cmd_approve)

    k = ps.add_parser("kill", help="stop signing now (all chains, or --chain)")
    k.add_argument("--chain")
    k.add_argument("--reason", required=True)
    k.add_argument("--actor", default="cli")
    k.set_defaults(func=_cmd_kill, killed=True)
    u = ps.add_parser("resume", help="lift a run-time kill switch (all chains, or --chain)")
    u.add_argument("--chain")
    u.add_argument("--reason", required=True)
    u.add_argument("--actor", default="cli")
    u.set_defaults(func=_cmd_kill, killed=False)

    ls = ps.add_parser("list", help="requests, batches, transactions and their states")
    ls.add_argument("--chain")
    ls.add_argument("--limit", type=int, default=1000)
    add_json_flag(ls)
    ls.set_defaults(func=_cmd_list)

    h = ps.add_parser("held", help="held payout requests with their reasons")
    h.add_argument("--chain")
    h.add_argument("--limit", type=int, default=1000)
    add_json_flag(h)
    h.set_defaults(func=_cmd_held)
    rl = ps.add_parser("release", help="requeue a batch's held requests (once nothing signed can pay them)")
    rl.add_argument("batch", help="batch id (0x + 64 hex)")
    rl.add_argument("--without", action="append", default=[], metavar="RECIPIENT",
                    help="leave this recipient held (repeatable)")
    rl.add_argument("--reason")
    rl.add_argument("--actor", default="cli")
    rl.set_defaults(func=_cmd_release)
    cn = ps.add_parser("cancel", help="cancel an unsigned batch, or a batch's held requests; frees the reservation")
    cn.add_argument("batch", help="batch id (0x + 64 hex)")
    cn.add_argument("--reason", required=True)
    cn.add_argument("--actor", default="cli")
    cn.set_defaults(func=_cmd_cancel)

    c = sub.add_parser("contracts", help="contract deployment helpers")
    cs = c.add_subparsers(dest="contracts_command", required=True)
    d = cs.add_parser("deploy-batcher", help="deploy PayoutBatcher on a dev chain with the configured keys")
    d.add_argument("--chain", required=True)
    d.add_argument("--owner", help="owner address (default: the sender)")
    d.set_defaults(func=_cmd_deploy)


async def _cmd_request(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.payouts.requests import request_payout

    try:
        amount = int(args.amount)
    except ValueError:
        raise ChainsettleError("amount: must be an integer in base units") from None
    async with open_pool(settings) as pool:
        row, created = await request_payout(pool, settings, chain=args.chain, asset=args.asset, to=args.to,
                                            amount=amount, key=args.key, actor=args.actor, destination_tag=args.tag,
                                            from_account=args.from_account)
    print(json.dumps({"created": created, "request": row}, default=text_default))
    return 0


async def _cmd_approve(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.payouts.requests import approve_batch

    async with open_pool(settings) as pool:
        out = await approve_batch(pool, args.batch, args.by)
    print(json.dumps(out))
    return 0


async def _cmd_kill(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.payouts.requests import set_kill_switch

    scope = args.chain or "*"
    async with open_pool(settings) as pool:
        await set_kill_switch(pool, scope, args.killed, args.reason, args.actor)
    print(json.dumps({"scope": scope, "killed": args.killed}))
    return 0


async def _cmd_list(settings: Settings, args) -> int:
    from daemon.runtime import open_pool


    async with open_pool(settings) as pool:
        out = await list_payouts(pool, args.chain, args.limit)
    emit(out, args.json, LIST_COLUMNS)
    waiting = [b["batch_id"] for b in out["batches"] if b["state"] == "awaiting_approval"]
    if waiting and not args.json:
        print(f"\n{len(waiting)} batch(es) await approval: chainsettle payouts approve <batch_id> --by <name>")
    return 0


async def _cmd_held(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.payouts.operator import held_payouts

    async with open_pool(settings) as pool, pool.acquire() as conn:
        out = await held_payouts(conn, args.chain, args.limit)
    emit({"held": out}, args.json, HELD_COLUMNS)
    if out and not args.json:
        print("\nonce nothing signed can pay them: chainsettle payouts release|cancel <batch_id> --reason ...")
    return 0


async def _cmd_release(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.payouts.operator import release_batch

    async with open_pool(settings) as pool:
        out = await release_batch(pool, settings, args.batch, args.actor, without=args.without, reason=args.reason)
    print(json.dumps(out))
    return 0


async def _cmd_cancel(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.payouts.operator import cancel_batch

    async with open_pool(settings) as pool:
        out = await cancel_batch(pool, settings, args.batch, args.actor, reason=args.reason)
    print(json.dumps(out))
    return 0


async def _cmd_deploy(settings: Settings, args) -> int:
    from settlement.payouts.evm.deploy import deploy_batcher

    address = await deploy_batcher(settings, args.chain, owner=args.owner)
    print(json.dumps({"chain": args.chain, "address": address}))
    return 0


async def list_payouts(pool, chain: str | None = None, limit: int = 1000) -> dict:
    """Everything `payouts list` shows, from each part of the pipeline."""
    from settlement.payouts.evm.sender import list_transactions
    from settlement.payouts.requests import list_queue
    from settlement.payouts.xrpl.sender import list_payments

    async with pool.acquire() as conn:
        out = await list_queue(conn, chain, limit)
        out["transactions"] = await list_transactions(conn, chain, limit)
        out["xrpl_payments"] = await list_payments(conn, chain, limit)
    return out
