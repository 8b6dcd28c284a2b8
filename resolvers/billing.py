"""Patient billing: the group ledger, balances, the single-clinician rule, payments, statements and invoices.

A group bills patients as one practice, but every entry belongs to one clinician.

- ``visible(model, viewer, clinicians)`` is THE access query for every billing row (entries, balances,
  statements, invoices): the whole practice for holders of VIEW_BILLING (the owner holds it), a clinician's
  own rows otherwise, and nothing (FORBIDDEN) for anyone else. Lists, node(), loaders and the statement PDF
  all start from it.
- Entries are appended, never updated or deleted; each moves its running balance (per practice, clinician
  and chart) in the same transaction, so a balance is a sum over a few rows however long the ledger grows.
- Money moves (payments, refunds, statements, invoices) for one clinician at a time:
  ``require_single_clinician`` is the one guard for all of them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from strawberry.dataloader import DataLoader
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import BadInput, Conflict, Forbidden, NotFound, SingleClinicianRequired
from models import (
    BillingBalance,
    BillingCounter,
    BillingEntry,
    Chart,
    Invoice,
    InvoiceLine,
    Member,
    Statement,
    StatementLine,
    VoidedInvoiceLine,
)
from models.billing import BillingEntryKind as Kind
from models.billing import InvoiceStatus
from models.charts import ChartStatus
from models.enums import Permission, Role
from resolvers import audit, charts, validation
from resolvers.context import Context
from resolvers.ids import decode, decode_many, encode
from resolvers.members import get_member, member_loader
from resolvers.money import Money
from resolvers.pagination import Page, encode_cursor, page_size, paginate

M = TypeVar("M", bound=Model)

MAX_AMOUNT = Decimal("1000000.00")
DESCRIPTION_MAX = 500
VOID_REASON_MAX = 500
MAX_INVOICE_ENTRIES = 500
# Dates may run up to a day ahead of UTC: a practice east of Greenwich is already in tomorrow.
DATE_SLACK = timedelta(days=1)
# Who can be the clinician of an entry.
BILLING_ROLES = frozenset({Role.OWNER, Role.CLINICIAN})

# Which way each kind moves the balance: charges + refunds - payments + adjustments.
SIGN = {Kind.CHARGE: 1, Kind.REFUND: 1, Kind.PAYMENT: -1, Kind.ADJUSTMENT: 1}
EVENTS = {
    Kind.CHARGE: "billing.charge_recorded",
    Kind.PAYMENT: "billing.payment_recorded",
    Kind.ADJUSTMENT: "billing.adjustment_recorded",
    Kind.REFUND: "billing.refund_recorded",
}

# Related rows every billing type shows (patient name, clinician, creator): joined, not loaded one by one.
RELATED = ("chart", "clinician", "created_by")
# What a list reads of each entry, as plain values (``paginate(values=...)``): its columns and the patient's name.
# (Joining the clinician's columns too was measured: Tortoise builds a 24-column values query more slowly than a
# second statement for the page's clinicians costs.)
ENTRY_VALUES = (
    "id",
    "kind",
    "delta_cents",
    "occurred_on",
    "description",
    "created_at",
    "invoice_id",
    "chart_id",
    "clinician_id",
    "created_by_id",
    "chart__patient_name",
)
HISTORY_ORDER = ["-occurred_on", "-created_at", "-id"]
CHRONOLOGICAL = ["occurred_on", "created_at", "id"]
NEWEST_NUMBER_FIRST = ["-sequence", "-id"]
# The date columns each list's from/to filter on: (where a row's span starts, where it ends).
ENTRY_DATES = ("occurred_on", "occurred_on")
STATEMENT_DATES = ("period_start", "period_end")
INVOICE_DATES = ("issued_on", "issued_on")


@dataclass(frozen=True, slots=True)
class EntryRecord:
    """A ledger entry as the API shows it: its columns, the patient's name and its clinician.

    Lists read entries as plain values (``ENTRY_VALUES``: one join, for the patient's name) and their clinicians
    through the request's member loader (one query for the page), instead of four model objects per row (entry,
    chart, clinician, recorder): several times cheaper per row. Who recorded an entry is shown by few screens: it is
    loaded when asked for (``created_by_id``, through the same loader). Whatever holds a model row converts it
    (``of_row``).
    """

    id: uuid.UUID
    kind: Kind
    delta_cents: int
    occurred_on: date
    description: str
    created_at: datetime
    invoice_id: uuid.UUID | None
    chart_id: uuid.UUID
    patient_name: str
    clinician: Member
    created_by_id: uuid.UUID

    @classmethod
    def of_row(cls, entry: BillingEntry) -> EntryRecord:
        """From a model row fetched with its chart and clinician (``RELATED``)."""
        return cls(
            entry.id,
            entry.kind,
            entry.delta_cents,
            entry.occurred_on,
            entry.description,
            entry.created_at,
            entry.invoice_id,
            entry.chart_id,
            entry.chart.patient_name,
            entry.clinician,
            entry.created_by_id,
        )


def _entry_member(member: Member | None, member_id: uuid.UUID, role: str) -> Member:
    """A member an entry names, as the viewer's member loader found it. An entry's members belong to its practice,
    which is the viewer's: a miss is a broken invariant, not a caller's error."""
    if member is None:
        raise LookupError(f"{role} {member_id} of a visible entry is not in the viewer's practice")
    return member


async def _records(ctx: Context, page: Page[dict[str, Any]]) -> Page[EntryRecord]:
    """A page of ``ENTRY_VALUES`` rows as records, their clinicians loaded together (and shared with the request)."""
    member_ids = list(dict.fromkeys(row["clinician_id"] for row in page.items))
    members = {
        member_id: _entry_member(member, member_id, "clinician")
        for member_id, member in zip(member_ids, await member_loader(ctx).load_many(member_ids), strict=True)
    }
    records = [
        EntryRecord(
            row["id"],
            row["kind"],
            row["delta_cents"],
            row["occurred_on"],
            row["description"],
            row["created_at"],
            row["invoice_id"],
            row["chart_id"],
            row["chart__patient_name"],
            members[row["clinician_id"]],
            row["created_by_id"],
        )
        for row in page.items
    ]
    return Page(records, page.cursors, page.has_next_page, page.has_previous_page, page.total_count)


async def entry_recorder(ctx: Context, entry: EntryRecord) -> Member:
    """Who recorded an entry: loaded only when asked for, through the request's member loader."""
    return _entry_member(await get_member(ctx, entry.created_by_id), entry.created_by_id, "recorder")


