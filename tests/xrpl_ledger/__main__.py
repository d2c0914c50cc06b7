"""`python -m tests.xrpl_ledger --port P`: serve a fresh test ledger until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from . import GENESIS_ADDRESS, TestLedger
from .rpc import LedgerNode
from .server import LedgerServer


async def serve(args: argparse.Namespace) -> None:
    ledger = TestLedger(network_id=args.network_id)
    server = LedgerServer(LedgerNode(ledger, account_tx_max_limit=args.account_tx_max_limit), host=args.host,
                          port=args.port, close_interval=args.close_interval or None)
    await server.start()
    print(f"test ledger on {server.ws_url} (JSON-RPC: POST {server.http_url}); genesis {GENESIS_ADDRESS}; "
          f"network id {args.network_id}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.xrpl_ledger", description=__doc__)
    p.add_argument("--port", type=int, default=6006)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--close-interval", type=float, default=1.0,
                   help="seconds between ledger closes (0: only on ledger_accept)")
    p.add_argument("--network-id", type=int, default=0)
    p.add_argument("--account-tx-max-limit", type=int, default=400, help="largest account_tx page this server returns")
    asyncio.run(serve(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
