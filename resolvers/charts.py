"""Charts: the one access query ("which charts may this viewer read?"), the notes rule, assignment and updates.

Every chart read starts from ``visible_charts`` and every note read from ``visible_notes`` (whose charts are
``note_charts``, the one notes rule): a chart outside them does not exist for the caller (absent from lists, null
from node, NOT_FOUND in mutations). Notes are narrower than charts: ASSIGN_CHARTS and MANAGE_BILLING find every chart,
but only the owner, a chart's assigned clinicians and clinicians holding VIEW_ALL_CHARTS read its notes.
Every chart whose fields a request returns is recorded in the audit log (``chart.read``, and ``chart.notes_read`` for
the charts whose notes are listed) once per request, however many aliases or routes reach it: ``record_reads`` queues
the events and the request writes them in one batch after it has run, before its response leaves (audit.defer; the
response is withheld when they cannot be written), so a read is on record even if the rest of the request fails. A
list returns its charts' fields only through its edges' ``node`` (schema.charts.ChartEdge records them there): a list
asked only for ``totalCount`` or ``pageInfo`` reads no chart.
Lists nested under other lists (Member.assignedCharts, Chart.notes, Chart.assignedClinicians) go through
DataLoaders, so a request runs the same number of SQL statements whatever the page size.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import AppError, BadInput, Forbidden, NotFound
from models import Chart, ChartAssignment, ChartNote, Member
from models.charts import ChartStatus
from models.enums import MemberStatus, Permission, Role, TokenScope
from resolvers import audit, members, validation
from resolvers.context import Context
from resolvers.ids import decode, decode_many, encode
from resolvers.pagination import Page, paginate, paginate_many

ORDER = ["-created_at", "-id"]  # charts, notes and assignments: newest first
ASSIGNABLE_ROLES = frozenset({Role.OWNER, Role.CLINICIAN})
NOTE_ROLES = (Role.OWNER, Role.CLINICIAN)  # administrators never read or write notes, whatever their permissions
NOTE_MAX_LENGTH = 50_000
EARLIEST_DATE_OF_BIRTH = date(1900, 1, 1)


# ------------------------------------------------------------------ access


# Permissions that find every chart of the practice (not its notes): reading them all, assigning them, billing them.
FINDS_EVERY_CHART = (Permission.VIEW_ALL_CHARTS, Permission.ASSIGN_CHARTS, Permission.MANAGE_BILLING)
# Besides a chart's assigned clinicians, who may edit and archive it (updateChart).
EDITS_EVERY_CHART = (Permission.VIEW_ALL_CHARTS, Permission.ASSIGN_CHARTS)


def visible_charts(viewer: Viewer) -> QuerySet[Chart]:
    """Every chart of the practice for holders of VIEW_ALL_CHARTS, ASSIGN_CHARTS or MANAGE_BILLING (the owner holds
    them all); the assigned ones for any other clinician; none for anyone else.

    Lists, node(), mutations (assignment, billing, updates) and loaders all start from here, so the rule is written
    once. Archived charts are visible: only Practice.charts leaves them out unless asked for.
    """
    charts = Chart.filter(practice_id=viewer.practice.id)
    if any(viewer.has(permission) for permission in FINDS_EVERY_CHART):
        return charts
    if viewer.role == Role.CLINICIAN:
        return charts.filter(id__in=_assigned_to(viewer.member.id))
    return charts.filter(id__in=[])


def may_use_notes(viewer: Viewer) -> bool:
    return viewer.role in NOTE_ROLES


def note_charts(viewer: Viewer) -> QuerySet[Chart]:
    """THE notes rule: the charts whose notes the viewer reads and writes. The owner's practice, every chart for a
    clinician holding VIEW_ALL_CHARTS, the assigned charts for any other clinician; never an administrator, whatever
    their permissions. Always within ``visible_charts``."""
    charts = Chart.filter(practice_id=viewer.practice.id)
    if not may_use_notes(viewer):
        return charts.filter(id__in=[])
    if viewer.role == Role.OWNER or viewer.has(Permission.VIEW_ALL_CHARTS):
        return charts
    return charts.filter(id__in=_assigned_to(viewer.member.id))


def visible_notes(viewer: Viewer) -> QuerySet[ChartNote]:
    """The notes the viewer may read: those of ``note_charts``."""
    if not may_use_notes(viewer):
        return ChartNote.filter(id__in=[])
    return ChartNote.filter(chart_id__in=Subquery(note_charts(viewer).values("id")))


def _assigned_to(member_id: uuid.UUID) -> Subquery:
    return Subquery(ChartAssignment.filter(clinician_id=member_id).values("chart_id"))


def record_reads(ctx: Context, action: str, chart_ids: Iterable[uuid.UUID], via: str) -> None:
    """Queue one audit event per chart read in this request (PHI never goes into the details: ids only).

    A chart already recorded with ``action`` in this request is not recorded again (the first route is named).
    """
    audit.defer_once(
        ctx, [audit.PendingEvent(action, encode("Chart", chart_id), {"via": via}) for chart_id in chart_ids]
    )


# ------------------------------------------------------------------ reads


async def get_chart(ctx: Context, chart_id: uuid.UUID, *, via: str = "node") -> Chart | None:
    """A chart the viewer may read, recorded as read; None for any other id. Batched per request.

    A partner token needs READ_CHARTS, the scope of Practice.charts, however it reaches the chart (node, or the
    chart of a billing row): without it every chart is None.
    """
    if ctx.viewer is None or not ctx.viewer.has_scope(TokenScope.READ_CHARTS):
        return None

    async def batch(ids: Sequence[uuid.UUID]) -> list[Chart | None]:
        rows = {c.id: c for c in await visible_charts(ctx.require_viewer()).filter(id__in=list(ids))}
        record_reads(ctx, "chart.read", rows, via)
        return [rows.get(i) for i in ids]

    return ctx.own(await ctx.loaders.get(f"charts.by_id.{via}", batch).load(chart_id))


async def require_chart(ctx: Context, global_id: str, *, field: str = "input.chartId") -> Chart:
    """The chart a mutation acts on: NOT_FOUND unless the viewer may read it (not recorded as a read)."""
    chart = ctx.own(
        await visible_charts(ctx.require_viewer()).filter(id=decode(global_id, "Chart", field=field)).first()
    )
    if chart is None:
        raise NotFound("no such chart")
    return chart


def search_term(search: str | None) -> str | None:
    """What `search` matches: a lower-cased substring of the patient's name (blank means no search)."""
    term = validation.text(search, field="search", max_length=200, required=False)
    return term.lower() if term else None