# ------------------------------------------------------------------ money


def cents(amount: Decimal) -> int:
    """A validated amount (two decimals at most) in cents."""
    return int(amount.scaleb(2))


def money(value: int) -> Money:
    return Money(Decimal(int(value)).scaleb(-2))


def entry_amount(entry: BillingEntry | EntryRecord) -> Money:
    """What an entry shows: the signed correction of an adjustment, the positive sum of anything else."""
    return money(entry.delta_cents if entry.kind == Kind.ADJUSTMENT else abs(entry.delta_cents))


async def _total(queryset: QuerySet, column: str) -> int:
    """SUM(column) over the queryset, in SQL (exact: the column holds integer cents)."""
    # Tortoise types a flat values_list as tuples; it is a list of the column's values.
    values = cast(list[int | None], await queryset.annotate(total=Sum(column)).values_list("total", flat=True))
    return int(values[0] or 0) if values else 0


# ------------------------------------------------------------------ access


def billed_clinicians(viewer: Viewer, requested: Sequence[uuid.UUID] = ()) -> list[uuid.UUID] | None:
    """Whose billing the viewer sees, narrowed to ``requested``; None means every clinician of the practice.

    Holders of VIEW_BILLING (and so the owner) see anyone's, the whole group when nobody is named. A clinician
    without it sees only their own: naming nobody means themselves, naming anyone else is FORBIDDEN. Anyone
    else (an administrator without VIEW_BILLING) sees nothing: FORBIDDEN.
    """
    if viewer.has(Permission.VIEW_BILLING):
        return list(dict.fromkeys(requested)) or None
    if viewer.role == Role.CLINICIAN:
        if any(member_id != viewer.member.id for member_id in requested):
            raise Forbidden("without VIEW_BILLING you see only your own billing")
        return [viewer.member.id]
    raise Forbidden("billing needs the permission VIEW_BILLING")


def visible(model: type[M], viewer: Viewer, requested: Sequence[uuid.UUID] = ()) -> QuerySet[M]:
    """THE access query for billing rows (entries, balances, statements, invoices): see ``billed_clinicians``."""
    rows = model.filter(practice_id=viewer.practice.id)
    clinicians = billed_clinicians(viewer, requested)
    return rows if clinicians is None else rows.filter(clinician_id__in=clinicians)


async def _find(model: type[M], ctx: Context, pk: uuid.UUID) -> M | None:
    """One billing row by id, or None when the viewer may not see it (as for an id of another practice)."""
    try:
        rows = visible(model, ctx.require_viewer())
    except Forbidden:
        return None
    return await rows.filter(id=pk).select_related(*RELATED).first()


async def find_entry(ctx: Context, pk: uuid.UUID) -> EntryRecord | None:
    entry = await _find(BillingEntry, ctx, pk)
    return EntryRecord.of_row(entry) if entry is not None else None


async def find_statement(ctx: Context, pk: uuid.UUID) -> Statement | None:
    return await _find(Statement, ctx, pk)


async def find_invoice(ctx: Context, pk: uuid.UUID) -> Invoice | None:
    return await _find(Invoice, ctx, pk)


async def readable_chart(ctx: Context, chart_id: uuid.UUID, *, via: str) -> Chart | None:
    """The chart of a billing row for those who may read it, None for the others (read and recorded by the charts
    area, batched per request).

    Whoever sees the row sees its patient's name; only chart readers get the chart (``charts.visible_charts``: a
    holder of VIEW_BILLING alone does not).
    """
    return await charts.get_chart(ctx, chart_id, via=via)


