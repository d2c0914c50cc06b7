"""One leader per chain across processes, with takeover when it goes away."""

from __future__ import annotations

import asyncio

from daemon.leader import chain_leadership


async def test_second_contender_waits_then_takes_over(db_url):
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    order: list[str] = []
    release_a = asyncio.Event()

    async def contender(name: str, stop: asyncio.Event, hold: asyncio.Event | None) -> None:
        async with chain_leadership(db_url, "local", stop, retry_seconds=0.05) as leading:
            if leading:
                order.append(name)
                if hold is not None:
                    await hold.wait()

    a = asyncio.create_task(contender("a", stop_a, release_a))
    for _ in range(200):  # a leads before b contends, however slow the machine
        if order:
            break
        await asyncio.sleep(0.05)
    b = asyncio.create_task(contender("b", stop_b, None))
    await asyncio.sleep(0.3)
    assert order == ["a"]  # b is standing by while a holds the lock
    release_a.set()
    await asyncio.wait_for(a, 5)
    await asyncio.wait_for(b, 5)
    assert order == ["a", "b"]


async def test_leadership_is_per_chain(db_url):
    stop = asyncio.Event()
    async with chain_leadership(db_url, "one", stop) as first:
        async with chain_leadership(db_url, "two", stop) as second:
            assert first and second


async def test_stop_while_standing_by_yields_false(db_url):
    stop = asyncio.Event()
    async with chain_leadership(db_url, "local", asyncio.Event()) as leading:
        assert leading
        stop.set()
        async with chain_leadership(db_url, "local", stop, retry_seconds=0.05) as other:
            assert other is False
