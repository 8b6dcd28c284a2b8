"""Charts: types, the chart fields of Practice and Member, and the chart mutations.

Other areas' types are referenced lazily (strawberry.lazy / function-local imports) so the core modules
(schema.practices, schema.members) can import the mixins below without an import cycle.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import Chart as ChartRow
from models import ChartNote as ChartNoteRow
from models.charts import ChartStatus as ChartStatusEnum
from resolvers import ids, members
from schema.base import Node, PageInfo

if TYPE_CHECKING:
    from schema.members import Member

ChartStatus = strawberry.enum(ChartStatusEnum)

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

        return Member.of(await members.get_member(info.context, self.row.author_id))


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


@strawberry.type
class ChartEdge:
    node: Chart
    cursor: str


@strawberry.type
class ChartConnection:
    edges: list[ChartEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class PracticeChartsFields:
    """Mixed into Practice: ``charts``."""


@strawberry.type
class MemberChartsFields:
    """Mixed into Member: ``assignedCharts``."""
