"""Members: the type (public and private fields), the member list, and the member mutations."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import strawberry
from strawberry.types import Info

from auth.viewer import Viewer, effective_permissions
from models import Member as MemberRow
from models.enums import Permission as P
from models.enums import Role as R
from models.enums import TokenScope as S
from resolvers import ids, member_flows, members
from schema.base import MemberStatus, Node, PageInfo, Permission, Role, TraineeStatus, connection
from schema.charts import MemberChartsFields
from schema.directives import guard
from schema.node import node_type
from schema.plans import Plan
from schema.subscriptions import MemberLicenseFields, SubscriptionCharge


@strawberry.type(
    description=(
        "A member of one practice. Everyone in the practice sees id, name, role and status. The fields about\n"
        "access and money (email, permissions, plan, trainee fields, license) are shown to the member themself\n"
        "and to holders of MANAGE_MEMBERS (plan, trainee fields and license also to MANAGE_SUBSCRIPTION); to\n"
        "anyone else they are null, without an error."
    )
)
class Member(Node, MemberChartsFields, MemberLicenseFields):
    name: str
    role: Role
    status: MemberStatus
    created_at: datetime
    row: strawberry.Private[MemberRow]
    shown_to: strawberry.Private[Viewer | None] = None

    @classmethod
    def of(cls, row: MemberRow, *, shown_to: Viewer | None = None) -> Member:
        return cls(
            id=strawberry.ID(ids.encode("Member", row.id)),
            name=row.name,
            role=row.role,
            status=row.status,
            created_at=row.created_at,
            row=row,
            shown_to=shown_to,
        )

    @classmethod
    async def named(cls, info: Info, member_id: uuid.UUID) -> Member:
        """The member a row of the viewer's practice names (its author, creator or inviter)."""
        row = await members.get_member(info.context, member_id)
        if row is None:
            raise LookupError("the member this row names is not in the viewer's practice")
        return cls.of(row)

    def seen_by(self, info: Info) -> Viewer | None:
        """Whom the private fields' row rules are applied for: the request's viewer, or, in the payload of a
        credential mutation, the member it signed in (the payload shows its caller what they signed in as;
        the request's viewer itself never changes)."""
        return self.shown_to or info.context.viewer

    @strawberry.field
    def email(self, info: Info) -> str | None:
        return self.row.email if members.can_see_private(self.seen_by(info), self.row) else None

    @strawberry.field(description="Explicit grants. For the owner, empty: see effectivePermissions.")
    def permissions(self, info: Info) -> list[Permission] | None:
        if not members.can_see_private(self.seen_by(info), self.row):
            return None
        return [] if self.row.role == R.OWNER else sorted((P(p) for p in self.row.permissions), key=list(P).index)

    @strawberry.field(
        description="What the member may actually do: every permission for the owner, the grants for anyone else."
    )
    def effective_permissions(self, info: Info) -> list[Permission] | None:
        if not members.can_see_private(self.seen_by(info), self.row):
            return None
        return sorted(effective_permissions(self.row), key=list(P).index)

    @strawberry.field(description="The plan this member is licensed on; null for administrators.")
    def plan(self, info: Info) -> Plan | None:
        if not members.can_see_money(self.seen_by(info), self.row):
            return None
        return Plan.of_code(self.row.plan_code)

    @strawberry.field
    def trainee_status(self, info: Info) -> TraineeStatus | None:
        return self.row.trainee_status if members.can_see_money(self.seen_by(info), self.row) else None

    @strawberry.field(
        description="Last day the proof of training status is valid; the trainee price applies only until then."
    )
    def training_proof_valid_until(self, info: Info) -> date | None:
        return self.row.training_proof_valid_until if members.can_see_money(self.seen_by(info), self.row) else None


@strawberry.type
class MemberEdge:
    node: Member
    cursor: str


@strawberry.type
class MemberConnection:
    edges: list[MemberEdge]
    page_info: PageInfo
    total_count: int


