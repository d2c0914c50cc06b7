"""Logs checked against their headers before they are accepted.

A load balancer may answer eth_getLogs for the newest block from a backend
that lacks it: an empty list and no error. Each block whose header we hold
is checked against its `logsBloom`:
- a returned log whose address or topics are not in the bloom is a lie and
  the whole answer is refused (`InconsistentRange`: the caller re-fetches);
- a bloom that may hold a log of our filter while none came back is asked
  again, of each endpoint alone, then by receipts (a different code path on
  the node). Only when all of them agree there is nothing is it taken as a
  bloom false positive.
Every log must also carry the hash of the header it is checked against.
"""

from __future__ import annotations

from collections import defaultdict

from config.logs import get_logger
from indexer import metrics as m
from indexer.errors import BadRpcResponse, RpcError
from indexer.evm.bloom import log_in_bloom, may_match
from indexer.evm.fetch import LogFilter, check_logs_in_range, get_logs, logs_from_receipts
from indexer.evm.rpc import EvmRpc
from indexer.models import BlockRow

log = get_logger("indexer.evm.verify")


class InconsistentRange(Exception):
    """Answers for one range contradict each other (the node moved, or lies)."""


async def verify_logs(rpc: EvmRpc, flt: LogFilter, headers: list[BlockRow], logs: list[dict]) -> list[dict]:
    """`logs` with every block of `headers` checked against its bloom and hash.

    Blocks without a header here are not checked (the caller checks them
    another way); when a re-query found logs, the returned list is sorted by
    (block, log index), else it is `logs` itself.
    """
    by_block: dict[int, list[dict]] = defaultdict(list)
    wanted = {h.number for h in headers}
    numbers: dict[str, int] = {}  # a block's logs share its number: parse it once
    for lg in logs:
        raw = lg["blockNumber"]
        n = numbers.get(raw)
        if n is None:
            n = numbers[raw] = int(raw, 16)
        if n in wanted:
            by_block[n].append(lg)
    found_any = False
    for h in headers:
        got = by_block.get(h.number, [])
        for lg in got:
            if str(lg.get("blockHash", "")).lower() != h.hash:
                raise InconsistentRange(
                    f"{rpc.chain}: log of block {h.number} has hash {str(lg.get('blockHash'))[:10]}, header {h.hash[:10]}")
            if h.bloom is not None and not log_in_bloom(h.bloom, lg):
                m.BLOOM_LIES.labels(rpc.chain).inc()
                raise InconsistentRange(f"{rpc.chain}: a log of block {h.number} is not in its header's logsBloom")
        if not got and h.bloom is not None and may_match(h.bloom, flt.addresses, flt.topic0s):
            m.GETLOGS_REQUERIES.labels(rpc.chain, "bloom").inc()
            found = await requery_block(rpc, flt, h)
            if found:
                m.LATE_LOGS.labels(rpc.chain, "bloom").inc(len(found))
                log.warning("follower.bloom_requery_found", chain=rpc.chain, block=h.number, logs=len(found))
                by_block[h.number] = found
                found_any = True
    if not found_any:
        return logs
    recovered = {n for n, got in by_block.items()}
    out = [lg for lg in logs if int(lg["blockNumber"], 16) not in recovered] + [
        lg for got in by_block.values() for lg in got]
    out.sort(key=lambda lg: (int(lg["blockNumber"], 16), int(lg.get("logIndex", "0x0"), 16)))
    return out


def _of_block(logs: list[dict], h: BlockRow) -> list[dict]:
    """The logs that belong to this very block and are in its bloom."""
    return [lg for lg in logs if str(lg.get("blockHash", "")).lower() == h.hash
            and (h.bloom is None or log_in_bloom(h.bloom, lg))]


async def requery_block(rpc: EvmRpc, flt: LogFilter, h: BlockRow) -> list[dict]:
    """One block's logs asked of each endpoint alone, then read from its receipts."""
    for ep in rpc.endpoints:
        try:
            raw = await get_logs(rpc, flt, h.number, h.number, ep)
            got = _of_block(check_logs_in_range(raw, h.number, h.number), h)
        except (RpcError, BadRpcResponse):
            continue
        if got:
            return got
    try:
        return _of_block(await logs_from_receipts(rpc, flt, h.number), h)
    except (RpcError, BadRpcResponse) as exc:
        # The bloom says there may be logs and nobody could show them: do not
        # accept "none" on that; the caller retries the range.
        raise InconsistentRange(f"{rpc.chain}: block {h.number} bloom matches, receipts unreadable: {exc}") from None
