"""Registry of subcommands added by later capabilities.

Each entry is `register(subparsers)`; keeping them out of cli.py lets the
ledger, payout, API and demo commands live in modules of their own.
"""

from __future__ import annotations

from collections.abc import Callable

from .cli_api import register as _api
from .cli_deliveries import register as _deliveries
from .cli_demo import register as _demo
from .cli_distributions import register as _distributions
from .cli_intents import register as _intents
from .cli_invoices import register as _invoices
from .cli_ledger import register as _ledger
from .cli_payouts import register as _payouts

REGISTER: list[Callable] = [_demo, _ledger, _api, _payouts, _invoices, _deliveries, _intents, _distributions]
