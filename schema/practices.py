"""The practice: its own fields, the fields each area mixes in, and turning it into a group."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types import Info

from models import Practice as PracticeRow
from models.enums import Role as R
from models.enums import TokenScope as S
from resolvers import ids, member_flows, members, practices
from schema.api_tokens import PracticeApiTokensFields
from schema.audit import PracticeAuditFields
from schema.base import Node, PracticeKind, Role
from schema.billing import PracticeBillingFields
from schema.charts import PracticeChartsFields
from schema.directives import guard
from schema.events import PracticeEventsFields
from schema.invitations import PracticeInvitationsFields
from schema.members import Member, MemberConnection, list_members
from schema.node import node_type
from schema.subscriptions import PracticeSubscriptionFields
from schema.webhooks import PracticeWebhooksFields


@strawberry.type
class Practice(
    Node,
    PracticeInvitationsFields,
    PracticeChartsFields,
    PracticeBillingFields,
    PracticeSubscriptionFields,
    PracticeAuditFields,
    PracticeApiTokensFields,
    PracticeEventsFields,
    PracticeWebhooksFields,
):
    name: str
    slug: str = strawberry.field(
        description="Used with email and password to log in: an account belongs to exactly one practice."
    )
    kind: PracticeKind
    created_at: datetime
    row: strawberry.Private[PracticeRow]

    @classmethod
    def of(cls, row: PracticeRow) -> Practice:
        return cls(
            id=strawberry.ID(ids.encode("Practice", row.id)),
            name=row.name,
            slug=row.slug,
            kind=row.kind,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    async def owner(self, info: Info) -> Member:
        return Member.of(await members.practice_owner(info.context))

    @strawberry.field(extensions=guard(scope=S.READ_MEMBERS))
    async def members(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        role: Role | None = None,
        include_deactivated: bool | None = False,
    ) -> MemberConnection | None:
        return await list_members(
            info, first=first, after=after, role=role, include_deactivated=bool(include_deactivated)
        )


@node_type("Practice")
async def _practice_node(info: Info, pk: uuid.UUID) -> Practice | None:
    viewer = info.context.viewer
    return Practice.of(viewer.practice) if viewer and viewer.practice.id == pk else None


@strawberry.type
class ActivateGroupPracticePayload:
    practice: Practice


@strawberry.input
class UpdatePracticeInput:
    name: str


@strawberry.type
class UpdatePracticePayload:
    practice: Practice


@strawberry.input
class TransferOwnershipInput:
    member_id: strawberry.ID = strawberry.field(
        description="An active clinician of the practice; the current owner becomes a clinician on the same plan."
    )
    password: str = strawberry.field(description="The current owner's password, asked again.")


@strawberry.type
class TransferOwnershipPayload:
    practice: Practice


@strawberry.type
class Query:
    @strawberry.field(extensions=guard(authenticated=True))
    def practice(self, info: Info) -> Practice | None:
        return Practice.of(practices.current(info.context))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Turns the owner's solo practice into a group practice; the trial, if any, carries over.",
        extensions=guard(roles=[R.OWNER], mutation=True),
    )
    async def activate_group_practice(self, info: Info) -> ActivateGroupPracticePayload | None:
        return ActivateGroupPracticePayload(practice=Practice.of(await practices.activate_group(info.context)))

    @strawberry.mutation(extensions=guard(roles=[R.OWNER], mutation=True))
    async def update_practice(self, info: Info, input: UpdatePracticeInput) -> UpdatePracticePayload | None:
        return UpdatePracticePayload(practice=Practice.of(await practices.rename(info.context, input.name)))

    @strawberry.mutation(extensions=guard(roles=[R.OWNER], mutation=True))
    async def transfer_ownership(self, info: Info, input: TransferOwnershipInput) -> TransferOwnershipPayload | None:
        row = await member_flows.transfer_ownership(info.context, member_id=input.member_id, password=input.password)
        return TransferOwnershipPayload(practice=Practice.of(row))