def filtered_charts(
    viewer: Viewer, *, clinician_id: str | None, search: str | None, status: ChartStatus | None
) -> QuerySet[Chart]:
    """Practice.charts' query: the visible charts, filtered by assigned clinician, status (ACTIVE unless another status
    is asked for: archived charts are left out of the list) and patient name."""
    charts = visible_charts(viewer)
    if clinician_id is not None:
        charts = charts.filter(id__in=_assigned_to(decode(clinician_id, "Member", field="clinicianId")))
    charts = charts.filter(status=status if status is not None else ChartStatus.ACTIVE)
    if (term := search_term(search)) is not None:
        # Tortoise escapes % and _ in the term; on PostgreSQL the trigram index serves this LIKE '%term%'.
        charts = charts.filter(patient_name_search__contains=term)
    return charts


async def list_charts(
    ctx: Context,
    *,
    first: int | None,
    after: str | None,
    clinician_id: str | None,
    search: str | None,
    status: ChartStatus | None,
) -> Page[Chart]:
    """Practice.charts, newest first (its charts are recorded as read where their fields are returned: ChartEdge)."""
    charts = filtered_charts(ctx.require_viewer(), clinician_id=clinician_id, search=search, status=status)
    async with planned_for_its_values() as conn:
        return await paginate(charts.using_db(conn), order=ORDER, first=first, after=after)


