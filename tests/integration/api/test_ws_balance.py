"""`balance` messages of transfers and holds (migration 0025) on a real database: each reaches the
wallet's own `account` channel once and in order, with the right change and figures; another
wallet's channel and an anonymous stream get none; the admin stream gets them all."""

from __future__ import annotations

from tests.integration.api.test_admin import AUTH, credit
from tests.integration.api.test_ws import next_frame, open_ws, read_until_quiet, ws_settings
from tests.support.api_data import address, client_for, commit_blocks, event_row, read_sse, seeded
from tests.support.wallet import new_account, sign_in

FUNDER = "0x" + "12" * 20
ASSET = "anvil:native"


async def test_transfers_and_holds_reach_only_the_wallets_own_account_channel(tmp_path, pool, monkeypatch):
    settings = ws_settings(tmp_path, monkeypatch)
    store, _ = await seeded(pool, "anvil", blocks=10)
    alice, bob = new_account(), new_account()
    mine_code, funder = f"user:anvil:{alice.address.lower()}", f"user:anvil:{FUNDER}"
    await credit(pool, FUNDER, 5000)
    async with client_for(settings, pool) as client:
        sa, sb = await sign_in(client, alice), await sign_in(client, bob)
        wa, hello = await open_ws(client, ["account"], token=sa["token"])
        assert hello["type"] == "subscribed"
        wb, _ = await open_ws(client, ["account", "feed"], token=sb["token"])
        anonymous = await client.get("/v1/stream")
        admin = await client.get("/v1/stream", headers=AUTH)
        assert anonymous.status == admin.status == 200

        async def post(path: str, body: dict) -> None:
            r = await client.post(path, json=body, headers=AUTH)
            assert r.status in (200, 201), await r.text()

        leg = {"asset": ASSET}
        await post("/v1/admin/ledger/transfers", {"transfers": [
            {**leg, "id": "prize-1", "debit_account": funder, "credit_account": mine_code, "amount": "300"}]})
        await post("/v1/admin/ledger/holds", {**leg, "id": "bet-1", "debit_account": mine_code,
                                              "credit_account": funder, "amount": "100"})
        await post("/v1/admin/ledger/holds/bet-1/post", {"amount": "60"})
        await post("/v1/admin/ledger/holds", {**leg, "id": "bet-2", "debit_account": mine_code,
                                              "credit_account": funder, "amount": "50"})
        await post("/v1/admin/ledger/holds/bet-2/void", {})

        want = [("transfer", "transfer_id", "prize-1", "300"), ("hold", "hold_id", "bet-1", "-100"),
                ("post", "hold_id", "bet-1", "40"), ("hold", "hold_id", "bet-2", "-50"),
                ("void", "hold_id", "bet-2", "50")]
        frames: list[dict] = []
        while sum(1 for f in frames if f["type"] == "balance" and f["id"]) < len(want):
            frame = await next_frame(wa)
            assert frame is not None, "closed"
            if frame["type"] != "heartbeat":
                frames.append(frame)
        await read_until_quiet(wa, frames)
        changes = [f for f in frames if f["type"] == "balance" and f["id"]]
        assert [(f["stage"], *[f["data"].get(k) for k in ("reason", "account", "asset")]) for f in changes] == [
            (w[0], w[0], mine_code, ASSET) for w in want]
        assert [(f["data"]["reason"], w[1], f["data"][w[1]], f["data"]["amount"]) for f, w in zip(changes, want)] \
            == want
        assert len({f["id"] for f in changes}) == len(changes)  # each once
        assert [f["cursor"] for f in changes] == sorted(f["cursor"] for f in changes)
        assert all(f["channel"] == "account" and f["finality"] == "final" for f in changes)
        # The figures after the last change: 300 credited, 60 of the first bet posted, the second voided.
        snapshot = [f for f in frames if f["type"] == "balance" and f["id"] is None][-1]
        assert snapshot["data"]["account"] == mine_code
        figures = {b["asset_id"]: b for b in snapshot["data"]["balances"]}[ASSET]
        assert (figures["final"], figures["available"]) == ("240", "240")
        assert all(f["data"].get("account") == mine_code for f in frames if f["type"] == "balance")
        me = await (await client.get("/v1/me/balances", headers={"Authorization": f"Bearer {sa['token']}"})).json()
        assert {b["asset_id"]: b["available"] for b in me["balances"]}[ASSET] == "240"

        # Bob's account and feed channels: none of them (nor the funder's side).
        theirs: list[dict] = []
        await read_until_quiet(wb, theirs)
        await read_until_quiet(wb, theirs)
        assert not any(f["type"] == "balance" for f in theirs), theirs

        # The admin stream carries every change, both sides; the anonymous one none, up to a later event.
        seen = await read_sse(admin, 100, until=lambda m: m["event"] == "balance" and m["data"].get("hold_id") == "bet-2"
                              and m["data"]["reason"] == "void")
        admin_changes = [m["data"] for m in seen if m["event"] == "balance"]
        assert [(d["reason"], d["amount"]) for d in admin_changes if d["account"] == mine_code] == [
            (w[0], w[3]) for w in want]
        assert [(d["reason"], d["amount"]) for d in admin_changes if d["account"] == funder] == [
            ("transfer", "-300"), ("post", "60")]
        await commit_blocks(store, 10, 11, [event_row("anvil", 11, 0, addr=address(7))])
        public = await read_sse(anonymous, 100, until=lambda m: m["event"] == "chain_event"
                                and m["data"]["block_number"] == 11)
        assert not any(m["event"] == "balance" for m in public), public
        for w in (wa, wb):
            await w.close()
        anonymous.close()
        admin.close()
