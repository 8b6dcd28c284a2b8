"""Accounts: password-reset tokens. The one-time token is stored only as its SHA-256 hash."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.members import Member
    from models.practices import Practice


class PasswordReset(Model):
    """A password-reset token mailed to a member: it works once, until ``expires_at``, unless revoked first (a newer
    reset mailed, another reset used, the password changed)."""

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="password_resets", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="password_resets", on_delete=fields.CASCADE
    )
    member_id: uuid.UUID
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "password_resets"
        indexes = (("member_id", "used_at", "revoked_at"),)
