"""Distribution routes over HTTP: snapshot, distribution (replay, 409, 422), shares, push,
the public tree and proofs, vouchers. Real Postgres."""

from __future__ import annotations

import pytest

from settlement.distributions.merkle import CLAIM_ENCODING, verify
from tests.integration.settlement.distributions.support import dist_settings
from tests.support.api_data import client_for
from tests.support.ledger import ASSET, fund, ready_chain

TOKEN = "distribution-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOLDERS = ["0x" + f"{i:02x}" * 20 for i in range(1, 6)]


@pytest.fixture
async def client(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("CS_TEST_ADMIN_TOKEN", TOKEN)
    settings = dist_settings(tmp_path, accounts=[{"code": "app:pool", "voucher_cap": "50"}], payouts=True,
                             api={"admin_token": "env:CS_TEST_ADMIN_TOKEN"})
    await ready_chain(pool, settings)
    await fund(pool, "app:pool", 1000)
    async with client_for(settings, pool) as c:
        yield c


async def post(client, path: str, body: dict | None = None):
    resp = await client.post(path, json=body, headers=AUTH)
    return resp.status, await resp.json()


async def test_distribution_lifecycle_over_http(client):
    snap = {"id": "s", "kind": "list", "weights": [{"recipient": h, "weight": i + 1} for i, h in enumerate(HOLDERS)]}
    status, body = await post(client, "/v1/admin/snapshots", snap)
    assert status == 201 and body["snapshot"]["holders"] == 5 and body["snapshot"]["total_weight"] == "15"
    assert (await post(client, "/v1/admin/snapshots", snap))[0] == 200
    d = {"id": "d", "snapshot": "s", "pool_account": "app:pool", "asset": ASSET, "total": "100", "mode": "pull"}
    status, body = await post(client, "/v1/admin/distributions", d)
    assert status == 201 and body["distribution"]["shares"]["owed"] == {"count": 5, "amount": "100"}
    status, err = await post(client, "/v1/admin/distributions", {**d, "total": "101"})
    assert (status, err["field"]) == (409, "total")
    status, err = await post(client, "/v1/admin/distributions", {**d, "id": "big", "total": "100000"})
    assert (status, err["field"]) == (422, "pool_account")
    status, err = await post(client, "/v1/admin/distributions", {**d, "id": "x", "snapshot": "nope"})
    assert status == 404
    r = await client.get("/v1/distributions/d")
    assert r.status == 401  # private without a token
    r = await client.get("/v1/distributions/d/shares?limit=2", headers=AUTH)
    shares = (await r.json())["shares"]
    assert [s["index"] for s in shares] == [0, 1]
    # public: the tree and a proof
    tree = await (await client.get("/v1/distributions/d/tree")).json()
    assert tree["format"] == "standard-v1" and tree["leafEncoding"] == list(CLAIM_ENCODING)
    proof = await (await client.get(f"/v1/distributions/d/proof/{HOLDERS[2].upper().replace('0X', '0x')}")).json()
    assert proof["account"] == HOLDERS[2] and proof["amount"] == "20"
    assert verify(proof["root"], CLAIM_ENCODING, (str(proof["index"]), HOLDERS[2], "20"), proof["proof"])
    assert (await client.get("/v1/distributions/d/proof/0x" + "99" * 20)).status == 404
    # a pull distribution is not pushed
    status, err = await post(client, "/v1/admin/distributions/d/push")
    assert (status, err["field"]) == (422, "mode")
    status, body = await post(client, "/v1/admin/distributions", {**d, "id": "p", "mode": "push", "total": "30"})
    status, body = await post(client, "/v1/admin/distributions/p/push")
    assert status == 200 and body["requested"] == 5
    assert (await client.get("/v1/distributions/p/tree")).status == 422
    # what one recipient is owed, per distribution, from its entitlement accounts
    assert (await client.get(f"/v1/entitlements/{HOLDERS[2]}")).status == 401
    r = await client.get(f"/v1/entitlements/{HOLDERS[2].upper().replace('0X', '0x')}", headers=AUTH)
    owed = {e["distribution"]: e for e in (await r.json())["entitlements"]}
    assert set(owed) == {"d", "p"}
    assert (owed["d"]["share"], owed["d"]["owed"], owed["d"]["state"]) == ("20", "20", "owed")
    assert owed["d"]["account"] == f"entitlement:d:{HOLDERS[2]}"
    assert (owed["p"]["share"], owed["p"]["state"]) == ("6", "requested")  # 30 * 3/15; paid when it confirms
    page = await (await client.get(f"/v1/entitlements/{HOLDERS[2]}?limit=1&after=d", headers=AUTH)).json()
    assert [e["distribution"] for e in page["entitlements"]] == ["p"]
    assert (await client.get("/v1/entitlements/user:anvil:x", headers=AUTH)).status == 400


async def test_vouchers_over_http(client, pool):
    async with pool.acquire() as conn:
        await conn.execute("UPDATE chain_state SET chain_id = 31337")
    v = {"id": "v1", "pool_account": "app:pool", "asset": ASSET, "recipient": HOLDERS[0], "amount": "30",
         "valid_after": 0, "valid_before": 2**40, "contract": "0x" + "c1" * 20}
    status, body = await post(client, "/v1/admin/vouchers", v)
    assert status == 201 and body["voucher"]["state"] == "issued" and len(body["voucher"]["signature"]) == 132
    status, again = await post(client, "/v1/admin/vouchers", v)
    assert status == 200 and again["voucher"]["nonce"] == body["voucher"]["nonce"]
    status, err = await post(client, "/v1/admin/vouchers", {**v, "id": "v2", "amount": "21"})
    assert (status, err["field"]) == (422, "amount")  # the cap of 50
    status, body = await post(client, "/v1/admin/vouchers/v1/revoke")
    assert status == 200 and body["revoke_requested"] and body["revoke_calldata"].startswith("0x")
    r = await client.get("/v1/vouchers/v1", headers=AUTH)
    got = await r.json()
    assert got.get("state") == "issued", got
