"""Distributions, snapshots, claims and vouchers.

Admin: POST /v1/admin/snapshots, /v1/admin/distributions, .../{id}/push,
.../{id}/epoch, .../{id}/settle, /v1/admin/vouchers, .../{id}/revoke
(epoch and revoke with `"send": true` queue the owner's calls for the
payout worker: settlement/distributions/owner.py), GET
/v1/admin/owner-calls, POST /v1/admin/owner-calls/{id}/retry|cancel.
Private reads (area `distributions`): GET /v1/snapshots/{id},
/v1/distributions/{id}, .../{id}/shares, /v1/entitlements/{account} (what
one recipient is owed, from its entitlement accounts), /v1/vouchers/{id}.
Public: GET /v1/distributions/{id}/tree (the OpenZeppelin `standard-v1`
dump) and .../{id}/proof/{account}: a claimant needs its proof, and the
tree is public on chain anyway once claimed from. Handlers are thin:
settlement/distributions/ decides. A refusal is 422 naming the field; a
reused id with a different body is 409.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from config.errors import FieldError
from settlement.distributions import claims, owner, push, vouchers
from settlement.distributions.book import DistributionRequest, create_distribution, get_distribution, shares_page
from settlement.distributions.entitlements import owed_to
from settlement.distributions.snapshots import SnapshotRequest, create_snapshot, get_snapshot
from settlement.ledger.transfers import TransferConflict, TransferRefused

from .http import PlainText, RequestError, json_response
from .routing import Address, Ident, QueryInt, Routes, Text, Units, UnitsIn
from .state import ADMIN_ACTOR, POOL, SETTINGS

admin_routes = Routes("admin", auth="admin")
routes = Routes("private", area="distributions")
public_routes = Routes("public", auth=None)
DistId = Text(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,57}$", "1-58 letters, digits, '_', '.', '-'")
TREES = web.AppKey("distribution_trees", dict)  # id -> StandardMerkleTree (immutable: cached)


def register(app: web.Application, *, admin: bool) -> None:
    app[TREES] = {}
    app.add_routes(routes)
    app.add_routes(public_routes)
    if admin:
        app.add_routes(admin_routes)


def refused(exc: FieldError) -> RequestError:
    if isinstance(exc, TransferRefused):
        return RequestError(exc.field, exc.reason, status=422, code=exc.result)
    if isinstance(exc, TransferConflict) or exc.code == "conflict":
        return RequestError(exc.field, exc.reason, status=409, code="conflict")
    if exc.code == "not_found":
        return RequestError(exc.field, exc.reason, status=404, code="not_found")
    return RequestError(exc.field, exc.reason, status=422, code="refused")


async def _read(request: web.Request, read, *args) -> web.Response:
    """`read(conn, *args)` as the answer; its refusals as their HTTP errors."""
    async with request.app[POOL].acquire() as conn:
        try:
            return json_response(await read(conn, *args))
        except FieldError as exc:
            raise refused(exc) from None


ERRORS = {404: "No such snapshot or distribution", 409: "The id was used with a different body",
          422: "Refused: `field` names what"}


# -- snapshots -------------------------------------------------------------------------------


class WeightIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipient: Ident
    weight: UnitsIn(1)


class OpeningIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    address: Address | None = Field(None, description="erc20: a holder at the contract's start block")
    amount: UnitsIn(0) | None = Field(None, description="erc20: its balance then")
    token_id: UnitsIn(0) | None = Field(None, description="erc721: a token")
    owner: Address | None = Field(None, description="erc721: its owner at the start block")


class SnapshotBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DistId = Field(description="The client's id: the same body replays")
    kind: Text(r"^(list|erc20|erc721)$", "list, erc20 or erc721")
    label: Text(r"^[\x20-\x7e]{1,200}$", "printable text") | None = None
    weights: list[WeightIn] | None = Field(None, max_length=100_000, description="list: the recipients")
    chain: Ident | None = None
    contract: Address | None = Field(None, description="erc20/erc721: the indexed contract")
    height: StrictInt | None = Field(None, ge=0, le=2**62, description="a final block number")
    exclude: list[Address] = Field(default_factory=list, max_length=1000,
                                   description="besides the zero address, 0x..dEaD and the contract")
    opening: list[OpeningIn] | None = Field(None, max_length=100_000,
                                            description="holders at the start block, for a contract indexed late")


class Snapshot(BaseModel):
    id: str
    kind: str
    chain: str | None
    contract: str | None
    height: int | None
    holders: int
    total_weight: Units
    label: str | None
    exclude: list[str] | None
    excluded_wallets: list[str] | None = Field(description="token snapshots: the chain's configured wallets, "
                                                           "left out as the app's own addresses")
    created_by: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class SnapshotCreated(BaseModel):
    snapshot: Snapshot
    created: bool


@admin_routes.post("/v1/admin/snapshots", body=SnapshotBody, response=SnapshotCreated, status=201,
                   responses={200: (SnapshotCreated, "The id's stored snapshot")}, errors=ERRORS)
async def post_snapshot(request: web.Request, body: SnapshotBody) -> web.Response:
    """Store an immutable snapshot: the app's weights, or an ERC-20/721's holders at a final height"""
    opening = None
    if body.opening is not None:
        opening = tuple((o.address or "", str(o.amount if o.amount is not None else 0)) if body.kind == "erc20"
                        else (str(o.token_id if o.token_id is not None else 0), o.owner or "")
                        for o in body.opening)
    req = SnapshotRequest(body.id, body.kind, tuple((w.recipient, w.weight) for w in body.weights or ()),
                          body.chain, body.contract, body.height, tuple(body.exclude), opening, body.label)
    try:
        out, created = await create_snapshot(request.app[POOL], request.app[SETTINGS], req, request.app[ADMIN_ACTOR])
    except FieldError as exc:
        raise refused(exc) from None
    return json_response({"snapshot": out, "created": created}, status=201 if created else 200)


class IdParam(BaseModel):
    id: DistId


@routes.get("/v1/snapshots/{id}", params=IdParam, response=Snapshot, errors={404: "No such snapshot"})
async def snapshot(request: web.Request, p: IdParam) -> web.Response:
    """A stored snapshot"""
    return await _read(request, get_snapshot, p.id)


# -- distributions ---------------------------------------------------------------------------


class DistributionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DistId = Field(description="The client's id; the distribution's account is app:dist.<id>")
    snapshot: DistId
    pool_account: Ident = Field(description="Pays the total (its limits are checked under its lock)")
    asset: Ident = Field(description="asset id '<chain>:<name>'")
    total: UnitsIn(1)
    minimum: UnitsIn(0) = Field(0, description="Shares below it are not paid; they go to remainder_account")
    remainder_account: Ident | None = Field(None, description="default: the pool account")
    mode: Text(r"^(push|pull)$", "push or pull") = "push"
    unclaimed: Text(r"^(pool|rollover)$", "pool or rollover") = Field(
        "pool", description="pull: unclaimed shares at the deadline return to the pool, or roll over into a later "
                            "distribution that names this one in carry_from")
    carry_from: DistId | None = Field(None, description="a closed 'rollover' distribution whose expired shares "
                                                        "this one adds to the same recipients (once)")


class ShareTotals(BaseModel):
    count: int
    amount: Units


class Distribution(BaseModel):
    id: str
    snapshot: str
    asset: str
    pool_account: str
    account: str
    total: Units
    minimum: Units
    remainder: Units
    remainder_account: str
    mode: str
    recipients: int
    state: str = Field(description="open, paid (push) or closed (pull, after its deadline)")
    unclaimed: str
    carried_from: str | None
    carried: Units = Field(description="the expired shares of carried_from added to this one's")
    created_by: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    shares: dict[str, ShareTotals] = Field(description="per share state: owed, requested, paid, claimed, expired, "
                                                       "rolled")


class DistributionCreated(BaseModel):
    distribution: Distribution
    created: bool


@admin_routes.post("/v1/admin/distributions", body=DistributionBody, response=DistributionCreated, status=201,
                   responses={200: (DistributionCreated, "The id's stored distribution")}, errors=ERRORS)
async def post_distribution(request: web.Request, body: DistributionBody) -> web.Response:
    """Allocate `total` over a snapshot (largest remainder) and book it and every share in one transaction"""
    req = DistributionRequest(body.id, body.snapshot, body.pool_account, body.asset, body.total, body.minimum,
                              body.remainder_account, body.mode, body.unclaimed, body.carry_from)
    try:
        out, created = await create_distribution(request.app[POOL], request.app[SETTINGS], req,
                                                 request.app[ADMIN_ACTOR])
    except FieldError as exc:
        raise refused(exc) from None
    return json_response({"distribution": out, "created": created}, status=201 if created else 200)


@routes.get("/v1/distributions/{id}", params=IdParam, response=Distribution, errors={404: "No such distribution"})
async def distribution(request: web.Request, p: IdParam) -> web.Response:
    """A distribution and its share totals per state"""
    return await _read(request, get_distribution, p.id)


class SharesQuery(BaseModel):
    id: DistId
    after: QueryInt(0, 2**31 - 1) | None = Field(None, description="the last index of the previous page")
    limit: QueryInt(1, 1000) = 500


class Share(BaseModel):
    index: int
    recipient: str
    amount: Units
    state: str
    payout_key: str | None


class SharesPage(BaseModel):
    shares: list[Share]


@routes.get("/v1/distributions/{id}/shares", params=SharesQuery, response=SharesPage)
async def shares(request: web.Request, p: SharesQuery) -> web.Response:
    """What is owed per recipient, by share index (keyset pages)"""
    async with request.app[POOL].acquire() as conn:
        rows = await shares_page(conn, p.id, -1 if p.after is None else p.after, p.limit)
    return json_response({"shares": rows})


class EntitlementsQuery(BaseModel):
    account: Address
    after: DistId | None = Field(None, description="the last distribution id of the previous page")
    limit: QueryInt(1, 1000) = 100


class Entitlement(BaseModel):
    distribution: str
    index: int = Field(description="the share's index (its Merkle leaf index in a pull distribution)")
    asset: str
    mode: str = Field(description="push: paid by payout; pull: claimed with a proof")
    share: Units
    state: str = Field(description="owed, requested, paid, claimed, expired or rolled")
    account: str | None = Field(description="the ledger account holding it: entitlement:<distribution>:<account>")
    owed: Units = Field(description="what that account still holds for the recipient")


class Entitlements(BaseModel):
    entitlements: list[Entitlement]


def entitlements_answer(rows: list[dict]) -> web.Response:
    return json_response({"entitlements": rows})


@routes.get("/v1/entitlements/{account}", params=EntitlementsQuery, response=Entitlements)
async def entitlements(request: web.Request, p: EntitlementsQuery) -> web.Response:
    """What one recipient is owed, per distribution (keyset pages by distribution id)"""
    async with request.app[POOL].acquire() as conn:
        return entitlements_answer(await owed_to(conn, p.account, p.after, p.limit))


class PushResult(BaseModel):
    requested: int
    replayed: int
    refused: list[dict[str, Any]]


@admin_routes.post("/v1/admin/distributions/{id}/push", params=IdParam, response=PushResult, errors=ERRORS)
async def post_push(request: web.Request, p: IdParam) -> web.Response:
    """Request a payout from the distribution's account for every owed share (at most once each)"""
    try:
        out = await push.push(request.app[POOL], request.app[SETTINGS], p.id, request.app[ADMIN_ACTOR])
    except FieldError as exc:
        raise refused(exc) from None
    return json_response(out.as_dict())


class EpochBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contract: Address = Field(description="the ClaimDistributor")
    epoch: UnitsIn(0)
    deadline: StrictInt = Field(ge=1, le=2**63 - 1, description="last claim time, unix seconds (block time)")
    sweep_to: Address = Field(description="where the owner's sweep sends the unclaimed rest")
    send: StrictBool = Field(False, description="queue the owner's calls for the chain's payout worker to send "
                                                "(createEpoch, approve for a token, fundEpoch); the contract's "
                                                "owner() must be the chain's payout sender (else 422, `contract`)")
    auto_sweep: StrictBool = Field(True, description="with send: sweep the unclaimed rest once the distribution "
                                                     "is closed (its deadline passed a final block)")


class OwnerCall(BaseModel):
    id: str = Field(description="the idempotency key: epoch:<distribution>:create|approve|fund|sweep, "
                                "voucher:<id>:revoke")
    kind: str
    chain: str
    sender: str = Field(description="the owner: the chain's payout sender")
    contract: str
    to: str = Field(description="the ClaimDistributor, or the token an approve is for")
    calldata: str
    value: Units
    distribution: str | None
    voucher: str | None
    after: str | None = Field(description="the call that must be confirmed (final receipt) before this one is sent")
    after_state: str | None
    state: str = Field(description="queued, sent, confirmed (final receipt, success), failed, cancelled")
    sends: int
    tx_hash: str | None
    block_number: int | None
    reason: str | None
    created_by: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})


