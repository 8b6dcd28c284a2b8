"""Practices: the tenant. Every other row belongs to exactly one practice."""

from tortoise import fields
from tortoise.models import Model

from models.enums import PracticeKind


class Practice(Model):
    id = fields.UUIDField(primary_key=True)
    name = fields.CharField(max_length=200)
    slug = fields.CharField(max_length=80, unique=True)
    kind = fields.CharEnumField(PracticeKind, max_length=16, default=PracticeKind.SOLO)
    # The one lifetime free trial (null only for practices created without one).
    trial_started_at = fields.DatetimeField(null=True)
    trial_ends_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "practices"
