"""The practice's own subscription: monthly periods, what each seat is paid at in a period, and the charges."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.members import Member
    from models.practices import Practice


class SubscriptionChargeKind(str, Enum):
    PRORATED_SEAT = "PRORATED_SEAT"
    RENEWAL = "RENEWAL"


class Subscription(Model):
    """Exists from the first paid period on (the trial needs no row: it lives on Practice).

    Periods are monthly from ``anchor`` (period n starts at anchor + n months). ``current_period_*`` mirror the
    latest opened SubscriptionPeriod so the billing run finds the ended ones with one indexed query.
    """

    id = fields.UUIDField(primary_key=True)
    practice: fields.OneToOneRelation[Practice] = fields.OneToOneField(
        "models.Practice", related_name="subscription", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    anchor = fields.DatetimeField()
    current_period_index = fields.IntField()
    current_period_start = fields.DatetimeField()
    current_period_end = fields.DatetimeField(db_index=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "subscriptions"


class SubscriptionPeriod(Model):
    """One opened billing period. Unique per (practice, index): a period, and so its renewal, exists once."""

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="subscription_periods", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    index = fields.IntField()
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "subscription_periods"
        unique_together = (("practice_id", "index"),)


class PeriodSeat(Model):
    """What a member's license is paid at for one period: set by the renewal, raised by pro-rated charges, never
    lowered (a cheaper seat takes effect at the next period, with no refund)."""

    id = fields.UUIDField(primary_key=True)
    period: fields.ForeignKeyRelation[SubscriptionPeriod] = fields.ForeignKeyField(
        "models.SubscriptionPeriod", related_name="seats", on_delete=fields.RESTRICT
    )
    period_id: uuid.UUID
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="period_seats", on_delete=fields.RESTRICT
    )
    member_id: uuid.UUID
    # Exact monthly price (a half price can have a third decimal); rounding happens only on charges.
    monthly_price = fields.DecimalField(max_digits=14, decimal_places=4)

    class Meta:
        table = "period_seats"
        unique_together = (("period_id", "member_id"),)


class SubscriptionCharge(Model):
    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="subscription_charges", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    period: fields.ForeignKeyRelation[SubscriptionPeriod] = fields.ForeignKeyField(
        "models.SubscriptionPeriod", related_name="charges", on_delete=fields.RESTRICT
    )
    period_id: uuid.UUID
    # The seat a PRORATED_SEAT charge is for; null for a RENEWAL, which covers every license.
    member: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="subscription_charges", on_delete=fields.RESTRICT, null=True
    )
    member_id: uuid.UUID | None
    kind = fields.CharEnumField(SubscriptionChargeKind, max_length=16)
    # Rounded half-up to the cent when the charge is made.
    amount = fields.DecimalField(max_digits=12, decimal_places=2)
    currency = fields.CharField(max_length=3)
    description = fields.CharField(max_length=300)
    created_at = fields.DatetimeField()

    class Meta:
        table = "subscription_charges"
        indexes = (("practice_id", "created_at"),)


class SubscriptionStatus(str, Enum):
    """Not stored: derived from the trial and the periods. PAST_DUE is for a payment processor to report a failed
    payment; with card processing out of scope nothing sets it yet."""

    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAST_DUE = "PAST_DUE"
