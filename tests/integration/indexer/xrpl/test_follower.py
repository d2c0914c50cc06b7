"""The XRPL follower against the standalone test ledger and real Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from config import ConfigError
from indexer.errors import ChainHalted
from indexer.xrpl.follower import XrplFollower
from tests.support.anvil import free_port
from tests.support.config import make_settings, write_config
from tests.support.xrpl import (  # noqa: F401 (xrpl_ledger is a fixture)
    ASF_DEFAULT_RIPPLE,
    ASF_REQUIRE_DEST,
    TF_PARTIAL_PAYMENT,
    XRP,
    Driver,
    ledger_record,
    usd,
    wallet,
    xrpl_ledger,
)
from tests.xrpl_ledger import start_ledger_server

ROOT = Path(__file__).resolve().parents[4]
HOT, COLD, PAYER, ATTACKER, ISSUER = (wallet(n) for n in (21, 22, 23, 24, 25))
WATCHED = [HOT.classic_address, COLD.classic_address]


def chain_cfg(rpc: list[str], **extra) -> dict:
    cfg = {"name": "xr", "preset": "xrpl", "rpc": rpc, "start_ledger": 1, "poll_interval": 0.05,
           "wallets": [{"name": "hot", "address": HOT.classic_address}, {"name": "cold", "address": COLD.classic_address}]}
    cfg.update(extra)
    return {k: v for k, v in cfg.items() if v is not None}


def follower(tmp_path, pool, rpc: list[str], **extra) -> XrplFollower:
    settings = make_settings(tmp_path, {"chains": [chain_cfg(rpc, **extra)]})
    return XrplFollower(settings.chain("xr"), pool)


async def stored(pool) -> set[tuple]:
    rows = await pool.fetch("SELECT block_number, tx_hash, tx_index, address, event, args->>'result' AS result "
                            "FROM events WHERE chain = 'xr'")
    return {tuple(r.values()) for r in rows}


async def args_of(pool, tx_hash: str, address: str) -> dict:
    return await pool.fetchval("SELECT args FROM events WHERE chain = 'xr' AND tx_hash = $1 AND address = $2",
                               tx_hash, address)


async def cursor_number(pool) -> int | None:
    return await pool.fetchval("SELECT cursor_number FROM chain_state WHERE chain = 'xr'")


async def eventually(check, what: str, timeout: float = 30.0):
    """Poll `check()` until truthy; a bound on waiting, not a timing assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def populate(d: Driver) -> dict[str, str]:
    """Payments in and out of the watched accounts, with the tricky cases; returns tx hashes by name."""
    d.fund(HOT, COLD, PAYER, ATTACKER, ISSUER)
    d.close()
    iss = ISSUER.classic_address
    d.account_set(ISSUER, SetFlag=ASF_DEFAULT_RIPPLE)
    for w in (HOT, ATTACKER):
        d.trust(w, iss, "1000000")
    d.pay(ISSUER, ATTACKER.classic_address, usd(iss, "0.001"))
    d.close()
    out = {
        "xrp_in": d.pay(PAYER, HOT.classic_address, str(25 * XRP), DestinationTag=7,
                        Memos=[{"Memo": {"MemoData": "696E766F6963652034322F31"}}])["tx_json"]["hash"],
        "attack": d.pay(ATTACKER, HOT.classic_address, usd(iss, "1000"), Flags=TF_PARTIAL_PAYMENT)["tx_json"]["hash"],
        "tec_in": d.pay(PAYER, HOT.classic_address, str(10**12))["tx_json"]["hash"],  # more than PAYER has
        "hot_to_cold": d.pay(HOT, COLD.classic_address, str(3 * XRP))["tx_json"]["hash"],
    }
    rejected = d.pay(ATTACKER, HOT.classic_address, str(XRP), Flags=TF_PARTIAL_PAYMENT)
    assert rejected["engine_result"] == "temBAD_SEND_XRP_PARTIAL"
    assert d.ledger.held == {} and all(h in {r.hash for r in d.ledger.open_txs} for h in out.values())
    d.close()
    d.account_set(COLD, SetFlag=ASF_REQUIRE_DEST)
    out["tag_needed"] = d.pay(HOT, COLD.classic_address, str(XRP))["tx_json"]["hash"]
    d.close()
    return out


