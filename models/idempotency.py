"""Idempotency keys: what a mutation sent with ``idempotencyKey`` answered, so a retry answers it again."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.practices import Practice


class IdempotencyStatus(str, Enum):
    RUNNING = "RUNNING"
    DONE = "DONE"


class IdempotencyKey(Model):
    """One key of one caller in one practice, written in the same transaction as the mutation it guards.

    The unique (practice, caller, key) decides races: a second request with the key waits on the first one's row
    and, once that commits, reads its result. A refused mutation rolls back and leaves no row. Rows older than
    24 hours are purged by ``groups-api maintenance purge``.
    """

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="idempotency_keys", on_delete=fields.CASCADE
    )
    practice_id: uuid.UUID
    # "member:<uuid>" for a session, "token:<uuid>" for a partner API token.
    caller = fields.CharField(max_length=64)
    # SHA-256 of the client's key (hex): a fixed width, and no client text at rest.
    key_hash = fields.CharField(max_length=64)
    mutation = fields.CharField(max_length=64)
    # SHA-256 of the canonical input without the key.
    input_hash = fields.CharField(max_length=64)
    status = fields.CharEnumField(IdempotencyStatus, max_length=16, default=IdempotencyStatus.RUNNING)
    # What the answer is rebuilt from: the ids of its objects and the values that are no object (a balance).
    result: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_keys"
        unique_together = (("practice_id", "caller", "key_hash"),)
        indexes = (("created_at",),)
