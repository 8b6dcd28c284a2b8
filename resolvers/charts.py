"""Charts: the one access query ("which charts may this viewer read?"), assignment and notes."""

from __future__ import annotations

import uuid
from datetime import datetime

from tortoise.queryset import QuerySet

from auth.viewer import Viewer
from models import Chart, ChartAssignment
from models.enums import Permission, Role


def visible_charts(viewer: Viewer) -> QuerySet[Chart]:
    """Every chart of the practice for the owner and VIEW_ALL_CHARTS; the assigned ones for a clinician; none else.

    Lists, node(), mutations and loaders all start from here, so the rule is written once.
    """
    charts = Chart.filter(practice_id=viewer.practice.id)
    if viewer.has(Permission.VIEW_ALL_CHARTS):
        return charts
    if viewer.role == Role.CLINICIAN:
        return charts.filter(assignments__clinician_id=viewer.member.id)
    return charts.filter(id__in=[])



async def unassign_all(member_id: uuid.UUID, *, connection=None) -> int:
    return await ChartAssignment.filter(clinician_id=member_id).using_db(connection).delete()


async def reassign_all(from_id: uuid.UUID, to_id: uuid.UUID, *, now: datetime, connection=None) -> int:
    """Move every chart assigned to ``from_id`` to ``to_id`` (in the caller's transaction). Returns how many moved."""
    chart_ids = await ChartAssignment.filter(clinician_id=from_id).using_db(connection).values_list("chart_id", flat=True)
    if not chart_ids:
        return 0
    already = set(
        await ChartAssignment.filter(clinician_id=to_id, chart_id__in=chart_ids).using_db(connection).values_list("chart_id", flat=True)
    )
    new = [ChartAssignment(id=uuid.uuid4(), chart_id=c, clinician_id=to_id, created_at=now) for c in chart_ids if c not in already]
    if new:
        await ChartAssignment.bulk_create(new, using_db=connection)
    await ChartAssignment.filter(clinician_id=from_id).using_db(connection).delete()
    return len(chart_ids)