async def entry_invoice(ctx: Context, entry: EntryRecord) -> Invoice | None:
    """The invoice a payment pays, or the invoice a charge is on. Same clinician and chart as the entry."""
    if entry.invoice_id is not None:
        return await _invoice_loader(ctx).load(entry.invoice_id)
    if entry.kind != Kind.CHARGE:
        return None

    async def batch(entry_ids: Sequence[uuid.UUID]) -> list[uuid.UUID | None]:
        lines = dict(await InvoiceLine.filter(entry_id__in=list(entry_ids)).values_list("entry_id", "invoice_id"))
        return [lines.get(entry_id) for entry_id in entry_ids]

    invoice_id = await ctx.loaders.get("billing.invoice_of_charge", batch).load(entry.id)
    return await _invoice_loader(ctx).load(invoice_id) if invoice_id else None


def _invoice_loader(ctx: Context) -> DataLoader[uuid.UUID, Invoice | None]:
    async def batch(invoice_ids: Sequence[uuid.UUID]) -> list[Invoice | None]:
        rows = Invoice.filter(practice_id=ctx.require_viewer().practice.id, id__in=list(invoice_ids)).select_related(
            *RELATED
        )
        found = {row.id: row for row in await rows}
        return [found.get(invoice_id) for invoice_id in invoice_ids]

    return ctx.loaders.get("billing.invoices", batch)


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Filter:
    """BillingFilter / BalanceFilter as given: clinicians and chart as global IDs, dates, kinds."""

    clinician_ids: Sequence[str] | None = None
    chart_id: str | None = None
    from_date: date | None = None
    to_date: date | None = None
    kinds: list[Kind] | None = None


def _selected(
    model: type[M], viewer: Viewer, selection: Filter | None, dates: tuple[str, str] | None = None
) -> QuerySet[M]:
    """The visible rows narrowed by the filter; ``dates`` names the row's (start, end) date columns, if it has any."""
    selection = selection or Filter()
    rows = visible(model, viewer, decode_many(selection.clinician_ids, "Member", field="filter.clinicianIds"))
    if selection.chart_id is not None:
        rows = rows.filter(chart_id=decode(selection.chart_id, "Chart", field="filter.chartId"))
    if selection.from_date and selection.to_date and selection.from_date > selection.to_date:
        raise BadInput("from must not be after to", field="filter.from")
    if dates is not None:
        starts, ends = dates
        if selection.from_date is not None:
            rows = rows.filter(**{f"{ends}__gte": selection.from_date})
        if selection.to_date is not None:
            rows = rows.filter(**{f"{starts}__lte": selection.to_date})
    return rows


async def _page(
    rows: QuerySet, order: list[str], first: int | None, after: str | None, values: Sequence[str] | None = None
) -> Page:
    """A page of rows. Its total is given only when it costs nothing (a first page holding every row), else null."""
    page = await paginate(rows, order=order, first=first, after=after, count=False, values=values)
    if not after and not page.has_next_page and first != 0:
        page.total_count = len(page.items)
    return page


BalanceKey = tuple[tuple[uuid.UUID, ...] | None, uuid.UUID | None]


async def current_balance(ctx: Context, selection: Filter | None) -> Money:
    """Charges + refunds - payments + adjustments for the selected clinicians and chart, as of now: a sum of
    running balances, one row per clinician and chart. The balances a request asks for (e.g. one per clinician,
    aliased) are summed together, in one statement per chart filter (see ``_balances``)."""
    selection = selection or Filter()
    viewer = ctx.require_viewer()
    clinicians = billed_clinicians(viewer, decode_many(selection.clinician_ids, "Member", field="filter.clinicianIds"))
    chart = decode(selection.chart_id, "Chart", field="filter.chartId") if selection.chart_id is not None else None
    key: BalanceKey = (tuple(clinicians) if clinicians is not None else None, chart)
    loader: DataLoader[BalanceKey, int] = ctx.loaders.get("billing.balances", lambda keys: _balances(viewer, keys))
    return money(await loader.load(key))


async def _balances(viewer: Viewer, keys: Sequence[BalanceKey]) -> list[int]:
    """DataLoader batch: the balance in cents of each (clinicians, or None for every visible one; chart or None)
    key, already narrowed by ``billed_clinicians``. One key is one SUM; several with the same chart filter share one
    SUM grouped by clinician, added up per key."""
    if len(keys) == 1:
        clinicians, chart = keys[0]
        return [await _total(_balance_rows(viewer, clinicians, chart), "balance_cents")]
    by_chart: dict[uuid.UUID | None, list[BalanceKey]] = defaultdict(list)
    for key in keys:
        by_chart[key[1]].append(key)
    totals: dict[BalanceKey, int] = {}
    for chart, group in by_chart.items():
        wanted = (
            None
            if any(clinicians is None for clinicians, _ in group)
            else sorted({c for cl, _ in group for c in cl or ()})
        )
        grouped = _balance_rows(viewer, wanted, chart).annotate(total=Sum("balance_cents")).group_by("clinician_id")
        sums = {clinician: int(total or 0) for clinician, total in await grouped.values_list("clinician_id", "total")}
        for clinicians, _ in group:
            totals[(clinicians, chart)] = (
                sum(sums.values()) if clinicians is None else sum(sums.get(c, 0) for c in clinicians)
            )
    return [totals[key] for key in keys]


