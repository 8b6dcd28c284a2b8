"""The audit log."""

from __future__ import annotations

import strawberry


@strawberry.type
class PracticeAuditFields:
    """Mixed into Practice: ``auditLog``."""
