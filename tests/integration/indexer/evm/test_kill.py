"""SIGKILL at random points of a backfill, restart: exactly the canonical set.

`chainsettle index` runs as a real subprocess against anvil and a test
database and is killed without warning at seeded random moments: at start
up, between commits, inside one. After every kill the database must hold
exactly the events of the blocks up to its cursor; after the last restart
exits 0, exactly what eth_getLogs returns. A `run` daemon stopped with
SIGTERM or SIGINT exits 0 with the same property.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from db import create_pool
from tests.integration.indexer.evm.test_backfill import independent_rows, stored_rows
from tests.support.anvil import rpc_sync
from tests.support.config import evm_chain, write_config
from tests.support.evm import batch_transfer, deploy_token

ROOT = Path(__file__).resolve().parents[4]
BLOCKS, PER_BLOCK = 200, 100  # 20,000 Transfer events (+ the mint)


@pytest.fixture(scope="module")
def big_chain(anvil):
    token = deploy_token(anvil.url)
    rng = random.Random(20)
    for _ in range(BLOCKS):
        batch_transfer(anvil.url, token, ["0x" + rng.randbytes(20).hex() for _ in range(PER_BLOCK)],
                       [rng.randrange(1, 10**24) for _ in range(PER_BLOCK)])
    expected = independent_rows(anvil.url, token)
    assert len(expected) == BLOCKS * PER_BLOCK + 1
    head = rpc_sync(anvil.url, "eth_getBlockByNumber", ["latest", False])
    return {"token": token, "expected": expected, "head": int(head["number"], 16), "head_hash": head["hash"]}


def daemon_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_")}
    env.update(DATABASE_URL=db_url, CHAINSETTLE_LOG__FORMAT="json", PYTHONUNBUFFERED="1")
    return env


def config_file(tmp_path: Path, anvil_url: str, token: str, **extra) -> Path:
    # Depth 1: every mined block is final, so `index` goes to the head.
    chain = evm_chain("local", anvil_url, token, finality_depth=1, max_logs_range=3, **extra)
    return write_config(tmp_path / "chainsettle.toml", {"chains": [chain]})


def cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "daemon.cli", "--config", str(config), *args]


async def cursor_of(pool) -> tuple[int | None, str | None, int | None]:
    row = await pool.fetchrow("SELECT cursor_number, cursor_hash, final_number FROM chain_state WHERE chain = 'local'")
    return (row["cursor_number"], row["cursor_hash"], row["final_number"]) if row else (None, None, None)


async def assert_consistent(pool, anvil_url: str, expected: list[tuple]) -> int | None:
    """The stored events are exactly the canonical ones up to the cursor; returns the cursor."""
    # One snapshot: a COMMIT the killed process sent just before dying may
    # still land while we read.
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        number, block_hash, final = await cursor_of(conn)
        stored = await stored_rows(conn, "local")
    if number is None:
        assert stored == []
        return None
    assert block_hash == rpc_sync(anvil_url, "eth_getBlockByNumber", [hex(number), False])["hash"]
    assert final == number
    assert stored == [r for r in expected if r[0] <= number], f"rows do not match the cursor at {number}"
    return number


async def run_once(cmd: list[str], env: dict, pool, rng: random.Random, log: Path, kill: bool) -> int | None:
    """Start the CLI; SIGKILL it at a random moment (if `kill`); return its exit code, or None if killed."""
    loop = asyncio.get_running_loop()
    with log.open("ab") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err)
        try:
            if kill:
                start, _, _ = await cursor_of(pool)
                # Either some blocks past where it started (kills between and
                # inside commits) or a plain delay (kills at start-up too).
                target = (start or 0) + rng.randrange(1, BLOCKS // 3) if rng.random() < 0.75 else None
                deadline = loop.time() + (rng.uniform(0.05, 1.5) if target is None else 60)
                while proc.poll() is None and loop.time() < deadline:
                    if target is not None and ((await cursor_of(pool))[0] or 0) >= target:
                        await asyncio.sleep(rng.uniform(0, 0.03))
                        break
                    await asyncio.sleep(0.005)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
                    return None
            out, _ = await loop.run_in_executor(None, proc.communicate, None, 120)
            if proc.returncode == 0:
                result = json.loads(out.splitlines()[-1])
                assert result["chain"] == "local"
            return proc.returncode
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def kill_and_restart(seed: int, kills: int, anvil, big_chain, pg_cluster, tmp_path) -> list[int]:
    rng = random.Random(seed)
    db_url = await pg_cluster.new_database()
    pool = await create_pool(db_url, min_size=1, max_size=2)
    log = tmp_path / f"run-{seed}.log"
    cursors = []
    try:
        cmd = cli(config_file(tmp_path, anvil.url, big_chain["token"]), "index", "--chain", "local")
        env = daemon_env(db_url)
        for attempt in range(kills + 5):
            code = await run_once(cmd, env, pool, rng, log, kill=attempt < kills)
            cursors.append(await assert_consistent(pool, anvil.url, big_chain["expected"]))
            if code is not None:
                assert code == 0, log.read_text()[-3000:]
                break
        else:
            raise AssertionError("index never finished")
        assert cursors[-1] == big_chain["head"]
        assert await stored_rows(pool, "local") == big_chain["expected"]
        assert await pool.fetchval("SELECT count(*) FROM raw_logs") == 0
        assert (await cursor_of(pool))[1] == big_chain["head_hash"]
    finally:
        await pool.close()
        await pg_cluster.drop_database(db_url)
    return cursors


async def test_sigkill_mid_backfill_then_restart_gives_exactly_the_canonical_set(anvil, big_chain, pg_cluster, tmp_path):
    progress = []
    for seed in (1, 2, 3):
        progress.append(await kill_and_restart(seed, 3, anvil, big_chain, pg_cluster, tmp_path))
    # The kills did land mid-backfill: some restarts began from a cursor
    # strictly between nothing and the head.
    partial = [c for run in progress for c in run[:-1] if c is not None and c < big_chain["head"]]
    assert len(partial) >= 3, progress


@pytest.mark.slow
async def test_sigkill_many_times(anvil, big_chain, pg_cluster, tmp_path):
    for seed in range(10, 20):
        await kill_and_restart(seed, 8, anvil, big_chain, pg_cluster, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_run_stops_on_signal_after_the_write_in_progress(anvil, big_chain, pool, db_url, tmp_path, sig):
    config = config_file(tmp_path, anvil.url, big_chain["token"], poll_interval=0.1)
    env = daemon_env(db_url)
    log = tmp_path / "run.log"
    rng = random.Random(7 + sig)
    with log.open("ab") as err:
        proc = subprocess.Popen(cli(config, "run"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        target = rng.randrange(BLOCKS // 4, BLOCKS // 2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while ((await cursor_of(pool))[0] or 0) < target:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert loop.time() < deadline, "the daemon made no progress"
            await asyncio.sleep(0.005)
        proc.send_signal(sig)
        code = await loop.run_in_executor(None, proc.wait, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, log.read_text()[-3000:]
    stopped = await assert_consistent(pool, anvil.url, big_chain["expected"])
    assert stopped is not None and stopped >= target
    events = [json.loads(line).get("event") for line in log.read_text().splitlines() if line.startswith("{")]
    assert "daemon.stopping" in events and "daemon.stopped" in events

    # A restart carries on from there to exactly the canonical set.
    done = subprocess.run(cli(config, "index", "--chain", "local"), cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert await assert_consistent(pool, anvil.url, big_chain["expected"]) == big_chain["head"]
    assert await stored_rows(pool, "local") == big_chain["expected"]
