"""Chain presets: the facts from shared/CHAINS.md, in one place.

A chain in the config is a preset plus RPC URLs; every field here can be
overridden per chain. Figures are from the chains' own documentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["evm", "xrpl"]
# depth: final once `depth` blocks are on top (depth=1: final when mined,
# i.e. single-slot / instant finality). tag: ask the node for `finalized`.
# validated: XRPL validated ledgers.
FinalityMode = Literal["depth", "tag", "validated"]


@dataclass(frozen=True)
class Preset:
    name: str
    kind: Kind
    chain_id: int  # EVM chain id, or XRPL network id
    block_time: float  # seconds, used to pace polling
    finality: FinalityMode
    finality_depth: int  # blocks; for `tag` chains the fallback if the tag is unsupported
    poa_extra_data: bool = False  # > 32 bytes of extraData in headers
    max_logs_range: int = 5_000  # starting cap for eth_getLogs ranges
    # Blocks at the top re-queried before they count as final, even where the
    # chain is final at inclusion: load-balanced endpoints lag each other by a
    # block or two on eth_getLogs (shared/CHAINS.md, "Load-balanced endpoints").
    confirmation_blocks: int = 0


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("flare", "evm", 14, 1.8, "depth", 1, max_logs_range=30, confirmation_blocks=3),
        Preset("songbird", "evm", 19, 1.8, "depth", 1, max_logs_range=30, confirmation_blocks=3),
        Preset("coston2", "evm", 114, 1.8, "depth", 1, max_logs_range=30, confirmation_blocks=3),
        Preset("coston", "evm", 16, 1.8, "depth", 1, max_logs_range=30, confirmation_blocks=3),
        Preset("cronos", "evm", 25, 5.0, "depth", 1, max_logs_range=2_000, confirmation_blocks=3),
        Preset("cronos-testnet", "evm", 338, 5.0, "depth", 1, max_logs_range=2_000, confirmation_blocks=3),
        Preset("bsc", "evm", 56, 0.75, "tag", 15, poa_extra_data=True, max_logs_range=5_000),
        Preset("bsc-testnet", "evm", 97, 0.75, "tag", 15, poa_extra_data=True, max_logs_range=5_000),
        Preset("anvil", "evm", 31337, 1.0, "depth", 5, max_logs_range=10_000),
        Preset("xrpl", "xrpl", 0, 3.5, "validated", 0),
        Preset("xrpl-testnet", "xrpl", 1, 3.5, "validated", 0),
    )
}
