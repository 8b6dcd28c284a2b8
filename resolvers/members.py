"""Members: the access query, who sees what of a member, and the lookups (by id, the list, the owner). The flows that
change members are in ``member_flows``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from strawberry.dataloader import DataLoader
from tortoise.queryset import QuerySet

from auth.viewer import Viewer
from errors import NotFound
from models import Member
from models.enums import MemberStatus, Permission, Role
from resolvers.context import Context
from resolvers.ids import decode
from resolvers.pagination import Page, paginate

ORDER = ["created_at", "id"]


# ------------------------------------------------------------------ access


def practice_members(viewer: Viewer) -> QuerySet[Member]:
    """The one access query for members: the viewer's practice, nothing else."""
    return Member.filter(practice_id=viewer.practice.id)


def _manages(viewer: Viewer, permission: Permission) -> bool:
    """A management permission used as a row rule. No token scope carries MANAGE_MEMBERS or MANAGE_SUBSCRIPTION, so a
    partner token never exercises them (as the contract closes permission-guarded fields without a scope to tokens)."""
    return not viewer.is_token and viewer.has(permission)


def can_see_private(viewer: Viewer | None, member: Member) -> bool:
    """Email and permissions: the member themself and (sessions) holders of MANAGE_MEMBERS."""
    if viewer is None or viewer.practice.id != member.practice_id:
        return False
    return viewer.member.id == member.id or _manages(viewer, Permission.MANAGE_MEMBERS)


def can_see_money(viewer: Viewer | None, member: Member) -> bool:
    """Plan, trainee fields and license: as private fields, and also to (sessions) holders of MANAGE_SUBSCRIPTION."""
    return can_see_private(viewer, member) or (
        viewer is not None
        and viewer.practice.id == member.practice_id
        and _manages(viewer, Permission.MANAGE_SUBSCRIPTION)
    )


async def load_members(ctx: Context, ids: Sequence[uuid.UUID]) -> list[Member | None]:
    """DataLoader batch: members of the viewer's practice by id (None for anything else)."""
    rows = {m.id: m for m in await practice_members(ctx.require_viewer()).filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


def member_loader(ctx: Context) -> DataLoader[uuid.UUID, Member | None]:
    return ctx.loaders.get("members.by_id", lambda ids: load_members(ctx, ids))


async def get_member(ctx: Context, member_id: uuid.UUID) -> Member | None:
    if ctx.viewer is None:
        return None
    return ctx.own(await member_loader(ctx).load(member_id))


async def require_member(ctx: Context, global_id: str, *, field: str = "input.memberId") -> Member:
    member = await get_member(ctx, decode(global_id, "Member", field=field))
    if member is None:
        raise NotFound("no such member")
    return member


async def list_members(
    ctx: Context, *, first: int | None, after: str | None, role: Role | None, include_deactivated: bool
) -> Page[Member]:
    qs = practice_members(ctx.require_viewer())
    if role is not None:
        qs = qs.filter(role=role)
    if not include_deactivated:
        qs = qs.filter(status=MemberStatus.ACTIVE)
    return await paginate(qs, order=ORDER, first=first, after=after)


async def practice_owner(ctx: Context) -> Member:
    async def batch(practice_ids):
        rows = {m.practice_id: m for m in await Member.filter(practice_id__in=list(practice_ids), role=Role.OWNER)}
        return [rows.get(pid) for pid in practice_ids]

    return await ctx.loaders.get("members.owner_of_practice", batch).load(ctx.require_viewer().practice.id)