def _balance_rows(
    viewer: Viewer, clinicians: Sequence[uuid.UUID] | None, chart: uuid.UUID | None
) -> QuerySet[BillingBalance]:
    rows = visible(BillingBalance, viewer, clinicians or ())
    return rows if chart is None else rows.filter(chart_id=chart)


async def history(ctx: Context, selection: Filter | None, *, first: int | None, after: str | None) -> Page[EntryRecord]:
    """Entries newest first (occurredOn, createdAt, id), filtered by clinicians, chart, dates and kinds."""
    rows = _selected(BillingEntry, ctx.require_viewer(), selection, ENTRY_DATES)
    if selection is not None and selection.kinds:
        rows = rows.filter(kind__in=[Kind(k) for k in selection.kinds])
    return await _records(ctx, await _page(rows, HISTORY_ORDER, first, after, values=ENTRY_VALUES))


async def statements(
    ctx: Context, selection: Filter | None, *, first: int | None, after: str | None
) -> Page[Statement]:
    """Statements newest number first; from/to select the periods that overlap them."""
    rows = _selected(Statement, ctx.require_viewer(), selection, STATEMENT_DATES)
    return await _page(rows.select_related(*RELATED), NEWEST_NUMBER_FIRST, first, after)


async def invoices(
    ctx: Context, selection: Filter | None, status: InvoiceStatus | None, *, first: int | None, after: str | None
) -> Page[Invoice]:
    """Invoices newest number first; from/to select the issue dates."""
    rows = _selected(Invoice, ctx.require_viewer(), selection, INVOICE_DATES)
    if status is not None:
        rows = rows.filter(status=InvoiceStatus(status))
    return await _page(rows.select_related(*RELATED), NEWEST_NUMBER_FIRST, first, after)


@dataclass(frozen=True)
class _Lines:
    """How entries hang on a statement or an invoice: the line table, its parent column, the path from an entry."""

    model: type[Model]
    parent: str
    path: str


STATEMENT_LINES = _Lines(StatementLine, "statement_id", "statement_lines__statement_id")
INVOICE_LINES = _Lines(InvoiceLine, "invoice_id", "invoice_line__invoice_id")
# A void invoice's former charges (its lines moved here when it was voided).
VOIDED_INVOICE_LINES = _Lines(VoidedInvoiceLine, "invoice_id", "voided_invoice_lines__invoice_id")


async def statement_entries(
    ctx: Context, statement: Statement, *, first: int | None, after: str | None
) -> Page[EntryRecord]:
    """The entries frozen on a statement, oldest first (whoever sees the statement sees them: same clinician and
    chart)."""
    return await _line_entries(ctx, STATEMENT_LINES, statement.id, first, after)


async def invoice_entries(ctx: Context, invoice: Invoice, *, first: int | None, after: str | None) -> Page[EntryRecord]:
    """The charges on an invoice, oldest first; for a void invoice, the charges it held when it was voided."""
    lines = VOIDED_INVOICE_LINES if invoice.status == InvoiceStatus.VOID else INVOICE_LINES
    return await _line_entries(ctx, lines, invoice.id, first, after)


async def all_statement_entries(statement: Statement) -> list[BillingEntry]:
    """Every entry of a statement, oldest first: for its PDF."""
    return (
        await BillingEntry.filter(statement_lines__statement_id=statement.id)
        .select_related(*RELATED)
        .order_by(*CHRONOLOGICAL)
    )


async def _line_entries(
    ctx: Context, lines: _Lines, parent_id: uuid.UUID, first: int | None, after: str | None
) -> Page[EntryRecord]:
    """Entries on one statement or invoice, oldest first.

    The first pages of every statement (invoice) in a response load together, in two queries however many there
    are, with exact totals; a later page (``after``) pages that one parent by keyset.
    """
    if after is not None:
        rows = BillingEntry.filter(**{lines.path: parent_id})
        return await _records(ctx, await _page(rows, CHRONOLOGICAL, first, after, values=ENTRY_VALUES))
    size = page_size(first)

    async def batch(parent_ids: Sequence[uuid.UUID]) -> list[Page[EntryRecord]]:
        links = await lines.model.filter(**{f"{lines.parent}__in": list(parent_ids)}).values_list(
            lines.parent, "entry_id"
        )
        rows = BillingEntry.filter(id__in=[entry_id for _, entry_id in links]).select_related(*RELATED)
        entries = {e.id: EntryRecord.of_row(e) for e in await rows}
        grouped: dict[uuid.UUID, list[EntryRecord]] = {parent: [] for parent in parent_ids}
        for parent, entry_id in links:
            grouped[parent].append(entries[entry_id])
        return [_first_page(grouped[parent], size) for parent in parent_ids]

    return await ctx.loaders.get(f"billing.{lines.model.__name__}.first:{size}", batch).load(parent_id)


