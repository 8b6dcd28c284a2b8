"""Invitations: how a group grows. The one-time token is stored only as its SHA-256 hash."""

from enum import Enum

from tortoise import fields
from tortoise.models import Model

from models.enums import Role, TraineeStatus


class InvitationStatus(str, Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"
    # Never stored: a PENDING invitation whose expires_at has passed reads as EXPIRED.
    EXPIRED = "EXPIRED"


class Invitation(Model):
    id = fields.UUIDField(primary_key=True)
    practice = fields.ForeignKeyField("models.Practice", related_name="invitations", on_delete=fields.RESTRICT)
    # Stored trimmed and lower-cased, like Member.email.
    email = fields.CharField(max_length=320)
    role = fields.CharEnumField(Role, max_length=16)
    plan_code = fields.CharField(max_length=64, null=True)
    trainee_status = fields.CharEnumField(TraineeStatus, max_length=32, default=TraineeStatus.NONE)
    training_proof_valid_until = fields.DateField(null=True)
    # Explicit grants the member will hold, a JSON list of Permission values (only the owner may set any).
    permissions = fields.JSONField(default=list)
    status = fields.CharEnumField(InvitationStatus, max_length=16, default=InvitationStatus.PENDING)
    # SHA-256 of the current token; replaced on resend, so an old token stops matching.
    token_hash = fields.CharField(max_length=64, unique=True)
    invited_by = fields.ForeignKeyField("models.Member", related_name="invitations_sent", on_delete=fields.RESTRICT)
    # The account the invitation created or reactivated.
    member = fields.ForeignKeyField("models.Member", related_name="accepted_invitations", on_delete=fields.RESTRICT, null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invitations"
        indexes = (("practice_id", "status", "email"), ("practice_id", "created_at"))
