"""Registry of subcommands added by later capabilities.

Each entry is `register(subparsers)`; keeping them out of cli.py lets the
ledger, payout, API and demo commands live next to their own code.
"""

from __future__ import annotations

from collections.abc import Callable

REGISTER: list[Callable] = []
