"""Section models that belong to later capabilities, each in its own module."""

from .section_api import ApiSettings
from .section_deliveries import DeliveryConfig, DeliverySettings
from .section_invoices import InvoiceSettings, SigninSettings
from .section_ledger import LedgerSettings, ReconcileSettings
from .section_payouts import PayoutSettings

__all__ = [
    "ApiSettings",
    "DeliveryConfig",
    "DeliverySettings",
    "InvoiceSettings",
    "LedgerSettings",
    "PayoutSettings",
    "ReconcileSettings",
    "SigninSettings",
]
