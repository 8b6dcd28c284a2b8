"""The append-only, hash-chained audit log."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.api_tokens import ApiToken
    from models.members import Member
    from models.practices import Practice


class AuditEvent(Model):
    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyNullableRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="audit_events", on_delete=fields.RESTRICT, null=True
    )
    practice_id: uuid.UUID | None
    # Position of the event in its practice's chain (1, 2, 3, ...).
    sequence = fields.BigIntField()
    actor: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="audit_events", on_delete=fields.RESTRICT, null=True
    )
    actor_id: uuid.UUID | None
    api_token: fields.ForeignKeyNullableRelation[ApiToken] = fields.ForeignKeyField(
        "models.ApiToken", related_name="audit_events", on_delete=fields.RESTRICT, null=True
    )
    api_token_id: uuid.UUID | None
    action = fields.CharField(max_length=80)
    target_id = fields.CharField(max_length=200, null=True)
    request_id = fields.CharField(max_length=64, null=True)
    details: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()
    previous_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_events"
        unique_together = (("practice_id", "sequence"),)
        indexes = (("practice_id", "action"), ("practice_id", "target_id"), ("practice_id", "actor_id"))


class AuditHead(Model):
    """The end of one practice's chain (sequence and hash of its newest event).

    Appends lock this row, and only this row: serialising a practice's appends on the practice row itself would
    deadlock with writers that lock the practice first and their own rows after. It also lets ``audit verify``
    notice the newest events cut off the end of a chain. Events without a practice use the nil UUID.
    """

    practice_id = fields.UUIDField(primary_key=True)
    sequence = fields.BigIntField(default=0)
    hash = fields.CharField(max_length=64)

    class Meta:
        table = "audit_heads"