async def list_members(info: Info, *, first, after, role, include_deactivated) -> MemberConnection:
    page = await members.list_members(
        info.context, first=first, after=after, role=role, include_deactivated=include_deactivated
    )
    return connection(MemberConnection, MemberEdge, page, Member.of)


@node_type("Member", scope=S.READ_MEMBERS)
async def _member_node(info: Info, pk: uuid.UUID) -> Member | None:
    row = await members.get_member(info.context, pk)
    return Member.of(row) if row else None


# ------------------------------------------------------------------ mutations


@strawberry.input
class UpdateMemberInput:
    member_id: strawberry.ID
    role: Role | None = strawberry.field(default=None, description="CLINICIAN or ADMINISTRATOR; OWNER is refused.")
    plan_code: str | None = None
    trainee_status: TraineeStatus | None = None
    training_proof_valid_until: date | None = None
    clear_training_proof: bool | None = strawberry.field(
        default=None, description="Set true to clear trainingProofValidUntil."
    )


@strawberry.type
class UpdateMemberPayload:
    member: Member
    charge: SubscriptionCharge | None = strawberry.field(description="The pro-rated charge this change caused, if any.")


@strawberry.input
class SetMemberPermissionsInput:
    member_id: strawberry.ID
    permissions: list[Permission]


@strawberry.type
class SetMemberPermissionsPayload:
    member: Member


@strawberry.input
class DeactivateMemberInput:
    member_id: strawberry.ID
    reassign_charts_to: strawberry.ID | None = strawberry.field(
        default=None, description="An active clinician who takes over the leaving member's charts."
    )


@strawberry.type
class DeactivateMemberPayload:
    member: Member


@strawberry.input
class ReactivateMemberInput:
    member_id: strawberry.ID


@strawberry.type
class ReactivateMemberPayload:
    member: Member
    charge: SubscriptionCharge | None = strawberry.field(description="The pro-rated seat charge, when one is due.")


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=guard(permission=P.MANAGE_MEMBERS, mutation=True))
    async def update_member(self, info: Info, input: UpdateMemberInput) -> UpdateMemberPayload | None:
        updated = await member_flows.update(
            info.context,
            member_id=input.member_id,
            role=input.role,
            plan_code=input.plan_code,
            trainee_status=input.trainee_status,
            training_proof_valid_until=input.training_proof_valid_until,
            clear_training_proof=bool(input.clear_training_proof),
        )
        return UpdateMemberPayload(
            member=Member.of(updated.member), charge=SubscriptionCharge.of(updated.charge) if updated.charge else None
        )

    @strawberry.mutation(
        description="Grants exactly these permissions (replacing the member's grants).",
        extensions=guard(roles=[R.OWNER], mutation=True),
    )
    async def set_member_permissions(
        self, info: Info, input: SetMemberPermissionsInput
    ) -> SetMemberPermissionsPayload | None:
        row = await member_flows.set_permissions(info.context, input.member_id, input.permissions)
        return SetMemberPermissionsPayload(member=Member.of(row))

    @strawberry.mutation(
        description=(
            "Ends the member's sessions and API tokens at once; their seat is not renewed. "
            "Their charts move to reassignChartsTo when given."
        ),
        extensions=guard(permission=P.MANAGE_MEMBERS, mutation=True),
    )
    async def deactivate_member(self, info: Info, input: DeactivateMemberInput) -> DeactivateMemberPayload | None:
        row = await member_flows.deactivate(info.context, input.member_id, input.reassign_charts_to)
        return DeactivateMemberPayload(member=Member.of(row))

    @strawberry.mutation(
        description=(
            "Brings a deactivated member back with their former role, plan and grants; charges a pro-rated "
            "seat where due."
        ),
        extensions=guard(permission=P.MANAGE_MEMBERS, mutation=True),
    )
    async def reactivate_member(self, info: Info, input: ReactivateMemberInput) -> ReactivateMemberPayload | None:
        reactivated = await member_flows.reactivate(info.context, input.member_id)
        return ReactivateMemberPayload(
            member=Member.of(reactivated.member),
            charge=SubscriptionCharge.of(reactivated.charge) if reactivated.charge else None,
        )
