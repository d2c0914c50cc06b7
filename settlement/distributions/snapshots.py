"""Snapshots: who holds how much at a moment that cannot change.

A snapshot is either
- `list`: `(recipient, weight)` pairs the app gives (reward points, a
  leaderboard), or
- `erc20` / `erc721`: the holders of an indexed contract at a FINAL height H,
  computed from its final `Transfer` events (ERC-20: sum of values in minus
  out; ERC-721: each token's last transfer at or below H, weight = tokens
  owned). A height above the chain's final height is refused: events there
  may still change, and a snapshot never does.

Where the contract's history starts before indexing (its configured
`start_block` > 0), the events alone miss the holders from before; as the
ledger does for wallets, the snapshot then takes an opening state at the
start block (`opening`: ERC-20 `{address, amount}`, ERC-721 `{token_id,
owner}`), read by the caller from an archive node or the token's own
records, and refuses to guess without one.

Excluded always: the zero address, the contract itself and 0x..dEaD; plus
the request's `exclude` (treasury, burn or exchange addresses) and the
chain's configured wallets (stored with the snapshot as `excluded_wallets`).

Stored once, immutable (a database trigger refuses UPDATE and DELETE): the
id is the client's; the same id with the same body replays the stored
snapshot, a different body is a conflict naming the first differing field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from config import Settings
from config.errors import FieldError
from db import Queries, audit
from db.values import amount_text
from settlement.distributions.allocate import MAX_AMOUNT, check_weights
from settlement.ledger.transfers import retrying

Q = Queries(Path(__file__).with_name("distributions.sql"))
ZERO = "0x" + "00" * 20
DEAD = "0x000000000000000000000000000000000000dead"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,57}$")
_HEX_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
KINDS = ("list", "erc20", "erc721")
MAX_LIST = 1_000_000


class SnapshotRefused(FieldError):
    """snapshot refused"""

    code = "refused"


class SnapshotConflict(FieldError):
    """the id was used for a different snapshot"""

    code = "conflict"


class NotFound(FieldError):
    """not found"""

    code = "not_found"


@dataclass(frozen=True)
class SnapshotRequest:
    id: str
    kind: str
    weights: tuple[tuple[str, int], ...] = ()
    chain: str | None = None
    contract: str | None = None
    height: int | None = None
    exclude: tuple[str, ...] = ()
    opening: tuple[tuple[str, str], ...] | None = None  # erc20: (address, amount); erc721: (token id, owner)
    label: str | None = field(default=None)

    def body(self) -> dict:
        b: dict = {"id": self.id, "kind": self.kind, "label": self.label}
        if self.kind == "list":
            b["weights"] = [[r, str(w)] for r, w in sorted(self.weights)]
        else:
            b.update(chain=self.chain, contract=self.contract, height=self.height, exclude=sorted(self.exclude),
                     opening=None if self.opening is None else sorted([list(o) for o in self.opening]))
        return b


def check_id(value: object, name: str = "id") -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise SnapshotRefused(name, "1-58 characters: letters, digits, '_', '.', '-', starting with a letter or digit")
    return value


def norm_address(a: str) -> str:
    return a.lower() if a.startswith("0x") else a


def prepare(req: SnapshotRequest) -> SnapshotRequest:
    """Checks that need no database; addresses normalized."""
    check_id(req.id)
    if req.kind not in KINDS:
        raise SnapshotRefused("kind", f"one of {', '.join(KINDS)}")
    if req.kind == "list":
        if req.contract is not None or req.height is not None:
            raise SnapshotRefused("contract", "a list snapshot names no contract or height")
        if len(req.weights) > MAX_LIST:
            raise SnapshotRefused("weights", f"at most {MAX_LIST} recipients")
        weights = tuple((norm_address(r) if isinstance(r, str) else r, w) for r, w in req.weights)
        try:
            pairs = check_weights(weights)
        except FieldError as exc:
            raise SnapshotRefused(exc.field, exc.reason) from exc
        if any(w > MAX_AMOUNT for _, w in pairs):
            raise SnapshotRefused("weights", f"a weight is at most {MAX_AMOUNT}")
        if not pairs:
            raise SnapshotRefused("weights", "no recipient has a weight above zero")
        return SnapshotRequest(req.id, req.kind, tuple(sorted(pairs)), label=req.label)
    if not isinstance(req.chain, str) or not req.chain:
        raise SnapshotRefused("chain", "the chain of the contract")
    if not isinstance(req.contract, str) or not _HEX_ADDR.match(req.contract):
        raise SnapshotRefused("contract", "a 0x-prefixed 20-byte hex address")
    if isinstance(req.height, bool) or not isinstance(req.height, int) or req.height < 0:
        raise SnapshotRefused("height", "a block number >= 0")
    for i, a in enumerate(req.exclude):
        if not isinstance(a, str) or not _HEX_ADDR.match(a):
            raise SnapshotRefused(f"exclude[{i}]", "a 0x-prefixed 20-byte hex address")
    opening = None
    if req.opening is not None:
        opening = []
        for i, (k, v) in enumerate(req.opening):
            addr, num = (k, v) if req.kind == "erc20" else (v, k)
            if not isinstance(addr, str) or not _HEX_ADDR.match(addr):
                raise SnapshotRefused(f"opening[{i}]", "a 0x-prefixed 20-byte hex address")
            if not isinstance(num, str) or not num.isdigit() or int(num) > MAX_AMOUNT:
                raise SnapshotRefused(f"opening[{i}]", "an integer string")
            opening.append((k.lower(), str(int(v))) if req.kind == "erc20" else (str(int(k)), v.lower()))
        opening = tuple(opening)
    return SnapshotRequest(req.id, req.kind, (), req.chain, req.contract.lower(), req.height,
                           tuple(sorted({a.lower() for a in req.exclude})), opening, req.label)


def _contract_config(settings: Settings, chain: str, contract: str):
    try:
        cfg = settings.chain(chain)
    except (KeyError, ValueError, LookupError) as exc:
        raise SnapshotRefused("chain", f"no chain {chain!r} is configured") from exc
    for c in cfg.contracts:
        if c.address.lower() == contract:
            return c
    raise SnapshotRefused("contract", f"{contract} is not an indexed contract of {chain}")


def configured_wallets(settings: Settings, chain: str) -> list[str]:
    """The chain's configured wallets ([[chains.wallets]]: hot wallets, treasuries, the batcher): the
    app's own addresses never take a holder's share."""
    return sorted({w.address.lower() for w in settings.chain(chain).wallets if w.address.startswith("0x")})


async def _holders(conn: asyncpg.Connection, settings: Settings, req: SnapshotRequest) -> list[tuple[str, int]]:
    if req.kind == "list":
        return list(req.weights)
    c = _contract_config(settings, req.chain, req.contract)
    if c.abi != req.kind:
        raise SnapshotRefused("kind", f"{req.contract} is indexed with the {c.abi} ABI, not {req.kind}")
    final = await conn.fetchval(Q.final_height, req.chain)
    if final is None or req.height > final:
        raise SnapshotRefused("height", f"{req.height} is above the final height of {req.chain} "
                                        f"({'none yet' if final is None else final}): a snapshot never changes")
    if c.start_block > 0 and req.opening is None:
        raise SnapshotRefused("opening", f"{req.contract} is indexed from block {c.start_block}: give its "
                                         "holders at that block (opening), or [] if it was deployed there")
    excluded = [ZERO, DEAD, req.contract, *req.exclude, *configured_wallets(settings, req.chain)]
    opening = req.opening or ()
    sql = Q.erc20_holders if req.kind == "erc20" else Q.erc721_holders
    keys = [o[0] for o in opening]
    vals = [int(o[1]) for o in opening] if req.kind == "erc20" else [o[1] for o in opening]
    rows = await conn.fetch(sql, req.chain, req.contract, req.height, keys, vals, excluded)
    return [(r["recipient"], int(r["weight"])) for r in rows]


def snapshot_view(row) -> dict:
    return {"id": row["id"], "kind": row["kind"], "chain": row["chain"], "contract": row["contract"],
            "height": row["height"], "holders": row["holders"], "total_weight": amount_text(row["total_weight"]),
            "label": row["body"].get("label"), "exclude": row["body"].get("exclude"),
            "excluded_wallets": row["body"].get("excluded_wallets"),
            "created_by": row["created_by"], "created_at": row["created_at"].isoformat()}


def _differs(stored: dict, body: dict) -> str | None:
    return next((k for k in body if stored.get(k) != body.get(k)), None)


async def create_snapshot(pool: asyncpg.Pool, settings: Settings, req: SnapshotRequest,
                          actor: str) -> tuple[dict, bool]:
    """Store a snapshot; return (its view, created now). Replays by id."""
    req = prepare(req)
    body = req.body()

    async def work(conn: asyncpg.Connection) -> tuple[dict, bool]:
        row = await conn.fetchrow(Q.find_snapshot, req.id)
        if row is not None:
            diff = _differs(row["body"], body)
            if diff is not None:
                raise SnapshotConflict(diff, f"{req.id!r} was already used with a different {diff}")
            return snapshot_view(row), False
        holders = await _holders(conn, settings, req)
        stored = body if req.kind == "list" else {**body, "excluded_wallets": configured_wallets(settings, req.chain)}
        if await conn.fetchval(Q.insert_snapshot, req.id, req.kind, req.chain, req.contract, req.height, stored,
                               len(holders), sum(w for _, w in holders), actor) is None:
            raise asyncpg.UniqueViolationError("raced")  # retried whole: the next attempt replays
        await conn.execute(Q.insert_weights, req.id, [h for h, _ in holders], [w for _, w in holders])
        await audit(conn, actor, "distribution.snapshot", f"snapshot:{req.id}",
                    {"kind": req.kind, "holders": len(holders)})
        return snapshot_view(await conn.fetchrow(Q.find_snapshot, req.id)), True

    return await retrying(pool, work)


async def get_snapshot(conn: asyncpg.Connection, snapshot_id: str) -> dict:
    row = await conn.fetchrow(Q.find_snapshot, snapshot_id)
    if row is None:
        raise NotFound("snapshot_id", f"no snapshot {snapshot_id!r}")
    return snapshot_view(row)


async def snapshot_weights(conn: asyncpg.Connection, snapshot_id: str) -> list[tuple[str, int]]:
    return [(r["recipient"], int(r["weight"])) for r in await conn.fetch(Q.snapshot_weights, snapshot_id)]
