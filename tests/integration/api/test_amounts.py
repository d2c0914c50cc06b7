"""Every amount in every API answer is an exact integer string (issue 25).

Walks the served `/openapi.json` (paths, GET, parameters: not the module
that writes it, so it survives a rewrite of the route declarations), calls
every GET route that answers JSON with the ids of a database seeded with
amounts that asyncpg decodes in exponent form (10**24 -> Decimal('1E+24'),
2 * 10**18 -> Decimal('2.00E+18')) and balances that net to zero (which
negated gave '-0'), and checks every amount-like field: `^-?[0-9]+$`,
never '-0', never a JSON number. Any string anywhere in exponent form
fails too, whatever its key.
"""

from __future__ import annotations

import re
from typing import Any

from settlement.ledger.books import Posting, post_transaction
from tests.support.api_data import (
    BATCH,
    USER,
    WALLET,
    api_settings,
    chain_cfg,
    client_for,
    read_sse,
    seed_settlement,
    seeded,
)

TOKEN = "amounts-admin-token"
BIG = "0x" + "b1" * 20
ODD = "0x" + "b2" * 20
ZERO = "0x" + "b3" * 20
INVOICE = "inv_" + "ab" * 12
INTEGER = re.compile(r"^-?[0-9]+$")
EXPONENT = re.compile(r"^-?[0-9]+(\.[0-9]*)?[eE][+-]?[0-9]+$")
# Names of amounts in base units across the answers; more come from the
# document (properties it describes as base units). Event arguments are the
# chain's own data, passed through (an XRPL issued amount's `value` is a
# decimal in units by protocol): only the exponent check applies to them.
AMOUNT_KEYS = {"amount", "balance", "final_balance", "received", "excess", "shortfall", "total", "expected",
               "actual", "difference", "tolerance", "failed_amount", "paid", "credited"}
SKIP = {"/v1/stream", "/metrics", "/", "/openapi.json"}  # the stream is read below; the rest are not JSON


async def seed_amounts(pool) -> dict[str, Any]:
    ids = await seed_settlement(pool)
    async with pool.acquire() as conn, conn.transaction():
        w, nat = f"wallet:anvil:{WALLET}", "anvil:native"
        legs = [("big", f"user:anvil:{BIG}", 10**24), ("odd", f"user:anvil:{ODD}", 31283 * 10**18),
                ("app", "app:treasury", 10**24), ("zero-in", f"user:anvil:{ZERO}", 5),
                ("zero-out", f"user:anvil:{ZERO}", -5)]
        for key, account, amount in legs:
            await post_transaction(conn, key=f"amounts:{key}", cause_kind="manual", cause={}, chain="anvil",
                                   block_number=4, author="test", reason="seed",
                                   postings=[Posting(w, nat, amount), Posting(account, nat, -amount)])
        ids["payout_big"] = await conn.fetchval(
            "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by)"
            " VALUES ('req-big', 'anvil', 'native', $1, $2, 'test') RETURNING id", BIG, 2 * 10**18)
        await conn.execute(
            "INSERT INTO invoices (id, app_ref, chain, asset, asset_id, asset_kind, amount, tolerance, wallet,"
            " match_method, payer, account, expires_at, state, received, created_by)"
            " VALUES ($1, 'amounts-1', 'anvil', 'native', 'anvil:native', 'native', $2, $3, $4, 'payer', $5,"
            " $6, now() + interval '1 day', 'overpaid', $7, 'test')",
            INVOICE, 2 * 10**18, 10**17, WALLET, BIG, f"user:anvil:{BIG}", 31283 * 10**18)
        run = await conn.fetchval(
            "INSERT INTO reconciliation_runs (chain, height, status, checked, mismatches)"
            " VALUES ('anvil', 5, 'mismatch', 1, 1) RETURNING id")
        await conn.execute(
            "INSERT INTO reconciliation_results (run_id, account_id, asset_id, expected, actual, difference,"
            " tolerance, status) VALUES ($1, $2, 'anvil:native', $3::numeric, $4::numeric, $4::numeric - $3::numeric, $5, 'mismatch')",
            run, ids["wallet"], 10**24, 31283 * 10**18, 10**18)
    ids["accounts"] = [f"wallet:anvil:{WALLET}", f"user:anvil:{USER}", f"user:anvil:{BIG}", f"user:anvil:{ODD}",
                       f"user:anvil:{ZERO}", "app:treasury"]
    return ids


