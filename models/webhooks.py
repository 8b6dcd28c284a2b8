"""Webhook endpoints, and the durable queue of their deliveries (one row per endpoint and event) with every attempt."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.api_tokens import ApiToken
    from models.events import Event
    from models.members import Member
    from models.practices import Practice


class WebhookDeliveryStatus(str, Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class WebhookEndpoint(Model):
    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="webhook_endpoints", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    # Whose access decides what is delivered (its scopes and its creator's row rules, at delivery time).
    api_token: fields.ForeignKeyRelation[ApiToken] = fields.ForeignKeyField(
        "models.ApiToken", related_name="webhook_endpoints", on_delete=fields.RESTRICT
    )
    api_token_id: uuid.UUID
    created_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="webhook_endpoints", on_delete=fields.RESTRICT
    )
    created_by_id: uuid.UUID
    url = fields.CharField(max_length=2000)
    description = fields.CharField(max_length=500, null=True)
    # A JSON list of EventType values.
    event_types: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # The whsec_ signing secret, encrypted at rest (Fernet, key derived from the JWT secret).
    secret_encrypted = fields.TextField()
    created_at = fields.DatetimeField()
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_endpoints"
        indexes = (("practice_id", "created_at"),)


class WebhookDelivery(Model):
    """One event for one endpoint: written with the event, sent after the commit, retried with back-off."""

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="webhook_deliveries", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.RESTRICT
    )
    endpoint_id: uuid.UUID
    event: fields.ForeignKeyRelation[Event] = fields.ForeignKeyField(
        "models.Event", related_name="deliveries", on_delete=fields.RESTRICT
    )
    event_id: uuid.UUID
    status = fields.CharEnumField(WebhookDeliveryStatus, max_length=16, default=WebhookDeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    last_response_status = fields.IntField(null=True)
    last_error = fields.CharField(max_length=500, null=True)
    last_attempt_at = fields.DatetimeField(null=True)
    # Not to be tried before this moment: due at creation, then a sender's claim (a lease) or the back-off.
    next_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "webhook_deliveries"
        unique_together = (("endpoint_id", "event_id"),)
        indexes = (("status", "next_attempt_at"), ("endpoint_id", "created_at"), ("event_id",))


class WebhookAttempt(Model):
    """Each try of a delivery: when, the HTTP status (null without an answer) and why it failed."""

    id = fields.UUIDField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_rows", on_delete=fields.RESTRICT
    )
    delivery_id: uuid.UUID
    attempted_at = fields.DatetimeField()
    response_status = fields.IntField(null=True)
    error = fields.CharField(max_length=500, null=True)
    duration_ms = fields.IntField(default=0)

    class Meta:
        table = "webhook_attempts"
        indexes = (("delivery_id", "attempted_at"),)
