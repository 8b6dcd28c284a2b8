"""Members (accounts: one practice each) and their sessions."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.enums import MemberStatus, Role, TraineeStatus

if TYPE_CHECKING:
    from models.practices import Practice


class Member(Model):
    id = fields.UUIDField(primary_key=True)
    # RESTRICT: a practice with members cannot be deleted by accident; nothing cascades into PHI.
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="members", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    name = fields.CharField(max_length=200)
    # Stored trimmed and lower-cased; unique within a practice.
    email = fields.CharField(max_length=320)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16)
    status = fields.CharEnumField(MemberStatus, max_length=16, default=MemberStatus.ACTIVE)
    # Explicit grants, a JSON list of Permission values (empty for the owner, who holds them all).
    permissions: fields.JSONField[list[str]] = fields.JSONField(default=list)
    plan_code = fields.CharField(max_length=64, null=True)
    trainee_status = fields.CharEnumField(TraineeStatus, max_length=32, default=TraineeStatus.NONE)
    training_proof_valid_until = fields.DateField(null=True)
    created_at = fields.DatetimeField()
    deactivated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "members"
        unique_together = (("practice_id", "email"),)
        indexes = (("practice_id", "role", "status"),)


class Session(Model):
    """A signed-in session. The refresh token is stored only as a hash and rotated on every use."""

    id = fields.UUIDField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="sessions", on_delete=fields.CASCADE
    )
    member_id: uuid.UUID
    refresh_token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    last_refreshed_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sessions"


class RotatedRefreshToken(Model):
    """A refresh token that is no longer its session's newest (``Session.refresh_token_hash``).

    Normally it was exchanged at ``rotated_at``: presented again within resolvers/sessions.REUSE_GRACE it answers a
    fresh pair for the same session (two tabs refreshing at once, a retry after a lost answer); later it means theft
    and kills the session. ``unused``: replaced as the newest by such a grace refresh before its holder exchanged it;
    it is still good for one exchange (its holder is the other tab)."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    session: fields.ForeignKeyRelation[Session] = fields.ForeignKeyField(
        "models.Session", related_name="rotated", on_delete=fields.CASCADE
    )
    session_id: uuid.UUID
    rotated_at = fields.DatetimeField()
    unused = fields.BooleanField(default=False)

    class Meta:
        table = "rotated_refresh_tokens"
