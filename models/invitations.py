"""Invitations: how a group grows. The one-time token is stored only as its SHA-256 hash."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.enums import Role, TraineeStatus

if TYPE_CHECKING:
    from models.members import Member
    from models.practices import Practice


class InvitationStatus(str, Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"
    # Never stored: a PENDING invitation whose expires_at has passed reads as EXPIRED.
    EXPIRED = "EXPIRED"


class Invitation(Model):
    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="invitations", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    # Stored trimmed and lower-cased, like Member.email.
    email = fields.CharField(max_length=320)
    role = fields.CharEnumField(Role, max_length=16)
    plan_code = fields.CharField(max_length=64, null=True)
    trainee_status = fields.CharEnumField(TraineeStatus, max_length=32, default=TraineeStatus.NONE)
    training_proof_valid_until = fields.DateField(null=True)
    # Explicit grants the member will hold, a JSON list of Permission values (only the owner may set any).
    permissions: fields.JSONField[list[str]] = fields.JSONField(default=list)
    status = fields.CharEnumField(InvitationStatus, max_length=16, default=InvitationStatus.PENDING)
    # SHA-256 of the current token; replaced on resend, so an old token stops matching.
    token_hash = fields.CharField(max_length=64, unique=True)
    invited_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="invitations_sent", on_delete=fields.RESTRICT
    )
    invited_by_id: uuid.UUID
    # The account the invitation created (an invitation never reactivates one: see reactivateMember).
    member: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="accepted_invitations", on_delete=fields.RESTRICT, null=True
    )
    member_id: uuid.UUID | None
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invitations"
        indexes = (("practice_id", "status", "email"), ("practice_id", "created_at"))
