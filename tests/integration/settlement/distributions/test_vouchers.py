"""Claim vouchers on anvil and real Postgres: issued under the pool's lock and voucher cap,
redeemed at the ClaimDistributor, and resolved from final data exactly once: used, revoked,
expired (by a final block's time), the reservation released once."""

from __future__ import annotations

import pytest

from settlement.distributions import claim_abi as ca
from settlement.distributions.vouchers import (
    VoucherConflict,
    VoucherRefused,
    VoucherRequest,
    issue_voucher,
    request_revoke,
    settle,
)
from settlement.payouts.evm.signer import LocalKeySigner
from tests.integration.contracts.test_claim_distributor import OWNER, rejected, revert, tx, warp
from tests.integration.settlement.distributions.test_claims import ASSET, POOL, UNIT, ClaimEnv
from tests.support.anvil import DEV_ACCOUNTS
from tests.support.batcher import balance, fresh_address, latest_timestamp
from tests.support.ledger import balance_parts, fund


@pytest.fixture
async def env(anvil, pool, tmp_path):
    e = ClaimEnv(anvil, pool, tmp_path, accounts=[{"code": POOL, "voucher_cap": str(10 * UNIT)}])
    await e.index(mine=4)
    await fund(pool, POOL, 100 * UNIT, asset="anvil:native")
    yield e
    await e.follower.close()


async def test_vouchers_issue_cap_use_revoke_expire_once(env):
    signer = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1].removeprefix("0x")))
    chain_id = int(env.anvil.rpc("eth_chainId", []), 16)
    now = latest_timestamp(env.anvil)
    a, b, c = (fresh_address().lower() for _ in range(3))

    def req(i, to, amount, before=now + 3600):
        return VoucherRequest(i, POOL, ASSET, to, amount, now - 60, before, env.contract)

    async def issue(r):
        return await issue_voucher(env.pool, env.settings, signer, r, chain_id=chain_id, actor="t")

    v1, created = await issue(req("v1", a, 3 * UNIT))
    assert created and v1["state"] == "issued"
    again, created = await issue(req("v1", a, 3 * UNIT))
    assert not created and again["nonce"] == v1["nonce"] and again["signature"] == v1["signature"]
    with pytest.raises(VoucherConflict):
        await issue(req("v1", a, 2 * UNIT))
    v2, _ = await issue(req("v2", b, 4 * UNIT))
    with pytest.raises(VoucherRefused) as exc:  # 3 + 4 + 4 > the cap of 10
        await issue(req("v3", c, 4 * UNIT))
    assert exc.value.field == "amount" and "voucher_cap" in exc.value.reason
    v4, _ = await issue(req("v4", c, 2 * UNIT, before=now + 120))
    assert (await balance_parts(env.pool, POOL, ASSET))["available"] == 91 * UNIT

    def voucher(v):
        return ca.Voucher(bytes.fromhex(v["nonce"][2:]), v["recipient"], ca.NATIVE, int(v["amount"]),
                          v["valid_after"], v["valid_before"])

    tx(env.anvil, env.contract, ca.fund_vouchers(ca.NATIVE, 10 * UNIT), frm=OWNER, value=10 * UNIT)
    tx(env.anvil, env.contract, ca.redeem(voucher(v1), bytes.fromhex(v1["signature"][2:])))
    rejected(env.anvil, env.contract, ca.redeem(voucher(v1), bytes.fromhex(v1["signature"][2:])), "VoucherUsed")
    assert balance(env.anvil, a) == 3 * UNIT
    revoke = await request_revoke(env.pool, "v2", "t")
    tx(env.anvil, env.contract, bytes.fromhex(revoke["revoke_calldata"][2:]), frm=OWNER)
    assert revert(env.anvil, env.contract, ca.redeem(voucher(v2), bytes.fromhex(v2["signature"][2:]))) == "VoucherUsed"
    # the revocation is in the newest block: seen, not final, not resolved
    await env.index()
    first = await settle(env.pool, env.settings, "anvil")
    assert first["revoked"] == [] and first["expired"] == []
    await env.index(mine=4)
    second = await settle(env.pool, env.settings, "anvil")
    assert first["used"] + second["used"] == ["v1"] and second["revoked"] == ["v2"] and second["expired"] == []
    assert (await balance_parts(env.pool, POOL, ASSET))["available"] == 95 * UNIT  # v2 released
    # v4 expires by a final block's time, not by the wall clock
    warp(env.anvil, 200)
    rejected(env.anvil, env.contract, ca.redeem(voucher(v4), bytes.fromhex(v4["signature"][2:])), "VoucherNotValid")
    await env.index(mine=4)
    assert await settle(env.pool, env.settings, "anvil") == {"used": [], "revoked": [], "expired": ["v4"]}
    assert await settle(env.pool, env.settings, "anvil") == {"used": [], "revoked": [], "expired": []}
    assert (await balance_parts(env.pool, POOL, ASSET))["available"] == 97 * UNIT
    assert (await balance_parts(env.pool, "app:vouchers.pool", ASSET))["final"] == 0
    async with env.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE id LIKE 'voucher:%:release'") == 2
    # the cap counts outstanding vouchers only: room again
    await issue(req("v5", c, 9 * UNIT))


async def test_the_background_pass_settles_like_the_calls(env):
    """settle_once (the daemon task's pass) resolves an expired voucher once, run twice."""
    from settlement.distributions.loop import settle_once

    signer = LocalKeySigner(bytes.fromhex(DEV_ACCOUNTS[1][1].removeprefix("0x")))
    chain_id = int(env.anvil.rpc("eth_chainId", []), 16)
    now = latest_timestamp(env.anvil)
    await issue_voucher(env.pool, env.settings, signer, VoucherRequest(
        "w", POOL, ASSET, fresh_address(), UNIT, now - 60, now + 30, env.contract), chain_id=chain_id, actor="t")
    warp(env.anvil, 100)
    await env.index(mine=4)
    await settle_once(env.pool, env.settings)
    await settle_once(env.pool, env.settings)
    async with env.pool.acquire() as conn:
        assert await conn.fetchval("SELECT state FROM distribution_vouchers WHERE id = 'w'") == "expired"
        assert await conn.fetchval("SELECT count(*) FROM feed_outbox WHERE kind = 'voucher'") == 2
    assert (await balance_parts(env.pool, POOL, ASSET))["available"] == 100 * UNIT
