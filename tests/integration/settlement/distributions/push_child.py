"""`python -m tests.integration.settlement.distributions.push_child DB_URL CONFIG ID`: push one
distribution (the kill test SIGKILLs it at random points), exit 0 when every share is requested."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from config import load_settings
from db import create_pool
from settlement.distributions.push import push


async def main(url: str, config: str, distribution_id: str) -> None:
    settings = load_settings(Path(config))
    pool = await create_pool(url, min_size=1, max_size=3)
    try:
        await push(pool, settings, distribution_id, "kill-test", page=37)
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
