"""The event feed: which changes are events (one table), writing them with the change, and who may read them.

Writing. Every write already appends its audit events through ``audit.record_many`` inside its own transaction, with
the practice's chain head locked. ``emit`` is called from there: it maps the audit actions to EventTypes
(``ACTIONS``) and inserts the Event rows (and the webhook deliveries they cause) on the same connection, so an event
commits or rolls back with its change: no event for a rolled-back write, never a change without its event.

Ordering. An event's ``sequence`` is the audit chain position of the audit event that caused it (``position`` tells
apart the events of one audit event). That number is taken while the practice's chain head row is locked, and the
lock is held until the whole write commits (row locks outlive savepoints until the top-level commit). So within a
practice, sequence order IS commit order: a writer holding sequence s has committed (or rolled back) before the
next writer can lock the head and take s + 1, and PostgreSQL makes a commit visible before it releases its locks.
A reader that sees an event of sequence s therefore already sees every committed event below s, and a cursor on
(sequence, position) never has an event appear behind it later. (SQLite serialises writes altogether.)

Reading. ``visible_events`` is THE access query: the caller's practice; for a partner token only the types its
scopes cover (``SCOPES``, named in each EventType's description); and only events whose subject the caller may read
right now, by the subject area's own access query (charts.visible_charts, billing.visible / billed_clinicians,
members.practice_members). The feed, node(), the deliveries list and the webhook job all start from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from strawberry.dataloader import DataLoader
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import Forbidden
from models import BillingEntry, Event, Invoice, Statement, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from models.billing import InvoiceStatus
from models.enums import TokenScope
from models.events import EventType
from models.webhooks import WebhookDeliveryStatus
from resolvers import billing, charts, ids, members
from resolvers.context import Context
from resolvers.pagination import Page, paginate

log = logging.getLogger("groups_api.events")

E = EventType

# The one table: which audit action is which event. An action not listed here is no event (reads, denials,
# log-ins, invitations, subscriptions, sign-up). ``chart.updated`` and ``billing.invoice_voided`` are the
# actions of updateChart and voidInvoice.
ACTIONS: dict[str, EventType] = {
    "billing.charge_recorded": E.BILLING_ENTRY_RECORDED,
    "billing.payment_recorded": E.BILLING_ENTRY_RECORDED,
    "billing.adjustment_recorded": E.BILLING_ENTRY_RECORDED,
    "billing.refund_recorded": E.BILLING_ENTRY_RECORDED,
    "billing.statement_generated": E.STATEMENT_GENERATED,
    "billing.invoice_created": E.INVOICE_CREATED,
    "billing.invoice_voided": E.INVOICE_VOIDED,
    "chart.created": E.CHART_CREATED,
    "chart.updated": E.CHART_UPDATED,
    "chart.assigned": E.CHART_ASSIGNMENT_CHANGED,
    "chart.unassigned": E.CHART_ASSIGNMENT_CHANGED,
    "member.created": E.MEMBER_JOINED,  # acceptInvitation (sign-up records no member.created)
    "member.role_changed": E.MEMBER_UPDATED,
    "member.permissions_changed": E.MEMBER_UPDATED,
    "member.plan_changed": E.MEMBER_UPDATED,
    "member.trainee_status_changed": E.MEMBER_UPDATED,
    "member.deactivated": E.MEMBER_DEACTIVATED,
    "member.reactivated": E.MEMBER_REACTIVATED,
}
# A payment that makes its invoice PAID is also INVOICE_PAID (subject: the invoice named in the audit details).
PAYMENT = "billing.payment_recorded"

# What each type is about (the global id type of its subject) and the scope a partner token needs to receive it.
SUBJECTS: dict[EventType, str] = {
    E.BILLING_ENTRY_RECORDED: "BillingEntry",
    E.STATEMENT_GENERATED: "Statement",
    E.INVOICE_CREATED: "Invoice",
    E.INVOICE_PAID: "Invoice",
    E.INVOICE_VOIDED: "Invoice",
    E.CHART_CREATED: "Chart",
    E.CHART_UPDATED: "Chart",
    E.CHART_ASSIGNMENT_CHANGED: "Chart",
    E.MEMBER_JOINED: "Member",
    E.MEMBER_UPDATED: "Member",
    E.MEMBER_DEACTIVATED: "Member",
    E.MEMBER_REACTIVATED: "Member",
}
_AREA_SCOPE = {
    "BillingEntry": TokenScope.READ_BILLING,
    "Statement": TokenScope.READ_BILLING,
    "Invoice": TokenScope.READ_BILLING,
    "Chart": TokenScope.READ_CHARTS,
    "Member": TokenScope.READ_MEMBERS,
}
SCOPES: dict[EventType, TokenScope] = {t: _AREA_SCOPE[s] for t, s in SUBJECTS.items()}

ORDER = ["sequence", "position"]
# Events are kept at least this long; ``purge`` deletes older ones (groups-api maintenance purge).
RETENTION = timedelta(days=30)
PURGE_BATCH = 1000


# ------------------------------------------------------------------ writing


def _changes(action: str, target_id: str | None, details: dict[str, Any] | None) -> list[tuple[EventType, str | None]]:
    """The (type, subject global id) an audit event stands for; INVOICE_PAID only as a candidate (checked by
    ``emit``)."""
    kind = ACTIONS.get(action)
    if kind is None:
        return []
    changes: list[tuple[EventType, str | None]] = [(kind, target_id)]
    if action == PAYMENT and details and isinstance(details.get("invoice"), str):
        changes.append((E.INVOICE_PAID, details["invoice"]))
    return changes


async def emit(
    ctx: Context,
    connection: BaseDBAsyncClient,
    practice_id: uuid.UUID | None,
    recorded: Sequence[tuple[int, Any]],
    now: datetime,
) -> None:
    """Write the events of audit events just appended (``(sequence, PendingEvent)``) on the write's connection.

    Called by ``audit.record_many`` with the chain head locked. Within one batch, one event per (type, subject):
    a change recorded as several audit events (role and plan at once) is one MEMBER_UPDATED; and a chart created
    in the batch has no CHART_ASSIGNMENT_CHANGED of its own (its first assignments are part of CHART_CREATED).
    """
    if practice_id is None:
        return
    mapped = [
        (sequence, kind, gid) for sequence, p in recorded for kind, gid in _changes(p.action, p.target_id, p.details)
    ]
    if not mapped:
        return
    created = {gid for _, kind, gid in mapped if kind == E.CHART_CREATED}
    paid = await _paid_invoices(connection, [gid for _, kind, gid in mapped if kind == E.INVOICE_PAID])
    rows: list[Event] = []
    seen: set[tuple[EventType, str | None]] = set()
    positions: dict[int, int] = {}
    for sequence, kind, gid in mapped:
        parsed = ids.parse(gid) if gid else None
        if parsed is None or parsed[0] != SUBJECTS[kind]:
            log.error("audit event of %s names no %s (%r): no event written", kind.value, SUBJECTS[kind], gid)
            continue
        if (kind, gid) in seen or (kind == E.CHART_ASSIGNMENT_CHANGED and gid in created):
            continue
        if kind == E.INVOICE_PAID and parsed[1] not in paid:
            continue
        seen.add((kind, gid))
        position = positions[sequence] = positions.get(sequence, -1) + 1
        rows.append(
            Event(
                id=uuid.uuid4(),
                practice_id=practice_id,
                sequence=sequence,
                position=position,
                type=kind,
                subject_type=parsed[0],
                subject_id=parsed[1],
                created_at=now,
            )
        )
    if not rows:
        return
    await Event.bulk_create(rows, using_db=connection)
    await _queue_deliveries(ctx, connection, practice_id, rows, now)


async def _paid_invoices(connection: BaseDBAsyncClient, gids: list[str | None]) -> set[uuid.UUID]:
    """Of these invoices, the ones PAID now (in the payment's transaction, which just updated them)."""
    pks = [parsed[1] for gid in gids if gid and (parsed := ids.parse(gid)) is not None and parsed[0] == "Invoice"]
    if not pks:
        return set()
    found = (
        await Invoice.filter(id__in=pks, status=InvoiceStatus.PAID).using_db(connection).values_list("id", flat=True)
    )
    return set(cast(list[uuid.UUID], found))


async def _queue_deliveries(
    ctx: Context, connection: BaseDBAsyncClient, practice_id: uuid.UUID, rows: list[Event], now: datetime
) -> None:
    """The outbox of webhooks: one delivery per subscribed endpoint and event, in the event's transaction. Whether the
    endpoint's token may read the event is decided when it is delivered (resolvers/webhooks.py)."""
    endpoints = await (
        WebhookEndpoint.filter(practice_id=practice_id, deleted_at=None, api_token__revoked_at=None)
        .using_db(connection)
        .values("id", "event_types")
    )
    deliveries = [
        WebhookDelivery(
            id=uuid.uuid4(),
            practice_id=practice_id,
            endpoint_id=endpoint["id"],
            event_id=event.id,
            status=WebhookDeliveryStatus.PENDING,
            next_attempt_at=now,
            created_at=now,
        )
        for event in rows
        for endpoint in endpoints
        if event.type.value in (endpoint["event_types"] or ())
    ]
    if deliveries:
        await WebhookDelivery.bulk_create(deliveries, using_db=connection)
        from resolvers import webhooks  # webhooks reads events: imported here, where it is used

        webhooks.deliver_after_response(ctx, [d.id for d in deliveries])


# ------------------------------------------------------------------ reading


def readable_types(viewer: Viewer) -> list[EventType]:
    """The types the caller may receive: every type for a session, those its scopes cover for a partner token."""
    return [kind for kind in EventType if viewer.has_scope(SCOPES[kind])]


def _readable_subjects(viewer: Viewer) -> Q:
    """Events whose subject the viewer may read now, by each area's own access query."""
    clauses = [
        Q(subject_type="Chart", subject_id__in=Subquery(charts.visible_charts(viewer).values("id"))),
        Q(subject_type="Member", subject_id__in=Subquery(members.practice_members(viewer).values("id"))),
    ]
    try:
        everyone = billing.billed_clinicians(viewer) is None
    except Forbidden:
        pass  # no billing at all (an administrator without VIEW_BILLING)
    else:
        for name, model in (("BillingEntry", BillingEntry), ("Statement", Statement), ("Invoice", Invoice)):
            if everyone:
                # billing.visible is then the whole practice, which every event of the feed already belongs to:
                # no subquery over a ledger of millions of rows.
                clauses.append(Q(subject_type=name))
            else:
                clauses.append(
                    Q(subject_type=name, subject_id__in=Subquery(billing.visible(model, viewer).values("id")))
                )
    combined = clauses[0]
    for clause in clauses[1:]:
        combined |= clause
    return combined


def visible_events(viewer: Viewer) -> QuerySet[Event]:
    """THE access query for events: the viewer's practice, the types their scopes cover, subjects they may read."""
    return Event.filter(practice_id=viewer.practice.id, type__in=readable_types(viewer)).filter(
        _readable_subjects(viewer)
    )


async def list_events(
    ctx: Context, *, first: int | None, after: str | None, types: list[EventType] | None
) -> Page[Event]:
    """Oldest first, resumable from any cursor handed out (see the module's docstring for why none is ever passed)."""
    qs = visible_events(ctx.require_viewer())
    if types is not None:
        qs = qs.filter(type__in=[EventType(t) for t in types])
    return await paginate(qs, order=ORDER, first=first, after=after, count=False)


async def load_events(ctx: Context, keys: Sequence[uuid.UUID]) -> list[Event | None]:
    rows = {e.id: e for e in await visible_events(ctx.require_viewer()).filter(id__in=list(keys))}
    return [rows.get(k) for k in keys]


async def get_event(ctx: Context, event_id: uuid.UUID) -> Event | None:
    if ctx.viewer is None:
        return None
    loader: DataLoader[uuid.UUID, Event | None] = ctx.loaders.get("events.by_id", lambda keys: load_events(ctx, keys))
    return ctx.own(await loader.load(event_id))


# ------------------------------------------------------------------ retention


async def purge(now: datetime) -> int:
    """Delete the events older than RETENTION, with their webhook deliveries and attempts. Returns how many events."""
    cutoff = now - RETENTION
    purged = 0
    while True:
        batch = cast(
            list[uuid.UUID], await Event.filter(created_at__lt=cutoff).limit(PURGE_BATCH).values_list("id", flat=True)
        )
        if not batch:
            return purged
        async with in_transaction() as conn:
            deliveries = WebhookDelivery.filter(event_id__in=batch).using_db(conn)
            await WebhookAttempt.filter(delivery_id__in=Subquery(deliveries.values("id"))).using_db(conn).delete()
            await deliveries.delete()
            purged += await Event.filter(id__in=batch).using_db(conn).delete()
