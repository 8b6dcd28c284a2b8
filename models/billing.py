"""Patient billing: the append-only ledger, running balances, statements and invoices.

Money is stored as integer cents (BigInt): exact in both SQLite and PostgreSQL, including SUM (SQLite would
sum a DecimalField's text as floats). Every foreign key into ledger data is RESTRICT: nothing cascades.
"""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.charts import Chart
    from models.members import Member
    from models.practices import Practice


class BillingEntryKind(str, Enum):
    CHARGE = "CHARGE"
    PAYMENT = "PAYMENT"
    ADJUSTMENT = "ADJUSTMENT"
    REFUND = "REFUND"


class InvoiceStatus(str, Enum):
    OPEN = "OPEN"
    PAID = "PAID"
    VOID = "VOID"


class BillingEntry(Model):
    """One ledger entry. Written once, never updated or deleted."""

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="billing_entries", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    chart: fields.ForeignKeyRelation[Chart] = fields.ForeignKeyField(
        "models.Chart", related_name="billing_entries", on_delete=fields.RESTRICT
    )
    chart_id: uuid.UUID
    # The clinician the entry belongs to, and the member who recorded it.
    clinician: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="billing_entries", on_delete=fields.RESTRICT
    )
    clinician_id: uuid.UUID
    created_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="recorded_billing_entries", on_delete=fields.RESTRICT
    )
    created_by_id: uuid.UUID
    kind = fields.CharEnumField(BillingEntryKind, max_length=16)
    # What the entry adds to the balance, in cents: positive for charges and refunds, negative for payments,
    # either sign for adjustments. The amount shown is its absolute value except for adjustments.
    delta_cents = fields.BigIntField()
    occurred_on = fields.DateField()
    description = fields.CharField(max_length=500)
    # For a payment: the invoice it pays (a charge's invoice is its InvoiceLine).
    invoice: fields.ForeignKeyNullableRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="payments", on_delete=fields.RESTRICT, null=True
    )
    invoice_id: uuid.UUID | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "billing_entries"
        indexes = (
            # History, newest first: the whole practice, one clinician, one chart (the chart index also serves
            # statements and invoices: one clinician's entries for one chart, by date).
            ("practice_id", "occurred_on", "created_at", "id"),
            ("practice_id", "clinician_id", "occurred_on", "created_at", "id"),
            ("chart_id", "occurred_on", "created_at", "id"),
        )


class BillingBalance(Model):
    """Running total per practice, clinician and chart, updated in the same transaction as each entry.

    A balance is a sum over these rows, so it costs the same however long the ledger grows.
    """

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="billing_balances", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    clinician: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="billing_balances", on_delete=fields.RESTRICT
    )
    clinician_id: uuid.UUID
    chart: fields.ForeignKeyRelation[Chart] = fields.ForeignKeyField(
        "models.Chart", related_name="billing_balances", on_delete=fields.RESTRICT
    )
    chart_id: uuid.UUID
    balance_cents = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "billing_balances"
        unique_together = (("practice_id", "clinician_id", "chart_id"),)
        # Balances are sums of balance_cents over a practice or some of its clinicians: a covering index answers
        # them without reading the table (bench, SQLite, a group of 20,000 charts: the dashboard went from 19.8 to
        # 7.4 ms of CPU a request, 20 per-clinician balances from 12.7 to 5.0).
        indexes = (("practice_id", "chart_id"), ("practice_id", "clinician_id", "balance_cents"))


class BillingCounter(Model):
    # The docstring is the table's comment in the migrations (Tortoise's description): kept on one line.
    """A per-practice number sequence ("statement", "invoice"), locked while a number is taken: no gaps, no duplicates."""  # noqa: E501

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="billing_counters", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    name = fields.CharField(max_length=32)
    last_value = fields.BigIntField(default=0)

    class Meta:
        table = "billing_counters"
        unique_together = (("practice_id", "name"),)


