"""Invitations: how a group grows."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import Invitation as InvitationRow
from models.enums import Permission as P
from models.invitations import InvitationStatus as InvitationStatusEnum
from resolvers import idempotency, ids, invitations
from schema.base import Node, PageInfo, Permission, Role, TraineeStatus, connection
from schema.directives import guard
from schema.node import node_type
from schema.plans import Plan

if TYPE_CHECKING:
    from schema.members import Member
    from schema.sessions import AuthPayload

InvitationStatus = InvitationStatusEnum
strawberry.enum(InvitationStatus)

MemberType = Annotated["Member", strawberry.lazy("schema.members")]
AuthPayloadType = Annotated["AuthPayload", strawberry.lazy("schema.sessions")]


@strawberry.type
class Invitation(Node):
    email: str
    role: Role
    plan: Plan | None
    trainee_status: TraineeStatus
    training_proof_valid_until: date | None
    permissions: list[Permission]
    created_at: datetime
    expires_at: datetime
    row: strawberry.Private[InvitationRow]

    @classmethod
    def of(cls, row: InvitationRow) -> Invitation:
        return cls(
            id=strawberry.ID(ids.encode("Invitation", row.id)),
            email=row.email,
            role=row.role,
            plan=Plan.of_code(row.plan_code),
            trainee_status=row.trainee_status,
            training_proof_valid_until=row.training_proof_valid_until,
            permissions=sorted((P(p) for p in row.permissions), key=list(P).index),
            created_at=row.created_at,
            expires_at=row.expires_at,
            row=row,
        )

    @strawberry.field
    def status(self, info: Info) -> InvitationStatus:
        return invitations.status_of(self.row, info.context.clock.now())

    @strawberry.field
    async def invited_by(self, info: Info) -> MemberType:
        from schema.members import Member

        return await Member.named(info, self.row.invited_by_id)


@strawberry.type
class InvitationEdge:
    node: Invitation
    cursor: str


@strawberry.type
class InvitationConnection:
    edges: list[InvitationEdge]
    page_info: PageInfo
    total_count: int


@node_type("Invitation", permission=P.MANAGE_MEMBERS)
async def _invitation_node(info: Info, pk: uuid.UUID) -> Invitation | None:
    row = await invitations.get_invitation(info.context, pk)
    return Invitation.of(row) if row else None


@strawberry.type
class PracticeInvitationsFields:
    """Mixed into Practice: ``invitations``."""

    @strawberry.field(extensions=guard(permission=P.MANAGE_MEMBERS))
    async def invitations(
        self, info: Info, status: InvitationStatus | None = None, first: int | None = None, after: str | None = None
    ) -> InvitationConnection | None:
        page = await invitations.list_invitations(info.context, status=status, first=first, after=after)
        return connection(InvitationConnection, InvitationEdge, page, Invitation.of)


# ------------------------------------------------------------------ mutations


@strawberry.input
class InviteMemberInput:
    email: str
    role: Role = strawberry.field(description="CLINICIAN or ADMINISTRATOR; OWNER is refused.")
    plan_code: str | None = strawberry.field(
        default=None, description="Required for clinicians; refused for administrators."
    )
    trainee_status: TraineeStatus | None = TraineeStatus.NONE
    training_proof_valid_until: date | None = None
    permissions: list[Permission] | None = strawberry.field(
        default=None, description="Only the owner may grant permissions with an invitation."
    )
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.type
class InviteMemberPayload:
    invitation: Invitation
    token: str = strawberry.field(description="Shown once: the invitee accepts with it (it is also sent by email).")

    @classmethod
    def of(cls, issued: invitations.Issued) -> InviteMemberPayload:
        return cls(invitation=Invitation.of(issued.invitation), token=issued.token)


@strawberry.input
class InvitationInput:
    invitation_id: strawberry.ID


@strawberry.type
class RevokeInvitationPayload:
    invitation: Invitation


@strawberry.input
class AcceptInvitationInput:
    token: str
    name: str
    password: str


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=guard(permission=P.MANAGE_MEMBERS, mutation=True))
    async def invite_member(self, info: Info, input: InviteMemberInput) -> InviteMemberPayload | None:
        issued = await idempotency.once(
            info.context,
            "inviteMember",
            input,
            idempotency.ISSUED,
            lambda: invitations.invite(
                info.context,
                email=input.email,
                role=input.role,
                plan_code=input.plan_code,
                trainee_status=input.trainee_status,
                training_proof_valid_until=input.training_proof_valid_until,
                permissions=input.permissions,
            ),
        )
        return InviteMemberPayload.of(issued)

    @strawberry.mutation(
        description="Issues a new token and expiry; the old token stops working.",
        extensions=guard(permission=P.MANAGE_MEMBERS, mutation=True),
    )
    async def resend_invitation(self, info: Info, input: InvitationInput) -> InviteMemberPayload | None:
        return InviteMemberPayload.of(await invitations.resend(info.context, input.invitation_id))

    @strawberry.mutation(extensions=guard(permission=P.MANAGE_MEMBERS, mutation=True))
    async def revoke_invitation(self, info: Info, input: InvitationInput) -> RevokeInvitationPayload | None:
        return RevokeInvitationPayload(
            invitation=Invitation.of(await invitations.revoke(info.context, input.invitation_id))
        )

    @strawberry.mutation(
        description="Creates the invitee's account in the inviting practice; bills a pro-rated seat where one is due.",
        extensions=guard(mutation=True),
    )
    async def accept_invitation(self, info: Info, input: AcceptInvitationInput) -> AuthPayloadType | None:
        from schema.sessions import AuthPayload

        signed_in = await invitations.accept(info.context, token=input.token, name=input.name, password=input.password)
        return AuthPayload.of(info, signed_in)