class EpochCalls(BaseModel):
    contract: str
    epoch: Units
    root: str
    total: Units
    deadline: int
    create_epoch: str = Field(description="calldata of the owner's createEpoch")
    fund_epoch: str = Field(description="calldata of fundEpoch (send fund_value with it for the native coin)")
    fund_value: Units
    auto_sweep: bool | None = Field(None, description="send: the sweep is queued when the distribution closes")
    owner_calls: list[OwnerCall] | None = Field(None, description="send: the queued calls")


@admin_routes.post("/v1/admin/distributions/{id}/epoch", params=IdParam, body=EpochBody, response=EpochCalls,
                   errors=ERRORS)
async def post_epoch(request: web.Request, p: IdParam, body: EpochBody) -> web.Response:
    """Fix (once) the ClaimDistributor epoch a pull distribution is claimed from; returns (or sends) the owner's calls"""
    args = dict(contract=body.contract, epoch=body.epoch, deadline=body.deadline, sweep_to=body.sweep_to,
                actor=request.app[ADMIN_ACTOR])
    try:
        if body.send:
            out = await owner.send_epoch(request.app[POOL], request.app[SETTINGS], p.id, auto_sweep=body.auto_sweep,
                                         **args)
        else:
            out = await claims.open_epoch(request.app[POOL], request.app[SETTINGS], p.id, **args)
    except FieldError as exc:
        raise refused(exc) from None
    return json_response(out)


