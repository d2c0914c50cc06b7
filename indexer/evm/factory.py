"""Contracts created at run time: the children of configured factories.

A `[[chains.contracts]]` entry with `factory = {event, parameter, child_abi}`
announces children through one of its events. What this module keeps:
- the factories (address, announcing event, child decoders shared by all
  its children: one set of EventSpecs, however many children);
- the committed children (`factory_children`), which the follower's log
  filter includes, reloaded from the database at start, after a rollback
  and after a failed range (a standby taking over loads them the same way);
- `discover`: the children a range's logs announce (pure).

Why the follower asks twice for a range that creates children: its
eth_getLogs was sent before the children were known, so it lacks their logs
of that range, including those of the creating block (a child's constructor
emits before the factory announces it). The follower asks for the new
children's logs of [creation block, range end] before it commits, and the
children, their events and the cursor commit in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from config import ChainConfig, load_abi
from indexer import metrics as m
from indexer.evm.decode import EventSpec, LogDecoder
from indexer.evm.fetch import LogFilter, fetch_exact, merge_logs
from indexer.evm.rpc import EvmRpc
from indexer.evm.verify import verify_logs
from indexer.models import BlockRow, ChildRow
from indexer.ranges import RangeSizer


@dataclass(frozen=True)
class FactorySpec:
    name: str
    address: str
    announce: EventSpec
    parameter: str
    child_specs: dict[str, EventSpec]  # topic0 -> spec, shared by every child


class Factories:
    def __init__(self, cfg: ChainConfig, decoder: LogDecoder, base_dir: Path | None = None) -> None:
        self.decoder = decoder
        self.configured = frozenset(c.address for c in cfg.contracts)
        self.by_address: dict[str, FactorySpec] = {}
        for c in cfg.contracts:
            f = c.factory
            if f is None:
                continue
            announce = next(EventSpec.from_abi(e) for e in load_abi(c.abi, base_dir)
                            if e.get("type") == "event" and e.get("name") == f.event and not e.get("anonymous"))
            wanted = set(f.child_events) if f.child_events is not None else None
            specs = {}
            for item in load_abi(f.child_abi, base_dir):
                if item.get("type") == "event" and not item.get("anonymous") and (wanted is None or item["name"] in wanted):
                    spec = EventSpec.from_abi(item)
                    specs[spec.topic0] = spec
            # The announcing event is stored like any event of the factory (the
            # config makes it one of the contract's events).
            self.by_address[c.address] = FactorySpec(c.name, c.address, announce, f.parameter, specs)
        self.children: dict[str, str] = {}  # committed: address -> factory address
        self._aliased: set[str] = set()  # in the decoder: committed, or found in a range not yet committed

    def __bool__(self) -> bool:
        return bool(self.by_address)

    @property
    def child_topic0s(self) -> list[str]:
        return sorted({t for f in self.by_address.values() for t in f.child_specs})

    def reset(self, rows: Iterable[tuple[str, str]]) -> None:
        """The committed children are exactly `rows` (address, factory address)."""
        for address in self._aliased:
            self.decoder.remove(address)
        self._aliased.clear()
        self.children = {}
        self.add(rows)

    def add(self, rows: Iterable[tuple[str, str]]) -> None:
        for address, factory in rows:
            self.alias(address, factory)
            self.children[address] = factory

    def alias(self, address: str, factory: str) -> None:
        """Decode `address`'s logs with its factory's child ABI."""
        if address not in self.configured and factory in self.by_address:
            self.decoder.alias(address, self.by_address[factory].child_specs)
            self._aliased.add(address)

    def discover(self, logs: Sequence, known: set[str] | dict[str, str]) -> list[ChildRow]:
        """Children the factories' logs announce that are not in `known`, first announcement each.

        Pure; a log that does not decode is left to the decoder (it keeps
        it raw and counts it), so a broken announcement announces nothing.
        """
        out: list[ChildRow] = []
        seen: set[str] = set()
        factories = self.by_address
        for lg in logs:
            f = factories.get(str(lg["address"]).lower())
            topics = lg["topics"]
            if f is None or not topics or topics[0].lower() != f.announce.topic0:
                continue
            try:
                args = f.announce.decode([t.lower() for t in topics], str(lg["data"]).lower())
            except Exception:  # noqa: BLE001 - kept raw and counted by the decoder
                continue
            child = str(args.get(f.parameter, "")).lower()
            if len(child) != 42 or child in known or child in seen or child in factories:
                continue
            seen.add(child)
            out.append(ChildRow(child, f.name, f.address, int(lg["blockNumber"], 16), str(lg["blockHash"]).lower(),
                                str(lg["transactionHash"]).lower(), int(lg["transactionIndex"], 16),
                                int(lg["logIndex"], 16)))
        return out

    async def complete(self, rpc: EvmRpc, sizer: RangeSizer, filter_of: Callable[[Iterable[str]], LogFilter],
                       a: int, end: int, logs: list, fetched: LogFilter, known: set[str],
                       upto: int | None = None, headers: Sequence[BlockRow] = ()
                       ) -> tuple[list, list[ChildRow], LogFilter]:
        """`logs` of [a, end] completed with the logs of every child; returns (logs, new children, filter).

        `known` is what the caller knows at this range (configured addresses,
        committed children, children of ranges fetched but not yet committed)
        and grows by the children this range announces. `fetched` may lack
        some of them (it was sent before they were known): their logs of the
        range are asked now, and those of a new child from the block that
        created it. The returned filter covers every address of the range,
        for the bloom checks. `upto` (re-queries and replays below the
        cursor) extends a new child's logs to the cursor: the blocks between
        were indexed before it was known. New children are decoded from here
        on; they count as committed only once the caller's commit succeeds.
        Each extra answer is checked against `headers` with its own filter.
        """
        parts = [logs]
        missing = known.difference(fetched.addresses)
        if missing:
            flt = filter_of(missing)
            parts.append(await verify_logs(rpc, flt, headers, await fetch_exact(rpc, flt, a, end, sizer)))
        children = self.discover(logs, known)
        if children:
            born = {}
            for c in children:
                self.alias(c.address, c.factory_address)
                known.add(c.address)
                born[c.address] = c.block_number
            flt = filter_of(born)
            got = await fetch_exact(rpc, flt, min(born.values()), max(end, upto or end), sizer)
            got = await verify_logs(rpc, flt, [h for h in headers if h.number >= min(born.values())], got)
            parts.append([lg for lg in got if int(lg["blockNumber"], 16) >= born[str(lg["address"]).lower()]])
            m.FACTORY_CHILDREN_FOUND.labels(rpc.chain).inc(len(children))
        if len(parts) > 1:
            logs = merge_logs(*parts)
        flt = fetched if len(known) == len(fetched.addresses) else filter_of(known)
        return logs, children, flt