def _first_page(rows: list[EntryRecord], size: int) -> Page[EntryRecord]:
    """The first page of rows already in memory, in CHRONOLOGICAL order, with the cursors ``paginate`` would give."""
    rows = sorted(rows, key=lambda e: tuple(getattr(e, name) for name in CHRONOLOGICAL))
    items = rows[:size]
    cursors = [encode_cursor([getattr(e, name) for name in CHRONOLOGICAL]) for e in items]
    return Page(items, cursors, len(rows) > size, False, len(rows))


# ------------------------------------------------------------------ who and which chart


async def require_billable(ctx: Context, clinician_id: str, chart_id: str, *, field: str) -> tuple[Member, Chart]:
    """The clinician and chart an entry, statement or invoice is for.

    The clinician: a member of the practice (else NOT_FOUND), the caller themself unless the caller holds
    MANAGE_BILLING (else FORBIDDEN). The chart: one the caller can read (``charts.require_chart``, else NOT_FOUND). And
    the clinician
    must treat the chart, the caller included: the owner, a clinician assigned to it or holding VIEW_ALL_CHARTS
    (``charts.note_charts``; else BAD_USER_INPUT). Finding every chart (ASSIGN_CHARTS, MANAGE_BILLING) is not treating
    it.
    """
    viewer = ctx.require_viewer()
    clinician = await get_member(ctx, decode(clinician_id, "Member", field=field))
    if clinician is None:
        raise NotFound("no such member")
    is_self = clinician.id == viewer.member.id
    if not is_self and not viewer.has(Permission.MANAGE_BILLING):
        raise Forbidden("you bill only for yourself unless you hold MANAGE_BILLING")
    chart = await charts.require_chart(ctx, chart_id)
    if clinician.role not in BILLING_ROLES:
        raise BadInput("the clinician must be the owner or a clinician of the practice", field=field)
    if not await charts.note_charts(Viewer(member=clinician, practice=viewer.practice)).filter(id=chart.id).exists():
        raise BadInput(
            "the clinician does not treat this chart (neither assigned to it nor holding VIEW_ALL_CHARTS)", field=field
        )
    return clinician, chart


async def require_single_clinician(
    ctx: Context, clinician_ids: Sequence[str] | None, chart_id: str
) -> tuple[Member, Chart]:
    """The one guard of every money move (payments, refunds, statements, invoices).

    ``clinician_ids`` is the billing screen's clinician selection: it must hold exactly one id, whoever the
    caller is (none, an empty list or several are SINGLE_CLINICIAN_REQUIRED, before anything else is looked
    at), and then that clinician and the chart must pass ``require_billable``.
    """
    if not clinician_ids or len(clinician_ids) != 1:
        raise SingleClinicianRequired(
            "money moves for one clinician at a time: select exactly one clinician", field="input.clinicianIds"
        )
    return await require_billable(ctx, clinician_ids[0], chart_id, field="input.clinicianIds")


# ------------------------------------------------------------------ input checks


def _amount(value: Decimal, *, signed: bool = False) -> int:
    """Cents of a valid amount: two decimals at most, non-zero, at most MAX_AMOUNT; positive unless ``signed``."""
    return cents(validation.amount(value, field="input.amount", max_value=MAX_AMOUNT, allow_negative=signed))


def _not_in_future(ctx: Context, day: date, *, field: str) -> date:
    if day > (ctx.clock.now() + DATE_SLACK).date():
        raise BadInput(f"{field.rsplit('.', 1)[-1]} is in the future", field=field)
    return day


def _description(value: str | None, *, default: str | None = None) -> str:
    """The description given; required unless there is a default for a blank one."""
    if default is None:
        return validation.text(value, field="input.description", max_length=DESCRIPTION_MAX)
    return validation.text(value, field="input.description", max_length=DESCRIPTION_MAX, required=False) or default


# ------------------------------------------------------------------ writing


async def _locked_row(model: type[M], conn: Any, key: dict[str, Any], **defaults: Any) -> M:
    """The row with ``key``, created if missing, locked FOR UPDATE until the transaction ends (PostgreSQL;
    SQLite serialises transactions). Concurrent writers queue on it, so none of their updates is lost."""
    await model.bulk_create([model(id=uuid.uuid4(), **key, **defaults)], ignore_conflicts=True, using_db=conn)
    return await model.select_for_update().using_db(conn).get(**key)


async def _take_number(ctx: Context, conn: Any, counter: str) -> int:
    """The practice's next ``counter`` number, in the caller's transaction: the counter row stays locked until it
    commits, so concurrent takers queue (no duplicates), and a rolled-back transaction gives its number back (no
    gaps)."""
    key = {"practice_id": ctx.require_viewer().practice.id, "name": counter}
    row = await _locked_row(BillingCounter, conn, key, last_value=0)
    row.last_value += 1
    await BillingCounter.filter(id=row.id, **key).using_db(conn).update(last_value=row.last_value)
    return row.last_value


