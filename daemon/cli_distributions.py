"""`chainsettle distributions ...` and `chainsettle vouchers ...`: the admin API's distribution
calls from the command line (settlement/distributions/ decides). Each prints JSON; a refusal
exits non-zero naming the field."""

from __future__ import annotations

import json

from config import ChainsettleError, Settings

from .cli_transfers import print_json, units_arg


def register(sub) -> None:
    d = sub.add_parser("distributions", help="snapshots, distributions, Merkle claims")
    ds = d.add_subparsers(dest="distributions_command", required=True)
    s = ds.add_parser("snapshot", help="store an immutable snapshot: --weights FILE, or a token's holders")
    s.add_argument("--id", required=True)
    s.add_argument("--kind", choices=("list", "erc20", "erc721"), required=True)
    s.add_argument("--weights", help="list: a JSON file [[recipient, weight], ...]")
    s.add_argument("--chain")
    s.add_argument("--contract")
    s.add_argument("--height", type=int, help="a final block number")
    s.add_argument("--exclude", action="append", default=[], help="an address to leave out (repeatable)")
    s.add_argument("--opening", help="a JSON file [[address, amount]] (erc20) or [[token_id, owner]] (erc721)")
    s.add_argument("--actor", default="cli")
    s.set_defaults(func=_cmd_snapshot)
    c = ds.add_parser("create", help="allocate a total over a snapshot and book it in one transaction")
    c.add_argument("--id", required=True)
    c.add_argument("--snapshot", required=True)
    c.add_argument("--pool", required=True, help="the paying account, e.g. app:rewards")
    c.add_argument("--asset", required=True, help="asset id, e.g. anvil:native")
    c.add_argument("--total", required=True, help="integer base units")
    c.add_argument("--minimum", default="0", help="shares below it go to --remainder-account")
    c.add_argument("--remainder-account", dest="remainder_account")
    c.add_argument("--mode", choices=("push", "pull"), default="push")
    c.add_argument("--unclaimed", choices=("pool", "rollover"), default="pool",
                   help="pull: unclaimed shares at the deadline go back to the pool or roll over")
    c.add_argument("--carry-from", dest="carry_from", help="a closed rollover distribution to carry shares from")
    c.add_argument("--actor", default="cli")
    c.set_defaults(func=_cmd_create)
    for name, helptext in (("show", "a distribution and its share totals"),
                           ("push", "request a payout for every owed share (at most once each)"),
                           ("settle", "settle now: paid pushes, or final claims and expiry"),
                           ("tree", "the claim tree (OpenZeppelin standard-v1 dump)")):
        x = ds.add_parser(name, help=helptext)
        x.add_argument("id")
        x.add_argument("--actor", default="cli")
        x.set_defaults(func=_cmd_simple, op=name)
    pr = ds.add_parser("proof", help="one account's leaf and proof")
    pr.add_argument("id")
    pr.add_argument("account")
    pr.set_defaults(func=_cmd_proof)
    ow = ds.add_parser("owed", help="what one recipient is owed, per distribution (its entitlement accounts)")
    ow.add_argument("account", help="the recipient's address")
    ow.set_defaults(func=_cmd_owed)
    e = ds.add_parser("epoch", help="fix the ClaimDistributor epoch of a pull distribution; prints the owner's calls")
    e.add_argument("id")
    e.add_argument("--contract", required=True)
    e.add_argument("--epoch", type=int, required=True)
    e.add_argument("--deadline", type=int, required=True, help="last claim time, unix seconds")
    e.add_argument("--sweep-to", dest="sweep_to", required=True)
    e.add_argument("--send", action="store_true",
                   help="queue the owner's calls for the chain's payout worker to send (the contract's owner() "
                        "must be the chain's payout sender); without it they are printed")
    e.add_argument("--no-auto-sweep", dest="auto_sweep", action="store_false",
                   help="with --send: do not sweep the unclaimed rest after the deadline")
    e.add_argument("--actor", default="cli")
    e.set_defaults(func=_cmd_epoch)
    oc = ds.add_parser("owner-calls", help="the ClaimDistributor owner calls the daemon sends: list, retry, cancel")
    oc.add_argument("action", nargs="?", choices=("list", "retry", "cancel"), default="list")
    oc.add_argument("id", nargs="?", help="retry/cancel: the call's id, e.g. epoch:<distribution>:fund")
    oc.add_argument("--state", help="list: only this state (queued, sent, confirmed, failed, cancelled)")
    oc.add_argument("--chain", help="list: only this chain")
    oc.add_argument("--limit", type=int, default=500)
    oc.add_argument("--reason", help="retry/cancel: why (audited)")
    oc.add_argument("--actor", default="cli")
    oc.set_defaults(func=_cmd_owner_calls)

    v = sub.add_parser("vouchers", help="signed single-use claim vouchers")
    vs = v.add_subparsers(dest="vouchers_command", required=True)
    i = vs.add_parser("issue", help="sign a voucher and reserve its amount from the pool")
    for arg in ("--id", "--pool", "--asset", "--recipient", "--amount", "--contract"):
        i.add_argument(arg, required=True)
    i.add_argument("--valid-after", dest="valid_after", type=int, required=True)
    i.add_argument("--valid-before", dest="valid_before", type=int, required=True)
    i.add_argument("--actor", default="cli")
    i.set_defaults(func=_cmd_issue)
    r = vs.add_parser("revoke", help="ask to revoke: prints the owner's revokeVoucher call")
    r.add_argument("id")
    r.add_argument("--send", action="store_true",
                   help="queue revokeVoucher for the chain's payout worker to send (it must own the contract)")
    r.add_argument("--actor", default="cli")
    r.set_defaults(func=_cmd_revoke)