async def test_backfill_then_live_follow_equals_the_ledgers_record(xrpl_ledger, pool, tmp_path):
    d = Driver(xrpl_ledger)
    names = populate(d)
    f = follower(tmp_path, pool, [xrpl_ledger.ws_url])
    try:
        first = await f.backfill()
        assert first == len(ledger_record(d.ledger, WATCHED))
        assert await stored(pool) == ledger_record(d.ledger, WATCHED)

        stop = asyncio.Event()
        task = asyncio.create_task(f.run(stop))
        await eventually(lambda: asyncio.sleep(0, f.client.stream_connected), "the ledger stream")
        for i in range(4):  # live: new ledgers arrive through the stream
            d.pay(PAYER, HOT.classic_address, str(XRP + i))
            d.pay(COLD, HOT.classic_address, str(XRP), DestinationTag=i)
            d.close()
            d.close()  # an empty ledger too
        target = d.ledger.validated

        async def caught_up():
            return await cursor_number(pool) == target.index

        await eventually(caught_up, "the follower to reach the validated ledger")
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        await f.close()

    assert await stored(pool) == ledger_record(d.ledger, WATCHED)
    st = await f.store.load_state()
    assert (st.cursor.hash, st.final_number) == (target.hash, target.index)
    assert st.status["ws_connected"] is True and st.status["gap"] is None

    attack = await args_of(pool, names["attack"], HOT.classic_address)
    assert attack["amount"]["value"] == "1000" and attack["delivered_amount"]["value"] == "0.001"
    assert attack["status"] == "success" and attack["direction"] == "in" and attack["partial_payment"] is True
    # A tec payment changes only the sender's account (fee, Sequence): it is in the sender's
    # history as failed, and, as on rippled, not in the destination's at all.
    assert await pool.fetchval("SELECT count(*) FROM events WHERE tx_hash = $1", names["tec_in"]) == 0
    failed = await args_of(pool, names["tag_needed"], HOT.classic_address)
    assert (failed["status"], failed["result"], failed["direction"]) == ("failed", "tecDST_TAG_NEEDED", "out")
    assert failed["delivered_amount"] is None
    assert await args_of(pool, names["tag_needed"], COLD.classic_address) is None
    paid = await args_of(pool, names["xrp_in"], HOT.classic_address)
    assert (paid["delivered_amount"], paid["destination_tag"], paid["memos"]) == (str(25 * XRP), "7", [{"data": "invoice 42/1"}])
    both = await pool.fetch("SELECT address, args->>'direction' AS dir FROM events WHERE tx_hash = $1 ORDER BY address",
                            names["hot_to_cold"])
    assert {(r["address"], r["dir"]) for r in both} == {(HOT.classic_address, "out"), (COLD.classic_address, "in")}

    # Replaying everything inserts nothing.
    again = follower(tmp_path, pool, [xrpl_ledger.http_url])
    try:
        assert await again.backfill(from_block=1) == 0
    finally:
        await again.close()
    assert await stored(pool) == ledger_record(d.ledger, WATCHED)


async def test_failover_from_a_dead_endpoint(xrpl_ledger, pool, tmp_path):
    d = Driver(xrpl_ledger)
    populate(d)
    dead = f"ws://127.0.0.1:{free_port()}/"
    f = follower(tmp_path, pool, [dead, xrpl_ledger.http_url])
    try:
        await f.backfill()
    finally:
        await f.close()
    assert await stored(pool) == ledger_record(d.ledger, WATCHED)
    dead_health, live_health = f.client.health()
    assert dead_health["errors"] >= 1 and live_health["errors"] == 0 and live_health["requests"] > 0


