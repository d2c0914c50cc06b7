import asyncio

from config import ConfigError
from daemon.supervisor import supervised


async def test_a_crashing_worker_is_restarted_until_it_returns():
    calls = []

    async def worker():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("boom")

    await asyncio.wait_for(supervised("w", worker, asyncio.Event(), backoff=0.001), 5)
    assert len(calls) == 3


async def test_a_config_error_ends_the_task_without_restarts():
    calls = []

    async def worker():
        calls.append(1)
        raise ConfigError("chains.x: bad")

    await asyncio.wait_for(supervised("w", worker, asyncio.Event()), 5)
    assert calls == [1]


async def test_stop_prevents_restart():
    stop = asyncio.Event()
    calls = []

    async def worker():
        calls.append(1)
        stop.set()
        raise RuntimeError("boom")

    await asyncio.wait_for(supervised("w", worker, stop), 5)
    assert calls == [1]
