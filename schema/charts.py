"""Charts: types, the chart fields of Practice and Member, and the chart mutations.

Other areas' types are referenced lazily (strawberry.lazy / function-local imports) so the core modules
(schema.practices, schema.members) can import the mixins below without an import cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import Chart as ChartRow
from models import ChartNote as ChartNoteRow
from models.charts import ChartStatus as ChartStatusEnum
from models.enums import Permission as P
from models.enums import TokenScope as S
from resolvers import charts, idempotency, ids
from resolvers.pagination import Page
from schema.base import Node, PageInfo, connection, page_info
from schema.directives import guard
from schema.node import node_type

if TYPE_CHECKING:
    from models import Member as MemberRow
    from schema.members import Member

ChartStatus = ChartStatusEnum
strawberry.enum(ChartStatus)

MemberType = Annotated["Member", strawberry.lazy("schema.members")]


@strawberry.type
class ChartNote(Node):
    body: str
    created_at: datetime
    row: strawberry.Private[ChartNoteRow]

    @classmethod
    def of(cls, row: ChartNoteRow) -> ChartNote:
        return cls(id=strawberry.ID(ids.encode("ChartNote", row.id)), body=row.body, created_at=row.created_at, row=row)

    @strawberry.field
    async def author(self, info: Info) -> MemberType:
        from schema.members import Member

        return await Member.named(info, self.row.author_id)


@strawberry.type
class ChartNoteEdge:
    node: ChartNote
    cursor: str


@strawberry.type
class ChartNoteConnection:
    edges: list[ChartNoteEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class Chart(Node):
    patient_name: str
    date_of_birth: date | None
    email: str | None
    phone: str | None
    status: ChartStatus
    created_at: datetime
    row: strawberry.Private[ChartRow]

    @classmethod
    def of(cls, row: ChartRow) -> Chart:
        return cls(
            id=strawberry.ID(ids.encode("Chart", row.id)),
            patient_name=row.patient_name,
            date_of_birth=row.date_of_birth,
            email=row.email,
            phone=row.phone,
            status=row.status,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    async def assigned_clinicians(self, info: Info) -> list[MemberType]:
        from schema.members import Member

        return [Member.of(m) for m in await charts.assigned_clinicians(info.context, self.row.id)]

    @strawberry.field(
        description=(
            "Clinical notes, newest first: for the owner, the chart's assigned clinicians and clinicians holding "
            "VIEW_ALL_CHARTS; never for administrators, whatever their permissions."
        ),
        extensions=guard(roles=list(charts.NOTE_ROLES), scope=S.READ_CHART_NOTES),
    )
    async def notes(self, info: Info, first: int | None = None, after: str | None = None) -> ChartNoteConnection | None:
        page = await charts.chart_notes(info.context, self.row.id, first=first, after=after)
        return connection(ChartNoteConnection, ChartNoteEdge, page, ChartNote.of)


def _edge_node(self: ChartEdge) -> Chart:
    """Returning a chart's fields is reading it: recorded here, so a list asked only for totalCount or pageInfo reads
    none (charts.record_reads, once per chart per request)."""
    self.seen(self.chart.row.id)
    return self.chart


@strawberry.type
class ChartEdge:
    node: Chart = strawberry.field(resolver=_edge_node)
    cursor: str
    chart: strawberry.Private[Chart]
    seen: strawberry.Private[Callable[[uuid.UUID], None]]


@strawberry.type
class ChartConnection:
    edges: list[ChartEdge]
    page_info: PageInfo
    total_count: int


def chart_connection(info: Info, page: Page[ChartRow], via: str) -> ChartConnection:
    ctx = info.context

    def seen(chart_id: uuid.UUID) -> None:
        charts.record_reads(ctx, "chart.read", (chart_id,), via)

    return ChartConnection(
        edges=[
            ChartEdge(chart=Chart.of(row), seen=seen, cursor=cursor)
            for row, cursor in zip(page.items, page.cursors, strict=True)
        ],
        page_info=page_info(page),
        total_count=page.counted,
    )


@strawberry.type
class PracticeChartsFields:
    """Mixed into Practice: ``charts``."""

    @strawberry.field(
        description=(
            "The charts the viewer may read: all of them with VIEW_ALL_CHARTS, ASSIGN_CHARTS or MANAGE_BILLING, "
            "otherwise those assigned to the viewer. Archived charts only when status: ARCHIVED is asked for."
        ),
        extensions=guard(scope=S.READ_CHARTS),
    )
    async def charts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        clinician_id: strawberry.ID | None = None,
        search: str | None = None,
        status: ChartStatus | None = None,
    ) -> ChartConnection | None:
        page = await charts.list_charts(
            info.context, first=first, after=after, clinician_id=clinician_id, search=search, status=status
        )
        return chart_connection(info, page, "Practice.charts")


@strawberry.type
class MemberChartsFields:
    """Mixed into Member: ``assignedCharts``."""

    if TYPE_CHECKING:  # provided by Member

        @property
        def row(self) -> MemberRow: ...

    @strawberry.field(extensions=guard(scope=S.READ_CHARTS))
    async def assigned_charts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ChartConnection | None:
        page = await charts.assigned_charts(info.context, self.row.id, first=first, after=after)
        return chart_connection(info, page, "Member.assignedCharts")


@node_type("Chart", scope=S.READ_CHARTS)
async def _chart_node(info: Info, pk: uuid.UUID) -> Chart | None:
    row = await charts.get_chart(info.context, pk)
    return Chart.of(row) if row else None


@node_type("ChartNote", roles=list(charts.NOTE_ROLES), scope=S.READ_CHART_NOTES)
async def _chart_note_node(info: Info, pk: uuid.UUID) -> ChartNote | None:
    row = await charts.get_note(info.context, pk)
    return ChartNote.of(row) if row else None


# ------------------------------------------------------------------ mutations


@strawberry.input
class CreateChartInput:
    patient_name: str
    date_of_birth: date | None = None
    email: str | None = None
    phone: str | None = None
    clinician_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description=(
            "Active owners or clinicians to assign (needs ASSIGN_CHARTS). A clinician who creates a chart is "
            "always assigned."
        ),
    )
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.input
class UpdateChartInput:
    """Fields left out stay as they are; dateOfBirth, email and phone given as null are cleared."""

    chart_id: strawberry.ID
    patient_name: str | None = strawberry.UNSET
    date_of_birth: date | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    status: ChartStatus | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "ARCHIVED hides the chart from lists (unless asked for) and refuses new charges; ACTIVE brings it back."
        ),
    )

    def given(self) -> dict[str, object]:
        """The fields the caller sent, by input name (UNSET ones left out)."""
        sent = {
            "patientName": self.patient_name,
            "dateOfBirth": self.date_of_birth,
            "email": self.email,
            "phone": self.phone,
            "status": self.status,
        }
        return {name: value for name, value in sent.items() if value is not strawberry.UNSET}


@strawberry.type
class ChartPayload:
    chart: Chart


@strawberry.input
class ChartAssignmentInput:
    chart_id: strawberry.ID
    clinician_id: strawberry.ID


@strawberry.input
class AddChartNoteInput:
    chart_id: strawberry.ID
    body: str


@strawberry.type
class AddChartNotePayload:
    note: ChartNote


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=guard(scope=S.WRITE_CHARTS, mutation=True))
    async def create_chart(self, info: Info, input: CreateChartInput) -> ChartPayload | None:
        row = await idempotency.once(
            info.context,
            "createChart",
            input,
            idempotency.CHART,
            lambda: charts.create_chart(
                info.context,
                patient_name=input.patient_name,
                date_of_birth=input.date_of_birth,
                email=input.email,
                phone=input.phone,
                clinician_ids=input.clinician_ids,
            ),
        )
        return ChartPayload(chart=Chart.of(row))

    @strawberry.mutation(
        description=(
            "For the owner, the chart's assigned clinicians, and members holding VIEW_ALL_CHARTS or ASSIGN_CHARTS."
        ),
        extensions=guard(scope=S.WRITE_CHARTS, mutation=True),
    )
    async def update_chart(self, info: Info, input: UpdateChartInput) -> ChartPayload | None:
        return ChartPayload(chart=Chart.of(await charts.update_chart(info.context, input.chart_id, input.given())))

    @strawberry.mutation(
        description="Idempotent. Only active owners and clinicians of the practice can be assigned.",
        extensions=guard(permission=P.ASSIGN_CHARTS, mutation=True),
    )
    async def assign_chart(self, info: Info, input: ChartAssignmentInput) -> ChartPayload | None:
        return ChartPayload(chart=Chart.of(await charts.assign(info.context, input.chart_id, input.clinician_id)))

    @strawberry.mutation(description="Idempotent.", extensions=guard(permission=P.ASSIGN_CHARTS, mutation=True))
    async def unassign_chart(self, info: Info, input: ChartAssignmentInput) -> ChartPayload | None:
        return ChartPayload(chart=Chart.of(await charts.unassign(info.context, input.chart_id, input.clinician_id)))

    @strawberry.mutation(
        description="Notes are append-only: there is no way to change or delete one.",
        extensions=guard(roles=list(charts.NOTE_ROLES), scope=S.WRITE_CHART_NOTES, mutation=True),
    )
    async def add_chart_note(self, info: Info, input: AddChartNoteInput) -> AddChartNotePayload | None:
        return AddChartNotePayload(note=ChartNote.of(await charts.add_note(info.context, input.chart_id, input.body)))