async def test_gap_is_reported_and_never_skipped(xrpl_ledger, pool, tmp_path):
    d = Driver(xrpl_ledger)
    d.fund(HOT, PAYER)
    d.close()
    for _ in range(6):
        d.pay(PAYER, HOT.classic_address, str(XRP))
        d.close()
    xrpl_ledger.set_gap(4, 6)
    f = follower(tmp_path, pool, [xrpl_ledger.ws_url])
    stop = asyncio.Event()
    task = asyncio.create_task(f.run(stop))
    try:
        async def gap_reported():
            return await pool.fetchrow("SELECT cursor_number, status FROM chain_state WHERE chain = 'xr' "
                                       "AND status->>'gap' = '4-6'")

        st = await eventually(gap_reported, "the gap in the status")
        # rippled's account_tx reaches back only to the first gap below the validated ledger,
        # so nothing is indexed until the gap is filled: never past it.
        assert st["cursor_number"] is None and st["status"]["gap_waiting_at"] == 1
        assert await pool.fetchval("SELECT count(*) FROM events WHERE chain = 'xr'") == 0
        assert REGISTRY.get_sample_value("chainsettle_xrpl_gap", {"chain": "xr"}) == 1
        assert REGISTRY.get_sample_value("chainsettle_xrpl_gap_ledgers", {"chain": "xr"}) == 3
        assert st["status"]["gap_endpoints"][f.client.conns[0].ep.label] == "1-3,7-8"

        xrpl_ledger.clear_gap()  # the server acquired the missing ledgers

        async def resumed():
            return await pool.fetchval("SELECT cursor_number = $1 AND status->'gap' = 'null'::jsonb FROM chain_state "
                                       "WHERE chain = 'xr'", d.ledger.validated.index)

        await eventually(resumed, "the follower to resume after the gap")
        assert REGISTRY.get_sample_value("chainsettle_xrpl_gap", {"chain": "xr"}) == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await f.close()
    assert await stored(pool) == ledger_record(d.ledger, WATCHED)


async def test_gap_on_one_endpoint_is_filled_from_another(xrpl_ledger, pool, tmp_path):
    d = Driver(xrpl_ledger)
    populate(d)
    holey = xrpl_ledger
    holey.set_gap(3, 4)
    full, _ = await start_ledger_server(ledger=d.ledger)
    f = follower(tmp_path, pool, [holey.ws_url, full.http_url])
    try:
        await f.backfill()
    finally:
        await f.close()
        await full.stop()
    assert await stored(pool) == ledger_record(d.ledger, WATCHED)
    assert (await f.store.load_state()).status["gap"] is None


