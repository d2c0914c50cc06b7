"""Payout workers, one per chain of [payouts]: the EVM batch worker or the
XRPL hot-wallet worker, each run as a supervised task of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from config import Settings
from config.section_payouts import PayoutChainConfig, XrplPayoutChainConfig


def payout_jobs(settings: Settings, pool: asyncpg.Pool, stop: asyncio.Event) -> dict[str, Callable[[], Awaitable[None]]]:
    return {f"payouts-{pc.chain}": (lambda pc=pc: run_payout_worker(settings, pool, pc, stop))
            for pc in settings.payouts.chains}


async def run_payout_worker(settings: Settings, pool: asyncpg.Pool, pc: PayoutChainConfig | XrplPayoutChainConfig,
                            stop: asyncio.Event) -> None:
    if pc.kind == "xrpl":
        from settlement.payouts.xrpl.worker import XrplPayoutWorker

        worker = XrplPayoutWorker(settings, pool, pc)
    else:
        from settlement.payouts.evm.worker import EvmPayoutWorker

        worker = EvmPayoutWorker(settings, pool, pc)
    try:
        await worker.run(stop)
    finally:
        await worker.close()
