"""Partner API tokens: opaque, stored only as a hash, acting as their creator narrowed to scopes."""

from tortoise import fields
from tortoise.models import Model


class ApiToken(Model):
    id = fields.UUIDField(primary_key=True)
    practice = fields.ForeignKeyField("models.Practice", related_name="api_tokens", on_delete=fields.RESTRICT)
    created_by = fields.ForeignKeyField("models.Member", related_name="api_tokens", on_delete=fields.RESTRICT)
    name = fields.CharField(max_length=200)
    token_hash = fields.CharField(max_length=64, unique=True)
    # A JSON list of TokenScope values.
    scopes = fields.JSONField(default=list)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_tokens"
        indexes = (("practice_id", "created_at"),)
