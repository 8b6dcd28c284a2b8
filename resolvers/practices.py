"""The caller's practice: turning a solo practice into a group, renaming it."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from errors import Conflict, GroupPracticeRequired
from models import Practice
from models.enums import PracticeKind
from resolvers import audit, validation
from resolvers.context import Context
from resolvers.ids import encode


def current(ctx: Context) -> Practice:
    """The viewer's practice (loaded with the viewer: no query)."""
    assert ctx.viewer is not None
    return ctx.viewer.practice


def require_group(practice: Practice) -> None:
    if practice.kind != PracticeKind.GROUP:
        raise GroupPracticeRequired("only a group practice can do this: activate the group practice first")


async def activate_group(ctx: Context) -> Practice:
    """SOLO -> GROUP. The trial is the practice's own and carries over untouched."""
    practice = current(ctx)
    async with in_transaction():
        updated = await Practice.filter(id=practice.id, kind=PracticeKind.SOLO).update(kind=PracticeKind.GROUP)
        if not updated:
            raise Conflict("this practice is already a group practice")
        await audit.record(ctx, "practice.group_activated", encode("Practice", practice.id))
    practice.kind = PracticeKind.GROUP
    return practice


async def rename(ctx: Context, name: str) -> Practice:
    """A new name for the practice (the owner). The slug stays: log-ins and links keep working."""
    practice = current(ctx)
    name = validation.text(name, field="input.name", max_length=200)
    async with in_transaction() as conn:
        await Practice.filter(id=practice.id).using_db(conn).update(name=name)
        await audit.record(ctx, "practice.renamed", encode("Practice", practice.id))
    practice.name = name
    return practice
