"""A scheduler process for the kill and competition tests.

`python -m tests.integration.settlement.intents.child DB_URL CONFIG CLOCK_FILE MODE`
MODE `daemon`: the daemon's intents task (leader lock included);
MODE `direct`: the scheduler without the leader lock, so two processes
really race for one balance. The clock is the time written in CLOCK_FILE.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import datetime
from pathlib import Path

from config import load_settings
from db import create_pool
from settlement.intents.scheduler import IntentScheduler


async def main(url: str, config: str, clock_file: str, mode: str) -> None:
    settings = load_settings(Path(config))
    path = Path(clock_file)

    def clock() -> datetime:
        return datetime.fromisoformat(path.read_text().strip())

    pool = await create_pool(url, min_size=1, max_size=6)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if mode == "daemon":
        from daemon.intents import run_intents

        await run_intents(settings, pool, url, stop, clock=clock, interval=0.05)
    else:
        await IntentScheduler(pool, settings, clock=clock, concurrency=3).run(stop, 0.02)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
