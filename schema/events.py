"""The event feed: EventType, Event and Practice.events."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types import Info

from models import Event as EventRow
from models import events as event_models
from resolvers import events, ids
from resolvers.pagination import Page
from schema.base import Node, PageInfo, page_info
from schema.node import node_type

EventType = event_models.EventType
strawberry.enum(
    EventType,
    description="What happened. The scope in each description is what a partner token needs to receive it.",
)
EVENT_TYPE_DESCRIPTIONS = {
    "BILLING_ENTRY_RECORDED": "A charge, payment, adjustment or refund was recorded (READ_BILLING).",
    "STATEMENT_GENERATED": "READ_BILLING.",
    "INVOICE_CREATED": "READ_BILLING.",
    "INVOICE_PAID": "The invoice's payments now cover its total (READ_BILLING).",
    "INVOICE_VOIDED": "READ_BILLING.",
    "CHART_CREATED": "READ_CHARTS.",
    "CHART_UPDATED": "Its details or status changed (READ_CHARTS).",
    "CHART_ASSIGNMENT_CHANGED": "A clinician was assigned to it or taken off it (READ_CHARTS).",
    "MEMBER_JOINED": "READ_MEMBERS.",
    "MEMBER_UPDATED": "Role, plan, trainee status or permissions changed (READ_MEMBERS).",
    "MEMBER_DEACTIVATED": "READ_MEMBERS.",
    "MEMBER_REACTIVATED": "READ_MEMBERS.",
}
# strawberry.enum takes value descriptions only from strawberry.enum_value in the enum's own class; the models' enum
# stays plain, so the descriptions are set on the definition here (each names the scope resolvers.events.SCOPES uses).
for _value in EventType.__strawberry_definition__.values:  # type: ignore[attr-defined]
    _value.description = EVENT_TYPE_DESCRIPTIONS[_value.value]


@strawberry.type(description="A thin event: what happened to which object, and when. It carries no patient data.")
class Event(Node):
    type: EventType
    subject_id: strawberry.ID = strawberry.field(
        description="The global id of the object the event is about: a BillingEntry, Statement, Invoice, Chart or "
        "Member."
    )
    occurred_at: datetime
    row: strawberry.Private[EventRow]

    @classmethod
    def of(cls, row: EventRow) -> Event:
        return cls(
            id=strawberry.ID(ids.encode("Event", row.id)),
            type=row.type,
            subject_id=strawberry.ID(ids.encode(row.subject_type, row.subject_id)),
            occurred_at=row.created_at,
            row=row,
        )


@strawberry.type
class EventEdge:
    node: Event
    cursor: str


@strawberry.type
class EventConnection:
    edges: list[EventEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[EventRow]) -> EventConnection:
        edges = [
            EventEdge(node=Event.of(row), cursor=cursor) for row, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return cls(edges=edges, page_info=page_info(page))


@strawberry.type
class PracticeEventsFields:
    """Mixed into Practice: ``events``."""

    @strawberry.field(
        description="The practice's events that the caller may read, oldest first; pass the last cursor seen to "
        "resume. "
        "Kept at least 30 days."
    )
    async def events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        types: list[EventType] | None = None,
    ) -> EventConnection | None:
        return EventConnection.of(await events.list_events(info.context, first=first, after=after, types=types))


@node_type("Event")
async def _event_node(info: Info, pk: uuid.UUID) -> Event | None:
    row = await events.get_event(info.context, pk)
    return Event.of(row) if row else None