async def _append(
    ctx: Context,
    conn: Any,
    *,
    kind: Kind,
    clinician: Member,
    chart: Chart,
    amount_cents: int,
    occurred_on: date,
    description: str,
    invoice: Invoice | None = None,
) -> tuple[BillingEntry, int]:
    """Append one entry and move its running balance, in the caller's transaction. Returns (entry, new balance)."""
    viewer, now = ctx.require_viewer(), ctx.clock.now()
    delta = SIGN[kind] * amount_cents
    entry = await BillingEntry.create(
        id=uuid.uuid4(),
        practice_id=viewer.practice.id,
        chart=chart,
        clinician=clinician,
        created_by=viewer.member,
        kind=kind,
        delta_cents=delta,
        occurred_on=occurred_on,
        description=description,
        invoice=invoice,
        created_at=now,
        using_db=conn,
    )
    key = {"practice_id": viewer.practice.id, "clinician_id": clinician.id, "chart_id": chart.id}
    balance = await _locked_row(BillingBalance, conn, key, balance_cents=0, updated_at=now)
    balance.balance_cents += delta
    balance.updated_at = now
    await (
        BillingBalance.filter(id=balance.id, **key)
        .using_db(conn)
        .update(balance_cents=balance.balance_cents, updated_at=now)
    )
    return entry, balance.balance_cents


async def _audit_entry(ctx: Context, entry: BillingEntry, **extra: Any) -> None:
    await audit.record(
        ctx,
        EVENTS[entry.kind],
        encode("BillingEntry", entry.id),
        amount=str(entry_amount(entry).amount),
        clinician=encode("Member", entry.clinician_id),
        chart=encode("Chart", entry.chart_id),
        **extra,
    )


@dataclass(frozen=True)
class Recorded:
    """What recording an entry wrote: the entry, the clinician's balance for the chart after it, the invoice paid."""

    entry: EntryRecord
    balance: Money
    invoice: Invoice | None = None


async def record_charge(
    ctx: Context, *, chart_id: str, clinician_id: str, amount: Decimal, occurred_on: date, description: str
) -> Recorded:
    """A fee for a service, for one clinician (the caller unless MANAGE_BILLING) on a chart both can see."""
    return await _record(ctx, Kind.CHARGE, chart_id, clinician_id, amount, occurred_on, description)


async def record_adjustment(
    ctx: Context, *, chart_id: str, clinician_id: str, amount: Decimal, occurred_on: date, description: str
) -> Recorded:
    """A signed correction (e.g. a write-off): as a charge, but the amount may be negative."""
    return await _record(ctx, Kind.ADJUSTMENT, chart_id, clinician_id, amount, occurred_on, description, signed=True)


def _entry_fields(
    ctx: Context,
    amount: Decimal,
    occurred_on: date,
    description: str | None,
    *,
    signed: bool = False,
    default: str | None = None,
) -> tuple[int, date, str]:
    """An entry's amount (cents), day and description, every one checked: all that are invalid are refused together."""
    form = validation.Form()
    amount_cents = form.check(_amount, amount, signed=signed)
    day = form.check(_not_in_future, ctx, occurred_on, field="input.occurredOn")
    text = form.check(_description, description, default=default)
    form.done()
    return amount_cents, day, text


async def _record(
    ctx: Context,
    kind: Kind,
    chart_id: str,
    clinician_id: str,
    amount: Decimal,
    occurred_on: date,
    description: str,
    *,
    signed: bool = False,
) -> Recorded:
    amount_cents, occurred_on, text = _entry_fields(ctx, amount, occurred_on, description, signed=signed)
    clinician, chart = await require_billable(ctx, clinician_id, chart_id, field="input.clinicianId")
    if kind == Kind.CHARGE:
        _refuse_archived(chart)
    async with in_transaction() as conn:
        entry, balance = await _append(
            ctx,
            conn,
            kind=kind,
            clinician=clinician,
            chart=chart,
            amount_cents=amount_cents,
            occurred_on=occurred_on,
            description=text,
        )
        if kind == Kind.CHARGE:
            # Again after the insert, whose foreign key holds a key-share lock on the chart until this commits: an
            # archive (charts.update_chart locks the chart FOR UPDATE) either waits for this charge or, having
            # committed first, is seen here.
            _refuse_archived(await Chart.filter(id=chart.id).using_db(conn).only("id", "status").get())
        await _audit_entry(ctx, entry)
    return Recorded(EntryRecord.of_row(entry), money(balance))


def _refuse_archived(chart: Chart) -> None:
    """An archived chart takes no new charges (payments, refunds, adjustments, statements and invoices go on)."""
    if chart.status == ChartStatus.ARCHIVED:
        raise BadInput("the chart is archived: it takes no new charges", field="input.chartId")


async def record_payment(
    ctx: Context,
    *,
    clinician_ids: Sequence[str] | None,
    chart_id: str,
    amount: Decimal,
    occurred_on: date,
    description: str | None,
    invoice_id: str | None,
) -> Recorded:
    """Money received for one clinician and chart: lowers that balance. With an invoice, pays it: its amount due
    falls by the payment (which may not exceed it) and it becomes PAID once covered."""
    clinician, chart = await require_single_clinician(ctx, clinician_ids, chart_id)
    amount_cents, occurred_on, text = _entry_fields(ctx, amount, occurred_on, description, default="Payment")
    invoice_pk = decode(invoice_id, "Invoice", field="input.invoiceId") if invoice_id is not None else None
    async with in_transaction() as conn:
        invoice = await _pay_invoice(ctx, conn, invoice_pk, clinician, chart, amount_cents) if invoice_pk else None
        entry, balance = await _append(
            ctx,
            conn,
            kind=Kind.PAYMENT,
            clinician=clinician,
            chart=chart,
            amount_cents=amount_cents,
            occurred_on=occurred_on,
            description=text,
            invoice=invoice,
        )
        await _audit_entry(ctx, entry, **({"invoice": encode("Invoice", invoice.id)} if invoice else {}))
    if invoice is not None:
        invoice = await _invoice_loader(ctx).load(invoice.id)
    return Recorded(EntryRecord.of_row(entry), money(balance), invoice)


