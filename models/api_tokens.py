"""Partner API tokens: opaque, stored only as a hash, acting as their creator narrowed to scopes."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.members import Member
    from models.practices import Practice


class ApiToken(Model):
    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="api_tokens", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    created_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="api_tokens", on_delete=fields.RESTRICT
    )
    created_by_id: uuid.UUID
    name = fields.CharField(max_length=200)
    token_hash = fields.CharField(max_length=64, unique=True)
    # A JSON list of TokenScope values.
    scopes: fields.JSONField[list[str]] = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_tokens"
        indexes = (("practice_id", "created_at"),)