@asynccontextmanager
async def planned_for_its_values() -> AsyncIterator[BaseDBAsyncClient]:
    """A connection on which PostgreSQL plans each statement for its actual parameters.

    asyncpg prepares statements, and after five runs PostgreSQL may switch to a generic plan that cannot know how
    selective `LIKE $1` (or a clinician filter) is: for a rare name it then walks the practice's charts newest first
    instead of asking the trigram index (measured at 100,000 charts: 45-130 ms instead of 5-30 ms).
    """
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_script("SET LOCAL plan_cache_mode = force_custom_plan")
        yield conn


PageKey = tuple[uuid.UUID, int | None, str | None]


async def _pages_by_group(
    keys: Sequence[PageKey],
    fetch: Callable[[list[uuid.UUID], int | None, str | None], Awaitable[Mapping[uuid.UUID, Page | AppError]]],
) -> list[Page | AppError]:
    """DataLoader batch for nested connections: one fetch per distinct (first, after), an error per failed group."""
    groups: dict[tuple[int | None, str | None], list[uuid.UUID]] = defaultdict(list)
    for parent, first, after in keys:
        groups[(first, after)].append(parent)
    results: dict[Hashable, Page | AppError] = {}
    for (first, after), parents in groups.items():
        parents = list(dict.fromkeys(parents))
        try:
            pages = await fetch(parents, first, after)
        except AppError as error:
            pages = dict.fromkeys(parents, error)
        results.update({(parent, first, after): page for parent, page in pages.items()})
    return [results[key] for key in keys]


async def assigned_charts(ctx: Context, member_id: uuid.UUID, *, first: int | None, after: str | None) -> Page[Chart]:
    """Member.assignedCharts: the charts assigned to the member that the viewer may read, newest assignment first."""

    async def fetch(member_ids: list[uuid.UUID], first: int | None, after: str | None) -> dict[uuid.UUID, Page]:
        visible = visible_charts(ctx.require_viewer())
        assignments = ChartAssignment.filter(chart_id__in=Subquery(visible.values("id")))
        pages = await paginate_many(
            assignments, partition="clinician_id", keys=member_ids, order=ORDER, first=first, after=after
        )
        chart_ids = {a.chart_id for page in pages.values() for a in page.items}
        charts = {c.id: c for c in await visible.filter(id__in=list(chart_ids))} if chart_ids else {}
        return {member: _charts_of(page, charts) for member, page in pages.items()}

    loader = ctx.loaders.get("charts.assigned", partial(_pages_by_group, fetch=fetch))
    return await loader.load((member_id, first, after))


def _charts_of(page: Page[ChartAssignment], charts: dict[uuid.UUID, Chart]) -> Page[Chart]:
    """A page of assignments as a page of their charts (skipping any that stopped being visible in between)."""
    kept = [
        (charts[a.chart_id], cursor) for a, cursor in zip(page.items, page.cursors, strict=True) if a.chart_id in charts
    ]
    charts_kept, cursors = [chart for chart, _ in kept], [cursor for _, cursor in kept]
    return Page(charts_kept, cursors, page.has_next_page, page.has_previous_page, page.total_count)


async def assigned_clinicians(ctx: Context, chart_id: uuid.UUID) -> list[Member]:
    """Chart.assignedClinicians, first assigned first, then by name (the chart itself was already authorized)."""

    async def batch(chart_ids: Sequence[uuid.UUID]) -> list[list[Member]]:
        rows = (
            await ChartAssignment.filter(
                chart_id__in=list(chart_ids), clinician__practice_id=ctx.require_viewer().practice.id
            )
            .select_related("clinician")
            .order_by("created_at", "clinician__name", "clinician_id")
        )
        by_chart: dict[uuid.UUID, list[Member]] = defaultdict(list)
        for assignment in rows:
            by_chart[assignment.chart_id].append(assignment.clinician)
        return [by_chart[c] for c in chart_ids]

    return await ctx.loaders.get("charts.assigned_clinicians", batch).load(chart_id)