class Settled(BaseModel):
    paid: bool | None = Field(None, description="push: the distribution became paid now")
    settled: list[int] | None = Field(None, description="pull: share indexes settled from final claims now")
    unsettled: list[int] | None = None
    expired: int | None = Field(None, description="pull: shares expired now (the deadline passed a final block)")
    pending: int | None = Field(None, description="pull: claims seen above the final height")
    closed: bool | None = None
    mismatched: list[int] | None = Field(None, description="pull: leaves a final Claimed event paid that are not "
                                                           "this distribution's shares (the asset's payouts pause)")


@admin_routes.post("/v1/admin/distributions/{id}/settle", params=IdParam, response=Settled, errors=ERRORS)
async def post_settle(request: web.Request, p: IdParam) -> web.Response:
    """Settle now what the background task settles: final claims and expiry (pull), paid shares (push)"""
    pool, settings = request.app[POOL], request.app[SETTINGS]
    try:
        async with pool.acquire() as conn:
            d = await get_distribution(conn, p.id)
        if d["mode"] == "push":
            return json_response({"paid": await push.sync(pool, p.id)})
        return json_response(await claims.settle(pool, settings, p.id, request.app[ADMIN_ACTOR]))
    except FieldError as exc:
        raise refused(exc) from None


# -- the tree and proofs (public) ------------------------------------------------------------


