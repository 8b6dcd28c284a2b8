"""Invitations: how a group grows."""

from __future__ import annotations

import strawberry


@strawberry.type
class PracticeInvitationsFields:
    """Mixed into Practice: ``invitations``."""
