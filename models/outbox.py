"""Outgoing mail, written in the same transaction as the change that causes it and delivered afterwards."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.practices import Practice


class OutboxStatus(str, Enum):
    PENDING = "PENDING"
    SENT = "SENT"
    FAILED = "FAILED"


class OutboxMessage(Model):
    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyNullableRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="outbox_messages", on_delete=fields.RESTRICT, null=True
    )
    practice_id: uuid.UUID | None
    recipient = fields.CharField(max_length=320)
    subject = fields.CharField(max_length=300)
    # The body, encrypted at rest (it can carry a one-time token); emptied once the message is sent.
    body_encrypted = fields.TextField()
    status = fields.CharEnumField(OutboxStatus, max_length=16, default=OutboxStatus.PENDING)
    attempts = fields.IntField(default=0)
    last_error = fields.CharField(max_length=500, null=True)
    # Not to be tried before this moment: a sender's claim (a lease) or the back-off after a failure.
    next_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_messages"
        indexes = (("status", "created_at"),)
