"""The standalone test ledger over its real transports, with xrpl-py as the client."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
from pathlib import Path

from xrpl.asyncio.clients import AsyncJsonRpcClient, AsyncWebsocketClient
from xrpl.asyncio.transaction import submit_and_wait
from xrpl.models.requests import GenericRequest, StreamParameter, Subscribe
from xrpl.models.transactions import Payment

from tests.support.anvil import free_port
from tests.support.xrpl import GENESIS, XRP, Driver, wallet, xrpl_ledger  # noqa: F401 (fixture)
from tests.xrpl_ledger import start_ledger_server

ROOT = Path(__file__).resolve().parents[3]
A, B, ISSUER = wallet(11), wallet(12), wallet(13)


async def call(client, method: str, **params):
    return await client.request(GenericRequest(method=method, **params))


async def test_websocket_and_json_rpc_on_one_port(xrpl_ledger):
    d = Driver(xrpl_ledger)
    d.fund(A)
    d.close()
    async with AsyncWebsocketClient(xrpl_ledger.ws_url) as ws:
        info = (await call(ws, "server_info")).result["info"]
    rpc = AsyncJsonRpcClient(xrpl_ledger.http_url)
    info_rpc = (await call(rpc, "server_info")).result["info"]
    assert info["complete_ledgers"] == info_rpc["complete_ledgers"] == "1-2"
    assert info["validated_ledger"]["reserve_base_xrp"] == 1 and info["validated_ledger"]["reserve_inc_xrp"] == 0.2
    acct = (await call(rpc, "account_info", account=A.classic_address, ledger_index="validated")).result
    assert acct["account_data"]["Balance"] == str(1000 * XRP) and acct["validated"] is True
    assert (await call(rpc, "fee")).result["drops"]["base_fee"] == "10"
    assert (await call(rpc, "ledger_closed")).result["ledger_index"] == 2


async def test_rippled_error_shapes(xrpl_ledger):
    stranger = wallet(99).classic_address
    async with AsyncWebsocketClient(xrpl_ledger.ws_url) as ws:
        err = (await call(ws, "account_info", account=stranger)).result
        assert (err["error"], err["error_code"], err["error_message"]) == ("actNotFound", 19, "Account not found.")
        assert err["status"] == "error" and err["request"]["command"] == "account_info"
        assert (await call(ws, "no_such_method")).result["error"] == "unknownCmd"
        assert (await call(ws, "account_tx", account="not-an-address")).result["error"] == "actMalformed"
        out_of_range = await call(ws, "account_tx", account=GENESIS.classic_address, ledger_index_min=1, ledger_index_max=50)
        assert out_of_range.result["error"] == "lgrIdxMalformed"
        bad_range = await call(ws, "account_tx", account=GENESIS.classic_address, ledger_index_min=1, ledger_index_max=0)
        assert bad_range.result["error"] in ("invalidLgrRange", "lgrIdxMalformed")
        missing = await call(ws, "tx", transaction="AB" * 32)
        assert missing.result["error"] == "txnNotFound" and missing.result["error_code"] == 29
    rpc = AsyncJsonRpcClient(xrpl_ledger.http_url)
    err = (await call(rpc, "account_info", account=stranger)).result
    assert err["error"] == "actNotFound" and err["request"]["account"] == stranger
    bad_blob = (await call(rpc, "submit", tx_blob="12000022")).result
    assert bad_blob["error"] == "invalidTransaction" and "error_exception" in bad_blob


async def test_account_tx_pages_with_markers_in_both_api_versions():
    server, url = await start_ledger_server(account_tx_max_limit=2)
    try:
        d = Driver(server)
        d.fund(A, B)
        d.close()
        for i in range(5):
            d.pay(A, B.classic_address, str(XRP + i))
            if i % 2:
                d.close()
        d.close()
        async with AsyncWebsocketClient(url) as ws:
            for version, key in ((2, "tx_json"), (1, "tx")):
                pages, marker = [], None
                while True:
                    params = {"account": B.classic_address, "forward": True, "limit": 10, "api_version": version}
                    if marker:
                        params["marker"] = marker
                    res = (await call(ws, "account_tx", **params)).result
                    assert res["limit"] == 2
                    pages.append(res["transactions"])
                    marker = res.get("marker")
                    if not marker:
                        break
                entries = [e for p in pages for e in p]
                assert len(pages) == 3 and len(entries) == 6  # funding + five payments
                amounts = [e[key]["DeliverMax"] for e in entries]
                assert amounts == [str(1000 * XRP)] + [str(XRP + i) for i in range(5)]
                positions = [(e["ledger_index"] if version == 2 else e["tx"]["ledger_index"], e["meta"]["TransactionIndex"])
                             for e in entries]
                assert positions == sorted(positions)
                if version == 1:
                    assert all("Amount" in e["tx"] and "hash" in e["tx"] for e in entries)
                else:
                    assert all("Amount" not in e["tx_json"] and len(e["ledger_hash"]) == 64 for e in entries)
            newest = (await call(ws, "account_tx", account=B.classic_address, limit=1)).result["transactions"][0]
            assert newest["tx_json"]["DeliverMax"] == str(XRP + 4)
    finally:
        await server.stop()


async def test_gap_on_one_node_is_served_by_another(xrpl_ledger):
    d = Driver(xrpl_ledger)
    d.fund(A)
    for _ in range(6):
        d.close()
    other, _ = await start_ledger_server(ledger=xrpl_ledger.ledger)
    try:
        rpc = AsyncJsonRpcClient(xrpl_ledger.http_url)
        gap = (await call(rpc, "test_set_gap", start=3, end=4)).result
        assert gap["complete_ledgers"] == "1-2,5-7"
        assert (await call(rpc, "ledger", ledger_index=3)).result["error"] == "lgrNotFound"
        assert (await call(rpc, "account_tx", account=A.classic_address, ledger_index_min=2,
                           ledger_index_max=7)).result["error"] == "lgrIdxMalformed"
        other_rpc = AsyncJsonRpcClient(other.http_url)
        assert (await call(other_rpc, "server_info")).result["info"]["complete_ledgers"] == "1-7"
        found = (await call(other_rpc, "account_tx", account=A.classic_address, ledger_index_min=2, ledger_index_max=7))
        assert [e["ledger_index"] for e in found.result["transactions"]] == [2]
        assert (await call(rpc, "test_clear_gap")).result["complete_ledgers"] == "1-7"
    finally:
        await other.stop()


async def test_ledger_stream_and_ledger_accept(xrpl_ledger):
    async with AsyncWebsocketClient(xrpl_ledger.ws_url) as ws:
        sub = await ws.request(Subscribe(streams=[StreamParameter.LEDGER]))
        assert sub.result["ledger_index"] == 1 and sub.result["validated_ledgers"] == "1"
        accepted = (await call(ws, "ledger_accept")).result
        assert accepted["ledger_current_index"] == 3

        async def first_close():
            async for msg in ws:
                if msg.get("type") == "ledgerClosed":
                    return msg

        msg = await asyncio.wait_for(first_close(), 10)
        assert msg["ledger_index"] == 2 and msg["ledger_hash"] == xrpl_ledger.ledger.ledgers[2].hash
        assert msg["validated_ledgers"] == "1-2"
        header = (await call(ws, "ledger", ledger_index=2)).result
        assert header["ledger"]["parent_hash"] == xrpl_ledger.ledger.ledgers[1].hash and header["validated"]


async def test_dropped_submission_over_rpc(xrpl_ledger):
    d = Driver(xrpl_ledger)
    d.fund(A)
    d.close()
    rpc = AsyncJsonRpcClient(xrpl_ledger.http_url)
    assert (await call(rpc, "test_drop_next", count=1)).result["drop_pending"] == 1
    sent = d.pay(A, GENESIS.classic_address, str(XRP))
    assert sent["engine_result"] == "tesSUCCESS"
    d.close()
    assert xrpl_ledger.ledger.ledgers[3].txs == []
    again = d.pay(A, GENESIS.classic_address, str(XRP))  # the same Sequence, not dropped this time
    assert again["engine_result"] == "tesSUCCESS" and again["tx_json"]["Sequence"] == sent["tx_json"]["Sequence"]


async def test_xrpl_py_submit_and_wait_works_against_it():
    server, url = await start_ledger_server(close_interval=0.2)
    try:
        d = Driver(server)
        d.fund(A)
        async with AsyncWebsocketClient(url) as ws:
            # xrpl-py's own autofill (fee, Sequence, LastLedgerSequence) and wait loop.
            result = await submit_and_wait(Payment(account=A.classic_address, destination=B.classic_address,
                                                   amount=str(20 * XRP)), ws, A)
        assert result.result["validated"] is True
        assert result.result["meta"]["TransactionResult"] == "tesSUCCESS"
        assert result.result["meta"]["delivered_amount"] == str(20 * XRP)
    finally:
        await server.stop()


async def test_standalone_process():
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.xrpl_ledger", "--port", str(port), "--close-interval", "0.2",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE)
    try:
        banner = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert f"ws://127.0.0.1:{port}/" in banner.decode()

        def info() -> dict:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", json.dumps({"method": "server_info"}).encode(),
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())["result"]

        first = await asyncio.to_thread(info)
        assert first["status"] == "success"
        while (await asyncio.to_thread(info))["info"]["validated_ledger"]["seq"] <= first["info"]["validated_ledger"]["seq"]:
            await asyncio.sleep(0.1)  # the close timer advances the ledger on its own
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