async def chart_notes(ctx: Context, chart_id: uuid.UUID, *, first: int | None, after: str | None) -> Page[ChartNote]:
    """Chart.notes, newest first: FORBIDDEN on a chart whose notes the viewer may not read (``note_charts``: e.g. a
    chart an ASSIGN_CHARTS holder found but is not assigned to, or one in a mutation's payload)."""

    async def fetch(
        chart_ids: list[uuid.UUID], first: int | None, after: str | None
    ) -> dict[uuid.UUID, Page | AppError]:
        viewer = ctx.require_viewer()
        # Tortoise types a flat values_list as tuples; it is a list of chart ids.
        readable = cast(
            list[uuid.UUID], await note_charts(viewer).filter(id__in=chart_ids).values_list("id", flat=True)
        )
        pages = await paginate_many(
            visible_notes(viewer), partition="chart_id", keys=readable, order=ORDER, first=first, after=after
        )
        record_reads(ctx, "chart.notes_read", pages, "Chart.notes")
        denied = Forbidden("you may not read the notes of this chart")
        return {c: pages.get(c, denied) for c in chart_ids}

    loader = ctx.loaders.get("charts.notes", partial(_pages_by_group, fetch=fetch))
    return await loader.load((chart_id, first, after))


async def get_note(ctx: Context, note_id: uuid.UUID) -> ChartNote | None:
    """A note the viewer may read (recorded as a notes read of its chart); None for any other id."""
    if ctx.viewer is None:
        return None

    async def batch(ids: Sequence[uuid.UUID]) -> list[ChartNote | None]:
        rows = {
            n.id: n for n in await visible_notes(ctx.require_viewer()).filter(id__in=list(ids)).select_related("chart")
        }
        events = [
            audit.PendingEvent(
                "chart.notes_read", encode("Chart", n.chart_id), {"via": "node", "note": encode("ChartNote", n.id)}
            )
            for n in rows.values()
        ]
        await audit.record_many(ctx, events)
        return [rows.get(i) for i in ids]

    note = await ctx.loaders.get("charts.note_by_id", batch).load(note_id)
    return note if note is not None and ctx.own(note.chart) is not None else None


# ------------------------------------------------------------------ changes


def _require_assignable(member: Member | None, *, field: str) -> Member:
    """Charts go only to active owners and clinicians of the viewer's practice (anyone else's id is NOT_FOUND)."""
    if member is None:
        raise NotFound("no such member")
    if member.status != MemberStatus.ACTIVE or member.role not in ASSIGNABLE_ROLES:
        raise BadInput("charts can be assigned only to active owners and clinicians", field=field)
    return member


def _date_of_birth(ctx: Context, value: date | None) -> date | None:
    if value is not None and not EARLIEST_DATE_OF_BIRTH <= value <= ctx.clock.today():
        raise BadInput(
            f"dateOfBirth must be between {EARLIEST_DATE_OF_BIRTH.isoformat()} and today", field="input.dateOfBirth"
        )
    return value


async def _clinicians_for_new_chart(ctx: Context, clinician_ids: Sequence[str] | None) -> list[Member]:
    """A clinician who creates a chart is assigned to it; assigning anyone else needs ASSIGN_CHARTS (the owner has
    it)."""
    viewer = ctx.require_viewer()
    requested = list(dict.fromkeys(decode_many(clinician_ids, "Member", field="input.clinicianIds")))
    if any(pk != viewer.member.id for pk in requested) and not viewer.has(Permission.ASSIGN_CHARTS):
        raise Forbidden("assigning clinicians to a chart needs the permission ASSIGN_CHARTS")
    clinicians = [
        _require_assignable(ctx.own(m), field="input.clinicianIds")
        for m in await members.member_loader(ctx).load_many(requested)
    ]
    if viewer.role == Role.CLINICIAN and viewer.member.id not in requested:
        clinicians.insert(0, viewer.member)
    return clinicians