async def record_refund(
    ctx: Context,
    *,
    clinician_ids: Sequence[str] | None,
    chart_id: str,
    amount: Decimal,
    occurred_on: date,
    description: str | None,
) -> Recorded:
    """Money returned to the patient for one clinician and chart: raises that balance."""
    clinician, chart = await require_single_clinician(ctx, clinician_ids, chart_id)
    amount_cents, occurred_on, text = _entry_fields(ctx, amount, occurred_on, description, default="Refund")
    async with in_transaction() as conn:
        entry, balance = await _append(
            ctx,
            conn,
            kind=Kind.REFUND,
            clinician=clinician,
            chart=chart,
            amount_cents=amount_cents,
            occurred_on=occurred_on,
            description=text,
        )
        await _audit_entry(ctx, entry)
    return Recorded(EntryRecord.of_row(entry), money(balance))


async def _pay_invoice(
    ctx: Context, conn: Any, pk: uuid.UUID, clinician: Member, chart: Chart, amount_cents: int
) -> Invoice:
    """Lock the clinician's invoice for the chart and apply the payment to it (in the payment's transaction)."""
    invoice = (
        await Invoice.filter(
            practice_id=ctx.require_viewer().practice.id, id=pk, clinician_id=clinician.id, chart_id=chart.id
        )
        .select_for_update()
        .using_db(conn)
        .first()
    )
    if invoice is None:
        raise NotFound("no such invoice for this clinician and chart")
    if invoice.status != InvoiceStatus.OPEN:
        raise Conflict(f"invoice {invoice.number} is {invoice.status.value}, not OPEN")
    if amount_cents > invoice.total_cents - invoice.paid_cents:
        raise BadInput(f"the payment exceeds the amount due on invoice {invoice.number}", field="input.amount")
    invoice.paid_cents += amount_cents
    if invoice.paid_cents >= invoice.total_cents:
        invoice.status = InvoiceStatus.PAID
    await (
        Invoice.filter(id=invoice.id, practice_id=invoice.practice_id)
        .using_db(conn)
        .update(paid_cents=invoice.paid_cents, status=invoice.status)
    )
    return invoice


async def generate_statement(
    ctx: Context, *, clinician_ids: Sequence[str] | None, chart_id: str, period_start: date, period_end: date
) -> Statement:
    """Freeze, for one clinician and chart over a period: the opening balance (everything before it), its entries
    and the closing balance. Numbered per practice without gaps or duplicates."""
    clinician, chart = await require_single_clinician(ctx, clinician_ids, chart_id)
    if period_start > period_end:
        raise BadInput("periodStart must not be after periodEnd", field="input.periodStart")
    _not_in_future(ctx, period_end, field="input.periodEnd")
    viewer, now = ctx.require_viewer(), ctx.clock.now()
    ledger = BillingEntry.filter(practice_id=viewer.practice.id, clinician_id=clinician.id, chart_id=chart.id)
    async with in_transaction() as conn:
        sequence = await _take_number(ctx, conn, "statement")
        opening = await _total(ledger.filter(occurred_on__lt=period_start).using_db(conn), "delta_cents")
        in_period = (
            await ledger.filter(occurred_on__gte=period_start, occurred_on__lte=period_end)
            .using_db(conn)
            .values_list("id", "delta_cents")
        )
        statement = await Statement.create(
            id=uuid.uuid4(),
            practice_id=viewer.practice.id,
            clinician=clinician,
            chart=chart,
            created_by=viewer.member,
            sequence=sequence,
            number=f"S-{sequence:06d}",
            period_start=period_start,
            period_end=period_end,
            opening_cents=opening,
            closing_cents=opening + sum(delta for _, delta in in_period),
            created_at=now,
            using_db=conn,
        )
        await StatementLine.bulk_create(
            [StatementLine(id=uuid.uuid4(), statement_id=statement.id, entry_id=entry_id) for entry_id, _ in in_period],
            using_db=conn,
        )
        await audit.record(
            ctx,
            "billing.statement_generated",
            encode("Statement", statement.id),
            number=statement.number,
            clinician=encode("Member", clinician.id),
            chart=encode("Chart", chart.id),
        )
    return statement