def _json_file(path: str, field: str) -> list:
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, list) or not all(isinstance(x, list) and len(x) == 2 for x in data):
        raise ChainsettleError(f"{field}: must hold a JSON array of pairs")
    return data


async def _cmd_snapshot(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.snapshots import SnapshotRequest, create_snapshot

    weights = tuple((str(r), units_arg(w, "weights")) for r, w in _json_file(args.weights, "--weights")) \
        if args.weights else ()
    opening = tuple((str(a), str(b)) for a, b in _json_file(args.opening, "--opening")) if args.opening else None
    req = SnapshotRequest(args.id, args.kind, weights, args.chain, args.contract, args.height, tuple(args.exclude),
                          opening)
    async with open_pool(settings) as pool:
        out, created = await create_snapshot(pool, settings, req, args.actor)
    print_json({"snapshot": out, "created": created})
    return 0


async def _cmd_create(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.book import DistributionRequest, create_distribution

    req = DistributionRequest(args.id, args.snapshot, args.pool, args.asset, units_arg(args.total, "total"),
                              units_arg(args.minimum, "minimum"), args.remainder_account, args.mode, args.unclaimed,
                              args.carry_from)
    async with open_pool(settings) as pool:
        out, created = await create_distribution(pool, settings, req, args.actor)
    print_json({"distribution": out, "created": created})
    return 0


async def _cmd_simple(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions import claims, push
    from settlement.distributions.book import get_distribution

    async with open_pool(settings) as pool:
        async with pool.acquire() as conn:
            d = await get_distribution(conn, args.id)
            if args.op == "tree":
                print_json((await claims.tree_of(conn, args.id)).dump())
                return 0
        if args.op == "show":
            print_json(d)
        elif args.op == "push":
            print_json((await push.push(pool, settings, args.id, args.actor)).as_dict())
        elif d["mode"] == "push":
            print_json({"paid": await push.sync(pool, args.id)})
        else:
            print_json(await claims.settle(pool, settings, args.id, args.actor))
    return 0


async def _cmd_proof(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.claims import proof_of

    async with open_pool(settings) as pool, pool.acquire() as conn:
        print_json(await proof_of(conn, args.id, args.account))
    return 0


async def _cmd_owed(settings: Settings, args) -> int:
    from api.http import EVM_ADDRESS, XRPL_ADDRESS
    from daemon.runtime import open_pool
    from settlement.distributions.entitlements import owed_to

    if not (EVM_ADDRESS.match(args.account) or XRPL_ADDRESS.match(args.account)):
        raise ChainsettleError("account: must be a 0x-prefixed 20-byte hex address or an XRPL classic address")
    account = args.account.lower() if args.account.startswith("0x") else args.account
    async with open_pool(settings) as pool, pool.acquire() as conn:
        print_json({"account": account, "entitlements": await owed_to(conn, account, limit=1000)})
    return 0


async def _cmd_epoch(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.claims import open_epoch
    from settlement.distributions.owner import OwnerRefused, send_epoch

    async with open_pool(settings) as pool:
        if not args.send:
            print_json(await open_epoch(pool, settings, args.id, contract=args.contract, epoch=args.epoch,
                                    deadline=args.deadline, sweep_to=args.sweep_to, actor=args.actor))
            return 0
        try:
            print_json(await send_epoch(pool, settings, args.id, contract=args.contract, epoch=args.epoch,
                                    deadline=args.deadline, sweep_to=args.sweep_to, auto_sweep=args.auto_sweep,
                                    actor=args.actor))
        except OwnerRefused as exc:
            if exc.calls is not None:
                print_json(exc.calls)  # what the owner sends instead, as without --send
            raise
    return 0


async def _cmd_owner_calls(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.owner import cancel_call, list_calls, retry_call

    if args.action != "list" and not args.id:
        raise ChainsettleError(f"id: {args.action} needs the call's id")
    async with open_pool(settings) as pool:
        if args.action == "list":
            async with pool.acquire() as conn:
                print_json({"owner_calls": await list_calls(conn, state=args.state, chain=args.chain,
                                                        limit=args.limit)})
        elif args.action == "retry":
            print_json(await retry_call(pool, args.id, args.actor, args.reason))
        else:
            print_json(await cancel_call(pool, args.id, args.actor, args.reason))
    return 0


async def _cmd_issue(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.vouchers import VoucherRequest, check_request, issue_voucher, voucher_signer

    req = check_request(VoucherRequest(args.id, args.pool, args.asset, args.recipient, units_arg(args.amount, "amount"),
                                       args.valid_after, args.valid_before, args.contract))
    async with open_pool(settings) as pool:
        signer, chain_id = await voucher_signer(pool, settings, args.asset.split(":", 1)[0])
        out, created = await issue_voucher(pool, settings, signer, req, chain_id=chain_id, actor=args.actor)
    print_json({"voucher": out, "created": created})
    return 0


async def _cmd_revoke(settings: Settings, args) -> int:
    from daemon.runtime import open_pool
    from settlement.distributions.owner import OwnerRefused, send_revoke
    from settlement.distributions.vouchers import request_revoke

    async with open_pool(settings) as pool:
        if not args.send:
            print_json(await request_revoke(pool, args.id, args.actor))
            return 0
        try:
            print_json(await send_revoke(pool, settings, args.id, args.actor))
        except OwnerRefused as exc:
            if exc.calls is not None:
                print_json(exc.calls)
            raise
    return 0