class Statement(Model):
    """A frozen statement for one clinician and one chart over a period."""

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="statements", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    clinician: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="statements", on_delete=fields.RESTRICT
    )
    clinician_id: uuid.UUID
    chart: fields.ForeignKeyRelation[Chart] = fields.ForeignKeyField(
        "models.Chart", related_name="statements", on_delete=fields.RESTRICT
    )
    chart_id: uuid.UUID
    created_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="generated_statements", on_delete=fields.RESTRICT
    )
    created_by_id: uuid.UUID
    sequence = fields.BigIntField()
    number = fields.CharField(max_length=32)
    period_start = fields.DateField()
    period_end = fields.DateField()
    opening_cents = fields.BigIntField()
    closing_cents = fields.BigIntField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "statements"
        unique_together = (("practice_id", "sequence"),)
        indexes = (("practice_id", "clinician_id", "sequence"), ("chart_id", "clinician_id"))


class StatementLine(Model):
    """An entry frozen on a statement."""

    id = fields.UUIDField(primary_key=True)
    statement: fields.ForeignKeyRelation[Statement] = fields.ForeignKeyField(
        "models.Statement", related_name="lines", on_delete=fields.RESTRICT
    )
    statement_id: uuid.UUID
    entry: fields.ForeignKeyRelation[BillingEntry] = fields.ForeignKeyField(
        "models.BillingEntry", related_name="statement_lines", on_delete=fields.RESTRICT
    )
    entry_id: uuid.UUID

    class Meta:
        table = "statement_lines"
        unique_together = (("statement_id", "entry_id"),)
        indexes = (("entry_id",),)


class Invoice(Model):
    """One clinician's charges for one chart, numbered. Its status and amount paid change as payments arrive."""

    id = fields.UUIDField(primary_key=True)
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="invoices", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    clinician: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="invoices", on_delete=fields.RESTRICT
    )
    clinician_id: uuid.UUID
    chart: fields.ForeignKeyRelation[Chart] = fields.ForeignKeyField(
        "models.Chart", related_name="invoices", on_delete=fields.RESTRICT
    )
    chart_id: uuid.UUID
    created_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="created_invoices", on_delete=fields.RESTRICT
    )
    created_by_id: uuid.UUID
    sequence = fields.BigIntField()
    number = fields.CharField(max_length=32)
    status = fields.CharEnumField(InvoiceStatus, max_length=16, default=InvoiceStatus.OPEN)
    total_cents = fields.BigIntField()
    paid_cents = fields.BigIntField(default=0)
    issued_on = fields.DateField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "invoices"
        unique_together = (("practice_id", "sequence"),)
        indexes = (
            ("practice_id", "clinician_id", "sequence"),
            ("practice_id", "status", "sequence"),
            ("chart_id", "clinician_id"),
        )


class InvoiceLine(Model):
    """A charge on an invoice. The unique entry is what keeps a charge on at most one invoice, even under races."""

    id = fields.UUIDField(primary_key=True)
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="lines", on_delete=fields.RESTRICT
    )
    invoice_id: uuid.UUID
    entry: fields.OneToOneRelation[BillingEntry] = fields.OneToOneField(
        "models.BillingEntry", related_name="invoice_line", on_delete=fields.RESTRICT
    )
    entry_id: uuid.UUID

    class Meta:
        table = "invoice_lines"
        indexes = (("invoice_id", "entry_id"),)


class VoidedInvoiceLine(Model):
    """A charge that was on an invoice before it was voided. Voiding moves the invoice's lines here, which frees
    their charges for a new invoice (``InvoiceLine.entry`` is unique) while the void invoice still lists them."""

    id = fields.UUIDField(primary_key=True)
    invoice: fields.ForeignKeyRelation[Invoice] = fields.ForeignKeyField(
        "models.Invoice", related_name="voided_lines", on_delete=fields.RESTRICT
    )
    invoice_id: uuid.UUID
    entry: fields.ForeignKeyRelation[BillingEntry] = fields.ForeignKeyField(
        "models.BillingEntry", related_name="voided_invoice_lines", on_delete=fields.RESTRICT
    )
    entry_id: uuid.UUID

    class Meta:
        table = "voided_invoice_lines"
        unique_together = (("invoice_id", "entry_id"),)
        indexes = (("entry_id",),)
