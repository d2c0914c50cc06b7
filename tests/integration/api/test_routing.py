"""The route registry (api/routing.py): one error contract for every declared route, and a document
that covers every route the app serves (responses typed, tags, the admin scheme)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.http import MAX_BIGINT, PlainText, json_response
from api.routing import QueryInt, Routes, build_spec, registered
from tests.integration.api.test_admin import AUTH, admin_settings
from tests.support.api_data import client_for

NUL_BODIES = {
    "/v1/admin/payouts/pause": {"reason": "a\u0000b"},
    "/v1/admin/replay": {"chain": "anvil", "from_block": 1, "to_block": 2, "reason": "a\u0000b"},
    "/v1/admin/batches/0x" + "ab" * 32 + "/cancel": {"reason": "\u0000"},
}


def _assert_400(body: dict, field: str) -> None:
    assert body["error"] == "invalid_parameter" and body["status"] == 400, body
    assert body["field"] == field and body["message"].startswith(field + ":"), body


async def test_declared_routes_share_one_error_contract(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool) as client:
        for path, field in (("/v1/events?colour=red", "colour"), ("/v1/status?verbose=1", "verbose"),
                            ("/v1/admin/payouts/held?x=1", "x"), ("/v1/payouts/1?limit=2", "limit"),
                            ("/v1/events?chain=anvil&chain=anvil", "chain"),
                            ("/v1/events?from_block=9223372036854775808", "from_block"),
                            ("/v1/admin/replay/0", "id"), ("/v1/admin/replay/9223372036854775808", "id"),
                            ("/v1/intents/1/occurrences?limit=10001", "limit"),
                            ("/v1/admin/deliveries/Bad!", "id")):
            resp = await client.get(path, headers=AUTH)
            assert resp.status == 400, (path, await resp.text())
            _assert_400(await resp.json(), field)
        for path, body in NUL_BODIES.items():
            resp = await client.post(path, json=body, headers=AUTH)
            assert resp.status == 400, (path, await resp.text())
            _assert_400(await resp.json(), "reason")
        too_big = {"chain": "anvil", "from_block": MAX_BIGINT + 1, "to_block": 2}
        resp = await client.post("/v1/admin/replay", json=too_big, headers=AUTH)
        _assert_400(await resp.json(), "from_block")
        resp = await client.post("/v1/admin/payouts", json={"chain": "anvil", "asset": "native", "to": "0x" + "b1" * 20,
                                                            "amount": 2**256, "key": "k"}, headers=AUTH)
        _assert_400(await resp.json(), "amount")
        for raw in (b"[1]", b"{", b""):
            resp = await client.post("/v1/admin/replay", data=raw, headers=AUTH)
            _assert_400(await resp.json(), "body")
        resp = await client.post("/v1/admin/replay", data=b"{" + b" " * (64 * 1024) + b"}", headers=AUTH)
        assert resp.status == 413 and resp.content_type == "application/json"
        assert (await resp.json())["status"] == 413
        assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


# Readable without a token (README "Read scopes"); every other route needs one.
PUBLIC_PATHS = {"/health", "/ready", "/metrics", "/openapi.json", "/", "/static/app.js", "/static/style.css",
                "/v1/status", "/v1/events", "/v1/chains/{chain}/children", "/v1/stream", "/v1/verify-payment",
                "/v1/auth/challenge", "/v1/auth/verify", "/v1/auth/refresh", "/v1/auth/logout", "/v1/ws",
                "/example/", "/example/example.js", "/v1/distributions/{id}/tree",
                "/v1/distributions/{id}/proof/{account}"}
# The signed-in wallet's own routes (issue 27): its token, never the admin's (test_wallet.py).
WALLET_PATHS = {"/v1/me", "/v1/me/balances", "/v1/me/entries", "/v1/me/payouts", "/v1/me/invoices",
                "/v1/me/withdrawals", "/v1/me/entitlements"}


async def test_the_document_covers_every_served_route(tmp_path, pool, monkeypatch):
    settings = admin_settings(tmp_path, monkeypatch)
    async with client_for(settings, pool) as client:
        spec = await (await client.get("/openapi.json")).json()
        served = {(r.method, r.resource.canonical) for r in client.app.router.routes() if r.method != "HEAD"}
        declared = {(r.method, r.path) for r in registered(client.app)}
        assert served == declared  # nothing is served without a declaration
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == served
    assert spec["openapi"].startswith("3.1") and spec["components"]["securitySchemes"]["admin"]["scheme"] == "bearer"
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["tags"] and set(op["tags"]) <= {t["name"] for t in spec["tags"]}, path
            ok = [s for s in op["responses"] if s.startswith("2")]
            assert ok, (method, path)
            for status in ok:
                content = op["responses"][status]["content"]
                assert all("schema" in media for media in content.values()), (method, path)
                ref = content.get("application/json", {}).get("schema", {}).get("$ref")
                assert ref is None or ref.rsplit("/", 1)[1] in schemas, (method, path, ref)
            assert op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
            if path.startswith("/v1/admin/"):
                assert op["security"] == [{"admin": []}] and "401" in op["responses"], path
                assert op["tags"] == ["admin"], path
            elif path in PUBLIC_PATHS:
                assert "security" not in op and "401" not in op["responses"], path
            elif path in WALLET_PATHS:
                assert op["security"] == [{"wallet": []}], path
                assert {"401", "403"} <= set(op["responses"]), path
            else:  # read scopes (issue 26): a private read says which token reads it
                assert op["security"] == [{"admin": []}], path
                assert {"401", "403"} <= set(op["responses"]), path
    # Amounts are exact integer strings; configured chains are stated.
    assert schemas["PayoutRequest"]["properties"]["amount"]["pattern"] == "^-?[0-9]+$"
    assert schemas["ReplayBody"]["properties"]["chain"]["enum"] == ["anvil"]
    events = {p["name"]: p for p in spec["paths"]["/v1/events"]["get"]["parameters"]}
    assert events["limit"]["schema"]["maximum"] == settings.api.max_page_size
    assert "429" in spec["paths"]["/v1/events"]["get"]["responses"]
    assert "429" not in spec["paths"]["/health"]["get"]["responses"]


class _Params(BaseModel):
    id: QueryInt(1, 9) = Field(description="an id")
    n: QueryInt(0, 5) | None = None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: StrictInt = Field(ge=0, le=MAX_BIGINT)
    text: PlainText | None = None


class _Out(BaseModel):
    id: int
    n: int | None


async def test_a_new_route_is_one_declaration():
    """What a route module does: declare, register, and the validation and the document follow."""
    table = Routes("public", auth=None)

    @table.post("/x/{id}", params=_Params, body=_Body, response=_Out, errors={409: "Taken"})
    async def make_x(request: web.Request, p: _Params, body: _Body) -> web.Response:
        """Make an x"""
        return json_response({"id": p.id, "n": p.n})

    app = web.Application()
    app.add_routes(table)
    spec = build_spec(registered(app), runtime={}, unlimited=frozenset(), title="t", description="d")
    op = spec["paths"]["/x/{id}"]["post"]
    assert op["summary"] == "Make an x" and op["tags"] == ["public"] and op["operationId"] == "make_x"
    params = {p["name"]: p for p in op["parameters"]}
    assert params["id"]["in"] == "path" and params["id"]["required"] and params["id"]["schema"]["maximum"] == 9
    assert params["n"]["in"] == "query" and not params["n"]["required"] and "anyOf" not in params["n"]["schema"]
    assert set(op["responses"]) == {"200", "400", "409", "429", "default"}
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/_Body")
    assert spec["components"]["schemas"]["_Body"]["additionalProperties"] is False


async def test_a_route_is_private_unless_declared_public():
    """Read scopes (issue 26): a table that says nothing needs the admin token; an area can be published."""
    table = Routes("private")

    @table.get("/y", area="payouts", response=_Out)
    async def read_y(request: web.Request) -> web.Response:
        """Read a y"""
        return json_response({"id": 1, "n": None})

    app = web.Application()
    app.add_routes(table)
    op = build_spec(registered(app), runtime={}, unlimited=frozenset(), title="t", description="d")["paths"]["/y"]["get"]
    assert op["security"] == [{"admin": []}] and {"401", "403"} <= set(op["responses"])
    published = build_spec(registered(app), runtime={}, unlimited=frozenset(), title="t", description="d",
                           public=frozenset({"payouts"}))["paths"]["/y"]["get"]
    assert "security" not in published and "401" not in published["responses"]
