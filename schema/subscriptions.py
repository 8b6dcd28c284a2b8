"""The practice's subscription: licenses, trial, periods, seat quotes and charges."""

from __future__ import annotations

import strawberry


@strawberry.type
class PracticeSubscriptionFields:
    """Mixed into Practice: ``subscription``."""


@strawberry.type
class MemberLicenseFields:
    """Mixed into Member: ``license``."""
