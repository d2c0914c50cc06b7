"""Backfill several configured chains concurrently in this one process (for bench/multichain.py).

    python bench/_index_many.py CONFIG TO_BLOCK CHAIN [CHAIN ...]

The followers are the ones `chainsettle index` builds (daemon.followers),
sharing one pool; prints "started" when they begin and {"events": N,
"seconds": S} as its last line, once they are done.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import load_settings  # noqa: E402
from daemon.followers import make_follower  # noqa: E402
from daemon.runtime import open_pool, setup_logging  # noqa: E402


async def main(config: str, to_block: int, chains: list[str]) -> None:
    settings = load_settings(Path(config))
    setup_logging(settings)
    async with open_pool(settings) as pool:
        followers = [make_follower(settings.chain(c), pool, settings) for c in chains]
        print("started", flush=True)  # bench/multichain.py counts CPU from here
        t0 = time.perf_counter()
        try:
            counts = await asyncio.gather(*(f.backfill(to_block=to_block) for f in followers))
            seconds = time.perf_counter() - t0
        finally:
            for f in followers:
                await f.close()
    print(json.dumps({"events": sum(counts), "seconds": seconds}), flush=True)


if __name__ == "__main__":
    try:  # the loop `chainsettle index` runs on (daemon/cli.py)
        import uvloop
    except ImportError:
        asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
    else:
        uvloop.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