async def _tree(request: web.Request, distribution_id: str):
    cache = request.app[TREES]
    if distribution_id not in cache:
        async with request.app[POOL].acquire() as conn:
            try:
                tree = await claims.tree_of(conn, distribution_id)
            except FieldError as exc:
                raise refused(exc) from None
        if len(cache) > 64:
            cache.pop(next(iter(cache)))
        cache[distribution_id] = tree
    return cache[distribution_id]


class TreeDump(BaseModel):
    format: str = Field(description="standard-v1")
    leafEncoding: list[str]  # noqa: N815 - the OpenZeppelin dump's own field names
    tree: list[str]
    values: list[dict[str, Any]]


@public_routes.get("/v1/distributions/{id}/tree", params=IdParam, response=TreeDump,
                   errors={404: "No such distribution", 422: "Not a pull distribution"})
async def tree(request: web.Request, p: IdParam) -> web.Response:
    """The claim tree in @openzeppelin/merkle-tree's `StandardMerkleTree.dump()` format

    Leaves `(uint256 index, address account, uint256 amount)`; load it with
    `StandardMerkleTree.load(json)` to verify or make proofs yourself.
    """
    return json_response((await _tree(request, p.id)).dump())


class ProofParams(BaseModel):
    id: DistId
    account: Address


class Proof(BaseModel):
    distribution: str
    index: int
    account: str
    amount: Units
    state: str
    root: str
    proof: list[str]
    contract: str | None
    epoch: Units | None


@public_routes.get("/v1/distributions/{id}/proof/{account}", params=ProofParams, response=Proof,
                   errors={404: "No such distribution or no share for the account", 422: "Not a pull distribution"})
async def proof(request: web.Request, p: ProofParams) -> web.Response:
    """One account's leaf and Merkle proof: the arguments of `claim(epoch, index, account, amount, proof)`"""
    t = await _tree(request, p.id)
    async with request.app[POOL].acquire() as conn:
        try:
            out = await claims.proof_of(conn, p.id, p.account, tree=t)
        except FieldError as exc:
            raise refused(exc) from None
    return json_response(out)


# -- vouchers --------------------------------------------------------------------------------


class VoucherBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DistId = Field(description="The client's id: the same body returns the same voucher")
    pool_account: Ident
    asset: Ident
    recipient: Address
    amount: UnitsIn(1)
    valid_after: StrictInt = Field(ge=0, le=2**63 - 1)
    valid_before: StrictInt = Field(ge=1, le=2**63 - 1)
    contract: Address = Field(description="the ClaimDistributor whose voucherSigner is the chain's payout signer")


class Voucher(BaseModel):
    id: str
    nonce: str
    chain: str
    contract: str
    pool_account: str
    asset: str
    recipient: str
    amount: Units
    valid_after: int
    valid_before: int
    signature: str
    state: str = Field(description="issued, used, expired or revoked")
    revoke_requested: bool
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    resolved_at: str | None


class VoucherIssued(BaseModel):
    voucher: Voucher
    created: bool


@admin_routes.post("/v1/admin/vouchers", body=VoucherBody, response=VoucherIssued, status=201,
                   responses={200: (VoucherIssued, "The id's stored voucher")}, errors=ERRORS)
async def post_voucher(request: web.Request, body: VoucherBody) -> web.Response:
    """Issue a signed claim voucher: the amount is reserved from the pool (within its voucher_cap)"""
    pool, settings = request.app[POOL], request.app[SETTINGS]
    req = vouchers.VoucherRequest(body.id, body.pool_account, body.asset, body.recipient, body.amount,
                                  body.valid_after, body.valid_before, body.contract)
    try:
        vouchers.check_request(req)
        signer, chain_id = await vouchers.voucher_signer(pool, settings, body.asset.split(":", 1)[0])
    except FieldError as exc:
        raise refused(exc) from None
    try:
        out, created = await vouchers.issue_voucher(pool, settings, signer, req, chain_id=chain_id,
                                                    actor=request.app[ADMIN_ACTOR])
    except FieldError as exc:
        raise refused(exc) from None
    return json_response({"voucher": out, "created": created}, status=201 if created else 200)