def described_amounts(spec: dict) -> set[str]:
    """Property names the document describes as base-unit amounts."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                if isinstance(sub, dict) and "base units" in str(sub.get("description", "")):
                    found.add(name)
            for sub in node.values():
                walk(sub)
        elif isinstance(node, list):
            for sub in node:
                walk(sub)

    walk(spec)
    return found


def bad_amounts(doc: Any, keys: set[str], where: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            at = f"{where}.{k}"
            if k in keys and v is not None and not isinstance(v, (dict, list)):
                if not isinstance(v, str) or not INTEGER.fullmatch(v) or v == "-0":
                    out.append(f"{at} = {v!r}")
                continue
            out += bad_amounts(v, keys, at)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += bad_amounts(v, keys, f"{where}[{i}]")
    elif isinstance(doc, str) and EXPONENT.fullmatch(doc):
        out.append(f"{where} = {doc!r} (exponent form)")
    return out


def fill(path: str, ids: dict) -> list[str]:
    """Concrete URLs for a path template: every seeded id its parameter may take."""
    if "{" not in path:
        return [path]
    if path.startswith("/v1/accounts/"):
        values = ids["accounts"]
    elif path.startswith("/v1/payouts/"):
        values = [str(ids["batched"]), str(ids["payout_big"]), "req-1"]
    elif path.startswith("/v1/batches/"):
        values = [BATCH]
    elif path.startswith("/v1/admin/invoices/"):
        values = [INVOICE]
    else:
        values = ["1"]
    return [re.sub(r"\{[^}]+\}", v, path) for v in values]


async def test_every_amount_in_every_get_answer_is_an_integer_string(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("CS_AMOUNTS_ADMIN_TOKEN", TOKEN)
    await seeded(pool, "anvil", blocks=8, head=10, final=6)
    ids = await seed_amounts(pool)
    settings = api_settings(tmp_path, [chain_cfg("anvil")], api={"admin_token": "env:CS_AMOUNTS_ADMIN_TOKEN",
                                                                "sse_poll_interval": 0.05})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client_for(settings, pool) as client:
        spec = await (await client.get("/openapi.json")).json()
        keys = AMOUNT_KEYS | described_amounts(spec)
        answered: dict[str, int] = {}
        problems: list[str] = []
        for path, ops in sorted(spec["paths"].items()):
            if "get" not in ops or path in SKIP or path.startswith("/static/"):
                continue
            required = {p["name"]: "0" for p in ops["get"].get("parameters", [])
                        if p.get("required") and p["in"] == "query"}
            for url in fill(path, ids):
                resp = await client.get(url, params=required, headers=auth)
                assert resp.status < 500, (url, resp.status, await resp.text())
                if resp.status != 200 or not resp.content_type.endswith("json"):
                    continue
                answered[path] = answered.get(path, 0) + 1
                problems += bad_amounts(await resp.json(), keys, url)
        assert not problems, "\n".join(problems)
        # The routes that carry amounts answered with the seeded rows.
        for path in ("/v1/status", "/v1/accounts/{id}/balances", "/v1/accounts/{id}/payouts", "/v1/payouts/{id}",
                     "/v1/batches/{id}", "/v1/reconciliation", "/v1/admin/invoices/{id}", "/v1/events"):
            assert answered.get(path), (path, answered)

        balances = {}
        for account in ids["accounts"]:
            doc = await (await client.get(f"/v1/accounts/{account}/balances", headers=auth)).json()
            balances[account] = doc["balances"][0]["balance"]
        assert balances[f"user:anvil:{BIG}"] == str(10**24)
        assert balances[f"user:anvil:{ODD}"] == str(31283 * 10**18)
        assert balances[f"user:anvil:{ZERO}"] == "0"
        assert balances["app:treasury"] == str(10**24)  # owed to the app: positive, like a user's
        payout = await (await client.get(f"/v1/payouts/{ids['payout_big']}", headers=auth)).json()
        assert payout["payout"]["amount"] == str(2 * 10**18)
        invoice = await (await client.get(f"/v1/admin/invoices/{INVOICE}", headers=auth)).json()
        inv = invoice.get("invoice", invoice)
        assert (inv["amount"], inv["received"], inv["excess"], inv["shortfall"]) == (
            str(2 * 10**18), str(31283 * 10**18), str(31283 * 10**18 - 2 * 10**18), "0")

        # The live feed: a payout and a reconciliation run made while it is open.
        async with client.get("/v1/stream", headers=auth) as resp:
            assert resp.status == 200
            await pool.execute(
                "INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by)"
                " VALUES ('req-live', 'anvil', 'native', $1, $2, 'test')", BIG, 2 * 10**18)
            messages = await read_sse(resp, 1)
        assert [m["data"]["amount"] for m in messages] == [str(2 * 10**18)]
        assert not bad_amounts([m["data"] for m in messages], keys, "/v1/stream")