async def create_chart(
    ctx: Context,
    *,
    patient_name: str,
    date_of_birth: date | None,
    email: str | None,
    phone: str | None,
    clinician_ids: Sequence[str] | None,
) -> Chart:
    """A new chart in the viewer's practice. Everything is checked before anything is written."""
    viewer = ctx.require_viewer()
    form = validation.Form()
    name = form.check(validation.text, patient_name, field="input.patientName")
    born = form.check(_date_of_birth, ctx, date_of_birth)
    email = form.check(validation.email, email, field="input.email") if email and email.strip() else None
    phone = form.check(validation.phone, phone, field="input.phone") if phone and phone.strip() else None
    form.done()
    clinicians = await _clinicians_for_new_chart(ctx, clinician_ids)
    now = ctx.clock.now()
    chart = Chart(
        id=uuid.uuid4(),
        practice_id=viewer.practice.id,
        patient_name=name,
        patient_name_search=name.lower(),
        date_of_birth=born,
        email=email,
        phone=phone,
        status=ChartStatus.ACTIVE,
        created_by_id=viewer.member.id,
        created_at=now,
    )
    gid = encode("Chart", chart.id)
    async with in_transaction() as conn:
        await chart.save(using_db=conn, force_create=True)
        if clinicians:
            await _lock_assignable([m.id for m in clinicians], conn, field="input.clinicianIds")
            await ChartAssignment.bulk_create([_assignment(chart.id, m.id, now) for m in clinicians], using_db=conn)
        await audit.record_many(
            ctx,
            [audit.PendingEvent("chart.created", gid), *(_assigned_event(gid, m.id) for m in clinicians)],
        )
    return chart


def _assignment(chart_id: uuid.UUID, clinician_id: uuid.UUID, now: datetime) -> ChartAssignment:
    return ChartAssignment(id=uuid.uuid4(), chart_id=chart_id, clinician_id=clinician_id, created_at=now)


def _assigned_event(chart_gid: str, clinician_id: uuid.UUID) -> audit.PendingEvent:
    return audit.PendingEvent("chart.assigned", chart_gid, {"clinician": encode("Member", clinician_id)})


async def _assignment_target(ctx: Context, chart_id: str, clinician_id: str) -> tuple[Chart, Member]:
    chart = await require_chart(ctx, chart_id)
    member = await members.get_member(ctx, decode(clinician_id, "Member", field="input.clinicianId"))
    return chart, _require_assignable(member, field="input.clinicianId")


async def _lock_assignable(
    member_ids: Sequence[uuid.UUID], connection: BaseDBAsyncClient | None, *, field: str
) -> None:
    """Lock the members about to get charts (in id order) and check, on their rows as they are now, that each is
    still an active owner or clinician. A role change locks the member before it takes their charts away
    (member_flows.update), so one of the two waits for the other: an administrator never keeps a chart."""
    if not member_ids:
        return
    locked = Member.select_for_update(no_key=True).using_db(connection).filter(id__in=list(member_ids))
    for member in await locked.order_by("id").only("id", "role", "status"):
        _require_assignable(member, field=field)


async def _lock_chart(chart: Chart, connection: BaseDBAsyncClient) -> None:
    """Serialise assignment changes of one chart (PostgreSQL row lock; SQLite serialises writes anyway)."""
    # NO KEY: notes may still be added meanwhile. .only(), not .values_list(): Tortoise drops the lock from values
    # queries.
    await Chart.select_for_update(no_key=True).using_db(connection).filter(id=chart.id).only("id")


async def assign(ctx: Context, chart_id: str, clinician_id: str) -> Chart:
    """Assign a clinician to a chart the viewer may read. Idempotent: assigning again changes nothing."""
    chart, clinician = await _assignment_target(ctx, chart_id, clinician_id)
    async with in_transaction() as conn:
        await _lock_chart(chart, conn)
        await _lock_assignable([clinician.id], conn, field="input.clinicianId")
        if not await ChartAssignment.filter(chart_id=chart.id, clinician_id=clinician.id).using_db(conn).exists():
            await _assignment(chart.id, clinician.id, ctx.clock.now()).save(using_db=conn, force_create=True)
            await audit.record_many(ctx, [_assigned_event(encode("Chart", chart.id), clinician.id)])
    return chart


async def unassign(ctx: Context, chart_id: str, clinician_id: str) -> Chart:
    """Take a clinician off a chart the viewer may read. Idempotent: taking off again changes nothing."""
    chart, clinician = await _assignment_target(ctx, chart_id, clinician_id)
    async with in_transaction() as conn:
        await _lock_chart(chart, conn)
        if await ChartAssignment.filter(chart_id=chart.id, clinician_id=clinician.id).using_db(conn).delete():
            await audit.record(
                ctx, "chart.unassigned", encode("Chart", chart.id), clinician=encode("Member", clinician.id)
            )
    return chart