async def test_sigkill_mid_backfill_then_restart_ends_exact(xrpl_ledger, pool, db_url, tmp_path):
    d = Driver(xrpl_ledger)
    d.fund(HOT, COLD, PAYER)
    d.close()
    for i in range(120):  # one range per ledger (max_logs_range = 1): many commits to kill between
        if i % 3 == 0:
            d.pay(PAYER, HOT.classic_address if i % 2 else COLD.classic_address, str(XRP + i))
        d.close()
    final = d.ledger.validated
    config = write_config(tmp_path / "chainsettle.toml", {
        "database": {"url": db_url},
        "log": {"level": "warning", "format": "json"},
        "chains": [chain_cfg([xrpl_ledger.ws_url], max_logs_range=1)],
    })
    cmd = [sys.executable, "-m", "daemon.cli", "--config", str(config), "index", "--chain", "xr"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        async def mid_way():
            n = await cursor_number(pool)
            return n is not None and n >= 10 and n

        killed_at = await eventually(mid_way, "the first committed ranges", timeout=60)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert killed_at < final.index, "the backfill finished before it could be killed"
    cursor = await cursor_number(pool)
    assert cursor < final.index
    # What is stored is exactly the ledger's record up to the cursor: nothing half-written.
    assert await stored(pool) == ledger_record(d.ledger, WATCHED, hi=cursor)

    again = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(again.communicate(), 120)
    assert again.returncode == 0, err.decode()[-2000:]
    assert await stored(pool) == ledger_record(d.ledger, WATCHED)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE chain = 'xr'") == len(ledger_record(d.ledger, WATCHED))
    row = await pool.fetchrow("SELECT cursor_number, cursor_hash FROM chain_state WHERE chain = 'xr'")
    assert (row["cursor_number"], row["cursor_hash"]) == (final.index, final.hash)


async def test_starts_at_the_validated_head_without_start_ledger(xrpl_ledger, pool, tmp_path):
    d = Driver(xrpl_ledger)
    populate(d)
    head = d.ledger.validated.index
    f = follower(tmp_path, pool, [xrpl_ledger.http_url], start_ledger=None)
    try:
        await f.backfill()
        assert (await f.store.load_state()).cursor.number == head
        assert await stored(pool) == ledger_record(d.ledger, WATCHED, lo=head)  # the head ledger, no history
        d.pay(PAYER, HOT.classic_address, str(XRP))
        d.close()
        assert await f.backfill() == 1
        assert await stored(pool) == ledger_record(d.ledger, WATCHED, lo=head)
    finally:
        await f.close()


async def test_endpoint_on_another_network_is_refused(pool, tmp_path):
    server, url = await start_ledger_server(network_id=5)
    f = follower(tmp_path, pool, [url])
    try:
        with pytest.raises(ConfigError, match="chains.xr.rpc: no endpoint serves network id 0"):
            await f.backfill()
        assert f.client.health()[0]["excluded"] == "network id 5, expected 0"
    finally:
        await f.close()
        await server.stop()


def test_bad_watched_address_names_the_field(tmp_path):
    # Caught when the config loads, naming the field.
    with pytest.raises(ConfigError, match=r"chains\[0\]\.wallets\[1\]\.address: .*\(wallet typo\)"):
        make_settings(tmp_path, {"chains": [chain_cfg(["ws://127.0.0.1:1/"], wallets=[
            {"name": "hot", "address": HOT.classic_address}, {"name": "typo", "address": "rNotAnAddress"}])]})
    with pytest.raises(ConfigError, match=r"chains\.xr\.wallets: an XRPL chain needs"):
        XrplFollower(make_settings(tmp_path, {"chains": [chain_cfg(["ws://127.0.0.1:1/"], wallets=[])]}).chain("xr"),
                     pool=None)


async def test_another_chain_under_the_cursor_halts_the_follower(pool, tmp_path):
    first, url = await start_ledger_server()
    other, other_url = await start_ledger_server()  # same network id, different history
    try:
        for server, closes, funded in ((first, 3, (HOT,)), (other, 5, (HOT, COLD))):
            d = Driver(server)
            d.fund(*funded)  # the histories differ from ledger 2 on
            for _ in range(closes):
                d.close()
        f = follower(tmp_path, pool, [url])
        try:
            await f.backfill()
        finally:
            await f.close()
        g = follower(tmp_path, pool, [other_url])
        try:
            with pytest.raises(ChainHalted, match="every endpoint disagrees with the stored cursor"):
                await g.backfill()
        finally:
            await g.close()
        reason = await pool.fetchval("SELECT halted_reason FROM chain_state WHERE chain = 'xr'")
        assert f"ledger {first.ledger.validated.index} is {first.ledger.validated.hash} here" in reason
        with pytest.raises(ChainHalted, match="is halted"):  # and it stays halted until a human clears it
            await follower(tmp_path, pool, [url]).backfill()
    finally:
        await first.stop()
        await other.stop()


async def test_live_follow_survives_losing_its_endpoint(xrpl_ledger, pool, tmp_path):
    d = Driver(xrpl_ledger)
    d.fund(HOT, PAYER)
    d.close()
    backup, _ = await start_ledger_server(ledger=d.ledger)  # a second server of the same chain
    f = follower(tmp_path, pool, [xrpl_ledger.ws_url, backup.ws_url])
    stop = asyncio.Event()
    task = asyncio.create_task(f.run(stop))
    try:
        async def at(index: int):
            return (await cursor_number(pool) or 0) >= index

        await eventually(lambda: at(d.ledger.validated.index), "the first ledgers")
        assert f.client.conns[0].subscribed
        await xrpl_ledger.stop()  # the primary goes away, stream and all
        for i in range(3):
            d.pay(PAYER, HOT.classic_address, str(XRP + i))
            d.close()
        await eventually(lambda: at(d.ledger.validated.index), "the follower to continue on the backup")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await f.close()
        await backup.stop()
    assert await stored(pool) == ledger_record(d.ledger, WATCHED)
    primary, second = f.client.health()
    assert primary["errors"] >= 1 and second["requests"] > 0
