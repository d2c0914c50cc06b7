"""Build the follower for a chain (EVM or XRPL) and run followers under supervision."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg

from config import ChainConfig, Settings
from config.logs import get_logger
from indexer.errors import ChainHalted
from indexer.store import StoreHook

from .leader import chain_leadership

log = get_logger("daemon.followers")


def default_hooks(settings: Settings) -> list[StoreHook]:
    """What derives from events and must commit and roll back with them."""
    from settlement.invoices.hook import InvoiceHook
    from settlement.ledger.hook import LedgerHook
    from settlement.payouts.evm.hook import PayoutHook
    from settlement.payouts.xrpl.hook import XrplPayoutHook

    # Invoices after the ledger: they move what the deposit rules booked.
    return [LedgerHook(settings), PayoutHook(settings), XrplPayoutHook(settings), InvoiceHook(settings)]


def make_follower(cfg: ChainConfig, pool: asyncpg.Pool, settings: Settings, hooks: Sequence[StoreHook] | None = None):
    hooks = default_hooks(settings) if hooks is None else hooks
    if cfg.kind == "xrpl":
        from indexer.xrpl.follower import XrplFollower

        return XrplFollower(cfg, pool, hooks=hooks, base_dir=settings.base_dir)
    from indexer.evm.follower import EvmFollower

    sources = []
    native_wallets = [w.address for w in cfg.wallets if "native" in w.assets]
    if native_wallets:
        # Native transfers leave no logs: read the wallets' blocks in full.
        from indexer.evm.native_scan import NativeTransferSource
        from indexer.evm.traces import Tracer

        tracer = Tracer(cfg.name, cfg.traces, cfg.trace_blocks) if cfg.traces != "off" else None
        sources.append(NativeTransferSource(cfg.name, native_wallets, tracer=tracer))
    return EvmFollower(cfg, pool, hooks=hooks, base_dir=settings.base_dir, sources=sources)


async def follow_chain(cfg: ChainConfig, pool: asyncpg.Pool, settings: Settings, url: str,
                       stop: asyncio.Event, hooks: Sequence[StoreHook] | None = None) -> None:
    """Lead the chain (advisory lock), then follow it until stop or halt."""
    async with chain_leadership(url, cfg.name, stop) as leading:
        if not leading:
            return
        follower = make_follower(cfg, pool, settings, hooks)
        try:
            await follower.run(stop)
        except ChainHalted as exc:
            log.error("follower.stopped_halted", chain=cfg.name, reason=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await follower.close()