async def create_invoice(
    ctx: Context, *, clinician_ids: Sequence[str] | None, chart_id: str, entry_ids: Sequence[str] | None
) -> Invoice:
    """Put one clinician's uninvoiced charges for a chart (all of them, or the given ones) on a numbered invoice.

    A charge is on at most one invoice: asking again is CONFLICT, and so is losing a race to another request
    (the invoice line's unique entry decides).
    """
    clinician, chart = await require_single_clinician(ctx, clinician_ids, chart_id)
    wanted = None
    if entry_ids is not None:
        wanted = list(dict.fromkeys(decode_many(entry_ids, "BillingEntry", field="input.entryIds")))
        if not wanted or len(wanted) > MAX_INVOICE_ENTRIES:
            raise BadInput(
                f"give between 1 and {MAX_INVOICE_ENTRIES} entryIds, or leave them out", field="input.entryIds"
            )
    viewer, now = ctx.require_viewer(), ctx.clock.now()
    charges = BillingEntry.filter(
        practice_id=viewer.practice.id, clinician_id=clinician.id, chart_id=chart.id, kind=Kind.CHARGE
    )
    if wanted is not None:
        charges = charges.filter(id__in=wanted)
        if await charges.count() != len(wanted):
            raise BadInput("entryIds must be charges of this clinician for this chart", field="input.entryIds")
    async with in_transaction() as conn:
        sequence = await _take_number(ctx, conn, "invoice")
        if wanted is not None and await charges.filter(invoice_line__id__isnull=False).using_db(conn).exists():
            raise Conflict("a charge is on an invoice already")
        lines = await charges.filter(invoice_line=None).using_db(conn).values_list("id", "delta_cents")
        if not lines:
            raise Conflict("this clinician has no uninvoiced charges for this chart")
        invoice = await Invoice.create(
            id=uuid.uuid4(),
            practice_id=viewer.practice.id,
            clinician=clinician,
            chart=chart,
            created_by=viewer.member,
            sequence=sequence,
            number=f"INV-{sequence:06d}",
            status=InvoiceStatus.OPEN,
            total_cents=sum(delta for _, delta in lines),
            paid_cents=0,
            issued_on=now.date(),
            created_at=now,
            using_db=conn,
        )
        try:
            await InvoiceLine.bulk_create(
                [InvoiceLine(id=uuid.uuid4(), invoice_id=invoice.id, entry_id=entry_id) for entry_id, _ in lines],
                using_db=conn,
            )
        except IntegrityError:
            raise Conflict("a charge is on an invoice already") from None
        await audit.record(
            ctx,
            "billing.invoice_created",
            encode("Invoice", invoice.id),
            number=invoice.number,
            clinician=encode("Member", clinician.id),
            chart=encode("Chart", chart.id),
            charges=len(lines),
            total=str(money(invoice.total_cents).amount),
        )
    return invoice


async def void_invoice(ctx: Context, *, invoice_id: str, reason: str) -> Invoice:
    """An OPEN invoice without payments applied becomes VOID: its charges leave it (kept as its voided lines, still
    listed by it) and may go on a new invoice. The invoice's clinician or a holder of MANAGE_BILLING may void it; a
    caller who cannot see it gets NOT_FOUND, one who sees it without that right FORBIDDEN. Paid, partly paid or void
    invoices are CONFLICT. The void and its reason are audited; a refusal changes nothing."""
    viewer = ctx.require_viewer()
    pk = decode(invoice_id, "Invoice", field="input.invoiceId")
    text = validation.text(reason, field="input.reason", max_length=VOID_REASON_MAX)
    invoice = await Invoice.filter(practice_id=viewer.practice.id, id=pk).first()
    if invoice is None:
        raise NotFound("no such invoice")
    if invoice.clinician_id != viewer.member.id and not viewer.has(Permission.MANAGE_BILLING):
        if await _find(Invoice, ctx, pk) is None:
            raise NotFound("no such invoice")
        raise Forbidden("voiding another clinician's invoice needs MANAGE_BILLING")
    async with in_transaction() as conn:
        # The payment's lock (_pay_invoice): a payment and a void of one invoice never both land.
        invoice = await Invoice.filter(practice_id=viewer.practice.id, id=pk).select_for_update().using_db(conn).get()
        if invoice.status != InvoiceStatus.OPEN:
            raise Conflict(f"invoice {invoice.number} is {invoice.status.value}, not OPEN")
        if invoice.paid_cents:
            raise Conflict(f"invoice {invoice.number} has payments applied: it cannot be voided")
        lines = cast(
            list[uuid.UUID], await InvoiceLine.filter(invoice_id=pk).using_db(conn).values_list("entry_id", flat=True)
        )
        await VoidedInvoiceLine.bulk_create(
            [VoidedInvoiceLine(id=uuid.uuid4(), invoice_id=pk, entry_id=entry_id) for entry_id in lines], using_db=conn
        )
        await InvoiceLine.filter(invoice_id=pk).using_db(conn).delete()
        await Invoice.filter(id=pk, practice_id=viewer.practice.id).using_db(conn).update(status=InvoiceStatus.VOID)
        await audit.record(
            ctx,
            "billing.invoice_voided",
            encode("Invoice", pk),
            number=invoice.number,
            reason=text,
            clinician=encode("Member", invoice.clinician_id),
            chart=encode("Chart", invoice.chart_id),
            charges=len(lines),
        )
    return await Invoice.filter(id=pk, practice_id=viewer.practice.id).select_related(*RELATED).get()