class Revoke(Voucher):
    revoke_calldata: str = Field(description="the owner's revokeVoucher(nonce) call")
    owner_call: OwnerCall | None = Field(None, description="send: the queued call")


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    send: StrictBool = Field(False, description="queue revokeVoucher for the chain's payout worker to send (the "
                                                "contract's owner() must be its payout sender, else 422 `contract`)")


@admin_routes.post("/v1/admin/vouchers/{id}/revoke", params=IdParam, body=RevokeBody, body_required=False,
                   response=Revoke, errors=ERRORS)
async def post_revoke(request: web.Request, p: IdParam, body: RevokeBody) -> web.Response:
    """Ask to revoke a voucher: its reservation returns once the on-chain revocation (or expiry) is final"""
    pool, actor = request.app[POOL], request.app[ADMIN_ACTOR]
    try:
        if body.send:
            return json_response(await owner.send_revoke(pool, request.app[SETTINGS], p.id, actor))
        return json_response(await vouchers.request_revoke(pool, p.id, actor))
    except FieldError as exc:
        raise refused(exc) from None


@routes.get("/v1/vouchers/{id}", params=IdParam, response=Voucher, errors={404: "No such voucher"})
async def voucher(request: web.Request, p: IdParam) -> web.Response:
    """A voucher and its state"""
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(vouchers.Q.find_voucher, p.id)
    if row is None:
        raise RequestError("id", "no such voucher", status=404, code="not_found")
    return json_response(vouchers.voucher_view(row))


# -- owner calls (sent by the payout worker of their chain) ------------------------------------


CallId = Text(r"^(epoch|voucher):[A-Za-z0-9][A-Za-z0-9_.-]{0,57}:[a-z]{1,12}$",
              "an owner call id, e.g. epoch:<distribution>:fund")


class OwnerCallsQuery(BaseModel):
    state: Text(r"^(queued|sent|confirmed|failed|cancelled)$", "queued, sent, confirmed, failed or cancelled") | None \
        = None
    chain: Ident | None = None
    limit: QueryInt(1, 1000) = 500


class OwnerCalls(BaseModel):
    owner_calls: list[OwnerCall]


@admin_routes.get("/v1/admin/owner-calls", params=OwnerCallsQuery, response=OwnerCalls)
async def list_owner_calls(request: web.Request, p: OwnerCallsQuery) -> web.Response:
    """The ClaimDistributor owner calls the daemon sends, oldest first"""
    async with request.app[POOL].acquire() as conn:
        rows = await owner.list_calls(conn, state=p.state, chain=p.chain, limit=p.limit)
    return json_response({"owner_calls": rows})


class CallPath(BaseModel):
    id: CallId


class CallAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: PlainText | None = Field(None, max_length=500, description="audited")


def _call_route(action: str, doc: str):
    do = owner.retry_call if action == "retry" else owner.cancel_call

    async def handler(request: web.Request, p: CallPath, body: CallAction) -> web.Response:
        try:
            return json_response(await do(request.app[POOL], p.id, request.app[ADMIN_ACTOR], body.reason))
        except FieldError as exc:
            raise refused(exc) from None

    handler.__name__ = f"{action}_owner_call"
    handler.__doc__ = doc
    return handler


for _action, _doc in (("retry", "Queue a failed owner call again: a new transaction is signed and sent (audited)"),
                      ("cancel", "Cancel a queued or failed owner call; a sent one waits for its final receipt "
                                 "(audited)")):
    admin_routes.post(f"/v1/admin/owner-calls/{{id}}/{_action}", params=CallPath, body=CallAction,
                      body_required=False, response=OwnerCall,
                      errors={404: "No such owner call", 409: "Not in a state that allows it"})(_call_route(_action, _doc))