async def add_note(ctx: Context, chart_id: str, body: str) -> ChartNote:
    """Append a clinical note to a chart whose notes the viewer reads (``note_charts``): NOT_FOUND for a chart the
    viewer
    cannot find, FORBIDDEN for one they find but whose notes are not theirs to read."""
    viewer = ctx.require_viewer()
    if not may_use_notes(viewer):
        raise Forbidden("only owners and clinicians write clinical notes")
    text = validation.text(body, field="input.body", max_length=NOTE_MAX_LENGTH)
    chart = await require_chart(ctx, chart_id)
    if not await note_charts(viewer).filter(id=chart.id).exists():
        raise Forbidden("you may not read or write the notes of this chart")
    note = ChartNote(
        id=uuid.uuid4(), chart_id=chart.id, author_id=viewer.member.id, body=text, created_at=ctx.clock.now()
    )
    async with in_transaction() as conn:
        await note.save(using_db=conn, force_create=True)
        await audit.record(ctx, "chart.note_added", encode("Chart", chart.id), note=encode("ChartNote", note.id))
    return note


# updateChart's fields: input name -> column.
CHART_COLUMNS = {
    "patientName": "patient_name",
    "dateOfBirth": "date_of_birth",
    "email": "email",
    "phone": "phone",
    "status": "status",
}


def editable_charts(viewer: Viewer) -> QuerySet[Chart]:
    """Who edits and archives a chart (updateChart): the owner and holders of VIEW_ALL_CHARTS or ASSIGN_CHARTS every
    chart of the practice, a clinician the charts assigned to them; nobody else (within ``visible_charts``)."""
    charts = Chart.filter(practice_id=viewer.practice.id)
    if any(viewer.has(permission) for permission in EDITS_EVERY_CHART):
        return charts
    if viewer.role == Role.CLINICIAN:
        return charts.filter(id__in=_assigned_to(viewer.member.id))
    return charts.filter(id__in=[])


def _chart_changes(ctx: Context, given: Mapping[str, object]) -> dict[str, object]:
    """The columns an update sets, checked as createChart checks them. ``given`` holds only the fields the caller
    sent (by input name): a left-out field stays as it is; null (or blank) clears dateOfBirth, email and phone;
    patientName and status cannot be cleared."""
    unknown = set(given) - set(CHART_COLUMNS)
    if unknown:
        raise ValueError(f"not fields of UpdateChartInput: {sorted(unknown)}")
    changes: dict[str, object] = {}
    if "patientName" in given:
        value = given["patientName"]
        name = validation.text(value if isinstance(value, str) else None, field="input.patientName")
        changes.update(patient_name=name, patient_name_search=name.lower())
    if "dateOfBirth" in given:
        born = given["dateOfBirth"]
        changes["date_of_birth"] = _date_of_birth(ctx, born if isinstance(born, date) else None)
    for name, check in (("email", validation.email), ("phone", validation.phone)):
        if name in given:
            value = given[name]
            changes[name] = check(value, field=f"input.{name}") if isinstance(value, str) and value.strip() else None
    if "status" in given:
        if given["status"] is None:
            raise BadInput("status cannot be cleared: give ACTIVE or ARCHIVED", field="input.status")
        changes["status"] = ChartStatus(given["status"])
    return changes


