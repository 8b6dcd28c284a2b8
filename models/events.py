"""The practice's event feed: one thin row per change a partner may follow (no patient data: type, subject, time)."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.practices import Practice


class EventType(str, Enum):
    BILLING_ENTRY_RECORDED = "BILLING_ENTRY_RECORDED"
    STATEMENT_GENERATED = "STATEMENT_GENERATED"
    INVOICE_CREATED = "INVOICE_CREATED"
    INVOICE_PAID = "INVOICE_PAID"
    INVOICE_VOIDED = "INVOICE_VOIDED"
    CHART_CREATED = "CHART_CREATED"
    CHART_UPDATED = "CHART_UPDATED"
    CHART_ASSIGNMENT_CHANGED = "CHART_ASSIGNMENT_CHANGED"
    MEMBER_JOINED = "MEMBER_JOINED"
    MEMBER_UPDATED = "MEMBER_UPDATED"
    MEMBER_DEACTIVATED = "MEMBER_DEACTIVATED"
    MEMBER_REACTIVATED = "MEMBER_REACTIVATED"


class Event(Model):
    """Written in the transaction of the change, from the audit write path (resolvers/events.py).

    ``sequence`` is the position in the practice's audit chain of the audit event that caused it, taken while the
    chain head is locked, so a practice's events commit in (sequence, position) order: the feed's cursor.
    ``position`` tells apart the events one audit event causes (a payment that also pays its invoice).
    """

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="events", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    sequence = fields.BigIntField()
    position = fields.SmallIntField(default=0)
    type = fields.CharEnumField(EventType, max_length=40)
    # The subject's global id type (Chart, Member, BillingEntry, Statement, Invoice) and uuid.
    subject_type = fields.CharField(max_length=32)
    subject_id = fields.UUIDField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "events"
        unique_together = (("practice_id", "sequence", "position"),)
        indexes = (("practice_id", "type", "sequence"), ("created_at",))
