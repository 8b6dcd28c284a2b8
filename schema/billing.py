"""Patient billing: the group ledger, statements and invoices."""

from __future__ import annotations

import strawberry


@strawberry.type
class PracticeBillingFields:
    """Mixed into Practice: ``billing``."""