async def update_chart(ctx: Context, chart_id: str, given: Mapping[str, object]) -> Chart:
    """Change a chart's demographics and status (see ``_chart_changes``). NOT_FOUND for a chart the viewer cannot find,
    FORBIDDEN for one they find but may not edit (``editable_charts``). Archiving hides the chart from Practice.charts
    (unless asked for) and refuses new charges; its history stays readable. An update that changes nothing writes
    nothing; any other is audited with the names of the fields it changed (never their values: PHI)."""
    viewer = ctx.require_viewer()
    chart = await require_chart(ctx, chart_id)
    if not await editable_charts(viewer).filter(id=chart.id).exists():
        raise Forbidden("editing a chart needs its assignment, VIEW_ALL_CHARTS or ASSIGN_CHARTS")
    changes = _chart_changes(ctx, given)
    async with in_transaction() as conn:
        # A status change takes the chart's row lock outright (FOR UPDATE): it waits for the charges being recorded on
        # the chart (each holds a key-share lock through its foreign key) and they, once it commits, see the new status.
        # Demographics alone take the lighter lock of assignments, which lets notes and charges go on meanwhile.
        locked = Chart.select_for_update(no_key="status" not in changes).using_db(conn)
        current = ctx.own(await locked.filter(id=chart.id).first())
        if current is None:
            raise NotFound("no such chart")
        changed = {column: value for column, value in changes.items() if getattr(current, column) != value}
        if not changed:
            return current
        await Chart.filter(id=current.id, practice_id=viewer.practice.id).using_db(conn).update(**changed)
        for column, value in changed.items():
            setattr(current, column, value)
        names = sorted(name for name, column in CHART_COLUMNS.items() if column in changed)
        details: dict[str, object] = {"fields": names}
        if "status" in changed:
            details["status"] = current.status.value
        await audit.record(ctx, "chart.updated", encode("Chart", current.id), **details)
    return current


async def unassign_all(member_id: uuid.UUID, *, connection: BaseDBAsyncClient | None = None) -> int:
    return await ChartAssignment.filter(clinician_id=member_id).using_db(connection).delete()


@dataclass(frozen=True)
class Reassigned:
    """What ``reassign_all`` moved: every chart taken off the leaving member, and those the successor did not hold
    yet."""

    from_id: uuid.UUID
    to_id: uuid.UUID
    chart_ids: list[uuid.UUID]
    added: list[uuid.UUID]

    def events(self, via: str) -> list[audit.PendingEvent]:
        """One audit event per chart and change, as unassignChart and assignChart record them (target: the chart)."""
        events = []
        for chart_id in self.chart_ids:
            gid = encode("Chart", chart_id)
            events.append(
                audit.PendingEvent("chart.unassigned", gid, {"clinician": encode("Member", self.from_id), "via": via})
            )
            if chart_id in self.added:
                events.append(
                    audit.PendingEvent("chart.assigned", gid, {"clinician": encode("Member", self.to_id), "via": via})
                )
        return events


async def reassign_all(
    from_id: uuid.UUID, to_id: uuid.UUID, *, now: datetime, connection: BaseDBAsyncClient | None = None
) -> Reassigned:
    """Move every chart assigned to ``from_id`` to ``to_id`` (in the caller's transaction). Returns what moved."""
    # Tortoise types a flat values_list as tuples; it is a list of chart ids.
    assigned = ChartAssignment.filter(clinician_id=from_id).using_db(connection)
    chart_ids = cast(list[uuid.UUID], await assigned.values_list("chart_id", flat=True))
    if not chart_ids:
        return Reassigned(from_id, to_id, [], [])
    # The same per-chart lock as assign/unassign, so a concurrent assignChart cannot collide with the move.
    await Chart.select_for_update(no_key=True).using_db(connection).filter(id__in=chart_ids).order_by("id").only("id")
    await _lock_assignable([to_id], connection, field="input.reassignChartsTo")
    # Read again under the locks: a chart unassigned meanwhile is not moved (nor audited as moved).
    chart_ids = sorted(
        cast(list[uuid.UUID], await assigned.filter(chart_id__in=chart_ids).values_list("chart_id", flat=True))
    )
    already = set(
        await ChartAssignment.filter(clinician_id=to_id, chart_id__in=chart_ids)
        .using_db(connection)
        .values_list("chart_id", flat=True)
    )
    new = [_assignment(c, to_id, now) for c in chart_ids if c not in already]
    if new:
        await ChartAssignment.bulk_create(new, using_db=connection)
    await ChartAssignment.filter(clinician_id=from_id, chart_id__in=chart_ids).using_db(connection).delete()
    return Reassigned(from_id, to_id, chart_ids, [a.chart_id for a in new])
