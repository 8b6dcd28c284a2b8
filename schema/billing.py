"""Patient billing: the group ledger, statements and invoices.

Thin: every rule lives in resolvers/billing.py. Related rows (chart for the patient name, clinician, creator)
come joined with each row, so those fields are plain and synchronous; only ``chart``, ``invoice`` and the
entry lists do I/O, through per-request loaders.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import Invoice as InvoiceRow
from models import Statement as StatementRow
from models.billing import BillingEntryKind as BillingEntryKindEnum
from models.billing import InvoiceStatus as InvoiceStatusEnum
from models.enums import TokenScope as S
from resolvers import billing, idempotency, ids
from resolvers.pagination import Page
from schema.base import Money, Node, PageInfo, connection
from schema.directives import guard
from schema.node import node_type

if TYPE_CHECKING:
    from schema.charts import Chart
    from schema.members import Member

BillingEntryKind = BillingEntryKindEnum
strawberry.enum(BillingEntryKind)
InvoiceStatus = InvoiceStatusEnum
strawberry.enum(InvoiceStatus)

ChartType = Annotated["Chart", strawberry.lazy("schema.charts")]
MemberType = Annotated["Member", strawberry.lazy("schema.members")]


def _member(row) -> Member:
    from schema.members import Member

    return Member.of(row)


async def _chart(info: Info, chart_id: uuid.UUID, via: str) -> Chart | None:
    from schema.charts import Chart

    chart = await billing.readable_chart(info.context, chart_id, via=via)
    return Chart.of(chart) if chart is not None else None


# ------------------------------------------------------------------ types


@strawberry.type
class BillingEntry(Node):
    kind: BillingEntryKind
    amount: Money
    occurred_on: date
    description: str
    patient_name: str = strawberry.field(description="The patient's name, for whoever may see the entry.")
    created_at: datetime
    row: strawberry.Private[billing.EntryRecord]

    @classmethod
    def of(cls, row: billing.EntryRecord) -> BillingEntry:
        return cls(
            id=strawberry.ID(ids.encode("BillingEntry", row.id)),
            kind=row.kind,
            amount=Money.of(billing.entry_amount(row)),
            occurred_on=row.occurred_on,
            description=row.description,
            patient_name=row.patient_name,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field(description="The clinician this entry belongs to.")
    def clinician(self) -> MemberType:
        return _member(self.row.clinician)

    @strawberry.field(description="The whole chart, for those who may read it; null for the others.")
    async def chart(self, info: Info) -> ChartType | None:
        return await _chart(info, self.row.chart_id, "BillingEntry.chart")

    @strawberry.field
    async def invoice(self, info: Info) -> Invoice | None:
        row = await billing.entry_invoice(info.context, self.row)
        return Invoice.of(row) if row is not None else None

    @strawberry.field
    async def created_by(self, info: Info) -> MemberType:
        return _member(await billing.entry_recorder(info.context, self.row))


@strawberry.type
class BillingEntryEdge:
    node: BillingEntry
    cursor: str


@strawberry.type
class BillingEntryConnection:
    edges: list[BillingEntryEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(description="Null where counting would cost more than serving the page.")


def _entries(page: Page) -> BillingEntryConnection:
    return connection(BillingEntryConnection, BillingEntryEdge, page, BillingEntry.of)


@strawberry.type
class Statement(Node):
    number: str
    patient_name: str
    period_start: date
    period_end: date
    opening_balance: Money
    closing_balance: Money
    created_at: datetime
    row: strawberry.Private[StatementRow]

    @classmethod
    def of(cls, row: StatementRow) -> Statement:
        return cls(
            id=strawberry.ID(ids.encode("Statement", row.id)),
            number=row.number,
            patient_name=row.chart.patient_name,
            period_start=row.period_start,
            period_end=row.period_end,
            opening_balance=Money.of(billing.money(row.opening_cents)),
            closing_balance=Money.of(billing.money(row.closing_cents)),
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    def clinician(self) -> MemberType:
        return _member(self.row.clinician)

    @strawberry.field
    async def chart(self, info: Info) -> ChartType | None:
        return await _chart(info, self.row.chart_id, "Statement.chart")

    @strawberry.field
    async def entries(self, info: Info, first: int | None = None, after: str | None = None) -> BillingEntryConnection:
        return _entries(await billing.statement_entries(info.context, self.row, first=first, after=after))

    @strawberry.field(description="Where the PDF of this statement can be fetched with the same bearer token.")
    def pdf_url(self, info: Info) -> str:
        return f"{info.context.settings.api_base_url}/statements/{self.id}.pdf"

    @strawberry.field
    def created_by(self) -> MemberType:
        return _member(self.row.created_by)


@strawberry.type
class StatementEdge:
    node: Statement
    cursor: str


@strawberry.type
class StatementConnection:
    edges: list[StatementEdge]
    page_info: PageInfo
    total_count: int | None


@strawberry.type
class Invoice(Node):
    number: str
    patient_name: str
    status: InvoiceStatus
    total: Money
    amount_due: Money
    created_at: datetime
    row: strawberry.Private[InvoiceRow]

    @classmethod
    def of(cls, row: InvoiceRow) -> Invoice:
        return cls(
            id=strawberry.ID(ids.encode("Invoice", row.id)),
            number=row.number,
            patient_name=row.chart.patient_name,
            status=row.status,
            total=Money.of(billing.money(row.total_cents)),
            amount_due=Money.of(billing.money(row.total_cents - row.paid_cents)),
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    def clinician(self) -> MemberType:
        return _member(self.row.clinician)

    @strawberry.field
    async def chart(self, info: Info) -> ChartType | None:
        return await _chart(info, self.row.chart_id, "Invoice.chart")

    @strawberry.field
    async def entries(self, info: Info, first: int | None = None, after: str | None = None) -> BillingEntryConnection:
        return _entries(await billing.invoice_entries(info.context, self.row, first=first, after=after))

    @strawberry.field
    def created_by(self) -> MemberType:
        return _member(self.row.created_by)


@strawberry.type
class InvoiceEdge:
    node: Invoice
    cursor: str


@strawberry.type
class InvoiceConnection:
    edges: list[InvoiceEdge]
    page_info: PageInfo
    total_count: int | None


@node_type("BillingEntry", scope=S.READ_BILLING)
async def _entry_node(info: Info, pk: uuid.UUID) -> BillingEntry | None:
    row = await billing.find_entry(info.context, pk)
    return BillingEntry.of(row) if row is not None else None


@node_type("Statement", scope=S.READ_BILLING)
async def _statement_node(info: Info, pk: uuid.UUID) -> Statement | None:
    row = await billing.find_statement(info.context, pk)
    return Statement.of(row) if row is not None else None


@node_type("Invoice", scope=S.READ_BILLING)
async def _invoice_node(info: Info, pk: uuid.UUID) -> Invoice | None:
    row = await billing.find_invoice(info.context, pk)
    return Invoice.of(row) if row is not None else None


# ------------------------------------------------------------------ Practice.billing


@strawberry.input(
    description=(
        "Which billing entries to list. No clinicianIds (null or empty) means every clinician whose entries\n"
        "the viewer may see: the whole practice for holders of VIEW_BILLING, otherwise only the viewer."
    )
)
class BillingFilter:
    clinician_ids: list[strawberry.ID] | None = None
    chart_id: strawberry.ID | None = None
    from_: date | None = strawberry.field(default=None, name="from")
    to: date | None = None
    kinds: list[BillingEntryKind] | None = None

    def selection(self) -> billing.Filter:
        return billing.Filter(
            clinician_ids=self.clinician_ids,
            chart_id=self.chart_id,
            from_date=self.from_,
            to_date=self.to,
            kinds=self.kinds,
        )


@strawberry.input(description="Whose balance to show, as of now. clinicianIds as in BillingFilter.")
class BalanceFilter:
    clinician_ids: list[strawberry.ID] | None = None
    chart_id: strawberry.ID | None = None

    def selection(self) -> billing.Filter:
        return billing.Filter(clinician_ids=self.clinician_ids, chart_id=self.chart_id)


def _selection(given: BillingFilter | BalanceFilter | None) -> billing.Filter | None:
    return given.selection() if given is not None else None


@strawberry.type
class Billing:
    @strawberry.field(
        description="Charges and refunds minus payments, plus adjustments, for the clinicians and chart selected."
    )
    async def current_balance(self, info: Info, filter: BalanceFilter | None = None) -> Money | None:
        return Money.of(await billing.current_balance(info.context, _selection(filter)))

    @strawberry.field(description="Newest first (occurredOn, then createdAt, then id).")
    async def history(
        self, info: Info, filter: BillingFilter | None = None, first: int | None = None, after: str | None = None
    ) -> BillingEntryConnection | None:
        return _entries(await billing.history(info.context, _selection(filter), first=first, after=after))

    @strawberry.field(description="Newest number first; from/to select the statements whose period overlaps them.")
    async def statements(
        self, info: Info, filter: BillingFilter | None = None, first: int | None = None, after: str | None = None
    ) -> StatementConnection | None:
        page = await billing.statements(info.context, _selection(filter), first=first, after=after)
        return connection(StatementConnection, StatementEdge, page, Statement.of)

    @strawberry.field(description="Newest number first; from/to select by issue date.")
    async def invoices(
        self,
        info: Info,
        filter: BillingFilter | None = None,
        status: InvoiceStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> InvoiceConnection | None:
        page = await billing.invoices(info.context, _selection(filter), status, first=first, after=after)
        return connection(InvoiceConnection, InvoiceEdge, page, Invoice.of)


@strawberry.type
class PracticeBillingFields:
    """Mixed into Practice: ``billing``."""

    @strawberry.field(extensions=guard(scope=S.READ_BILLING))
    def billing(self) -> Billing | None:
        return Billing()


# ------------------------------------------------------------------ mutations


@strawberry.input
class RecordChargeInput:
    chart_id: strawberry.ID
    clinician_id: strawberry.ID
    amount: Decimal
    occurred_on: date
    description: str
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.input
class RecordAdjustmentInput:
    chart_id: strawberry.ID
    clinician_id: strawberry.ID
    amount: Decimal = strawberry.field(description="Signed: negative lowers the balance.")
    occurred_on: date
    description: str
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.type
class BillingEntryPayload:
    entry: BillingEntry
    balance: Money = strawberry.field(description="The clinician's balance for the chart after this entry.")


@strawberry.input(
    description=(
        "Money moves for one clinician at a time: clinicianIds is the billing screen's clinician selection and\n"
        "must hold exactly one id, whoever the caller is; anything else is SINGLE_CLINICIAN_REQUIRED."
    )
)
class RecordPaymentInput:
    chart_id: strawberry.ID
    amount: Decimal
    occurred_on: date
    clinician_ids: list[strawberry.ID] | None = None
    description: str | None = None
    invoice_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The invoice this payment pays, if any; it becomes PAID once its payments cover its total.",
    )
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.type
class RecordPaymentPayload:
    entry: BillingEntry
    balance: Money
    invoice: Invoice | None


@strawberry.input(description="clinicianIds: as in RecordPaymentInput, exactly one id.")
class RecordRefundInput:
    chart_id: strawberry.ID
    amount: Decimal
    occurred_on: date
    clinician_ids: list[strawberry.ID] | None = None
    description: str | None = None
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.input(description="clinicianIds: as in RecordPaymentInput, exactly one id.")
class GenerateStatementInput:
    chart_id: strawberry.ID
    period_start: date
    period_end: date
    clinician_ids: list[strawberry.ID] | None = None
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.type
class GenerateStatementPayload:
    statement: Statement


@strawberry.input(description="clinicianIds: as in RecordPaymentInput, exactly one id.")
class CreateInvoiceInput:
    chart_id: strawberry.ID
    clinician_ids: list[strawberry.ID] | None = None
    entry_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description=(
            "Charges to put on the invoice; all of that clinician's uninvoiced charges for the chart when left out."
        ),
    )
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retry safe: see the header.")


@strawberry.type
class CreateInvoicePayload:
    invoice: Invoice


@strawberry.input
class VoidInvoiceInput:
    invoice_id: strawberry.ID
    reason: str


@strawberry.type
class VoidInvoicePayload:
    invoice: Invoice = strawberry.field(
        description="VOID: its charges may go on a new invoice. An invoice with payments applied cannot be voided "
        "(CONFLICT)."
    )


def _entry_payload(recorded: billing.Recorded) -> BillingEntryPayload:
    return BillingEntryPayload(entry=BillingEntry.of(recorded.entry), balance=Money.of(recorded.balance))


# The row rules of the billing mutations, said in their descriptions (they reach the published schema and
# docs/authorization.md): the directives show the scope, the rule itself lives in resolvers/billing.py.
BILLABLE_RULE = (
    "Row rule (resolvers/billing.require_billable): the clinician is the caller, or anyone of the practice for "
    "a holder of MANAGE_BILLING (else FORBIDDEN); the chart is one the caller can find (else NOT_FOUND); the "
    "clinician treats it: assigned, VIEW_ALL_CHARTS or the owner (else BAD_USER_INPUT)."
)
SINGLE_CLINICIAN_RULE = (
    "Row rule (resolvers/billing.require_single_clinician): exactly one clinician in clinicianIds (else "
    "SINGLE_CLINICIAN_REQUIRED, before anything else), then as recordCharge: the caller or, with MANAGE_BILLING, "
    "anyone; a chart the caller can find; a clinician who treats it."
)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="A fee for a service, for one clinician on one chart. " + BILLABLE_RULE,
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def record_charge(self, info: Info, input: RecordChargeInput) -> BillingEntryPayload | None:
        recorded = await idempotency.once(
            info.context,
            "recordCharge",
            input,
            idempotency.RECORDED,
            lambda: billing.record_charge(
                info.context,
                chart_id=input.chart_id,
                clinician_id=input.clinician_id,
                amount=input.amount,
                occurred_on=input.occurred_on,
                description=input.description,
            ),
        )
        return _entry_payload(recorded)

    @strawberry.mutation(
        description=("A signed correction (e.g. a write-off), for one clinician on one chart. " + BILLABLE_RULE),
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def record_adjustment(self, info: Info, input: RecordAdjustmentInput) -> BillingEntryPayload | None:
        recorded = await idempotency.once(
            info.context,
            "recordAdjustment",
            input,
            idempotency.RECORDED,
            lambda: billing.record_adjustment(
                info.context,
                chart_id=input.chart_id,
                clinician_id=input.clinician_id,
                amount=input.amount,
                occurred_on=input.occurred_on,
                description=input.description,
            ),
        )
        return _entry_payload(recorded)

    @strawberry.mutation(
        description=(
            "Money received: lowers the clinician's balance for the chart, and pays the invoice if one is named. "
            + SINGLE_CLINICIAN_RULE
        ),
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def record_payment(self, info: Info, input: RecordPaymentInput) -> RecordPaymentPayload | None:
        recorded = await idempotency.once(
            info.context,
            "recordPayment",
            input,
            idempotency.RECORDED,
            lambda: billing.record_payment(
                info.context,
                clinician_ids=input.clinician_ids,
                chart_id=input.chart_id,
                amount=input.amount,
                occurred_on=input.occurred_on,
                description=input.description,
                invoice_id=input.invoice_id,
            ),
        )
        return RecordPaymentPayload(
            entry=BillingEntry.of(recorded.entry),
            balance=Money.of(recorded.balance),
            invoice=Invoice.of(recorded.invoice) if recorded.invoice is not None else None,
        )

    @strawberry.mutation(
        description=(
            "Money returned to the patient: raises the clinician's balance for the chart. " + SINGLE_CLINICIAN_RULE
        ),
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def record_refund(self, info: Info, input: RecordRefundInput) -> BillingEntryPayload | None:
        recorded = await idempotency.once(
            info.context,
            "recordRefund",
            input,
            idempotency.RECORDED,
            lambda: billing.record_refund(
                info.context,
                clinician_ids=input.clinician_ids,
                chart_id=input.chart_id,
                amount=input.amount,
                occurred_on=input.occurred_on,
                description=input.description,
            ),
        )
        return _entry_payload(recorded)

    @strawberry.mutation(
        description=(
            "Freezes one clinician's entries for one chart over a period, numbered per practice. "
            + SINGLE_CLINICIAN_RULE
        ),
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def generate_statement(self, info: Info, input: GenerateStatementInput) -> GenerateStatementPayload | None:
        row = await idempotency.once(
            info.context,
            "generateStatement",
            input,
            idempotency.STATEMENT,
            lambda: billing.generate_statement(
                info.context,
                clinician_ids=input.clinician_ids,
                chart_id=input.chart_id,
                period_start=input.period_start,
                period_end=input.period_end,
            ),
        )
        return GenerateStatementPayload(statement=Statement.of(row))

    @strawberry.mutation(
        description=("Puts one clinician's uninvoiced charges on one chart on a new invoice. " + SINGLE_CLINICIAN_RULE),
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def create_invoice(self, info: Info, input: CreateInvoiceInput) -> CreateInvoicePayload | None:
        row = await idempotency.once(
            info.context,
            "createInvoice",
            input,
            idempotency.INVOICE,
            lambda: billing.create_invoice(
                info.context, clinician_ids=input.clinician_ids, chart_id=input.chart_id, entry_ids=input.entry_ids
            ),
        )
        return CreateInvoicePayload(invoice=Invoice.of(row))

    @strawberry.mutation(
        description=(
            "Voids an OPEN invoice without payments. Row rule (resolvers/billing.void_invoice): an invoice the caller "
            "can see (else NOT_FOUND), voided by its clinician or a holder of MANAGE_BILLING (else FORBIDDEN)."
        ),
        extensions=guard(scope=S.WRITE_BILLING, mutation=True),
    )
    async def void_invoice(self, info: Info, input: VoidInvoiceInput) -> VoidInvoicePayload | None:
        row = await billing.void_invoice(info.context, invoice_id=input.invoice_id, reason=input.reason)
        return VoidInvoicePayload(invoice=Invoice.of(row))
