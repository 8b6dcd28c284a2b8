"""Billing test helpers: a group practice with members and charts, and the billing operations over HTTP.

Members beyond the owner, charts and assignments are inserted as rows (the invitation and chart APIs are
built elsewhere); every member then signs in through ``logIn`` like a real client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from models import Chart, ChartAssignment, Practice
from models.enums import Permission, Role, TokenScope
from resolvers.ids import encode
from tests import factories
from tests.conftest import Api
from tests.factories import Account


@dataclass
class Group:
    """The owner Olive, clinicians Ann and Ben, and three charts: Ann's, Ben's, and one shared by both."""

    api: Api
    practice: Practice
    owner: Account
    ann: Account
    ben: Account
    ann_chart: str
    ben_chart: str
    shared_chart: str
    members: dict[str, Account] = field(default_factory=dict)

    async def member(self, name: str, role: Role, permissions: Iterable[Permission] = ()) -> Account:
        """Another member (a row, logged in through ``logIn``)."""
        email = f"{name.lower().replace(' ', '.')}@example.com"
        account = await factories.add_member(
            self.api, self.practice.slug, email, name=name, role=role, permissions=tuple(permissions)
        )
        self.members[name] = account
        return account


def now() -> datetime:
    return datetime.now(UTC)


async def add_chart(
    practice: Practice, patient_name: str, *, created_by: uuid.UUID, clinicians: Iterable[uuid.UUID] = ()
) -> str:
    """A chart (a row) assigned to ``clinicians``; returns its global id."""
    chart = await Chart.create(
        id=uuid.uuid4(),
        practice=practice,
        patient_name=patient_name,
        patient_name_search=patient_name.lower(),
        created_by_id=created_by,
        created_at=now(),
    )
    for clinician in clinicians:
        await ChartAssignment.create(id=uuid.uuid4(), chart=chart, clinician_id=clinician, created_at=now())
    return encode("Chart", chart.id)


async def partner_token(group: Group, creator: Account, scopes: list[TokenScope]) -> Account:
    """``creator`` acting through a partner API token narrowed to ``scopes``."""
    return replace(creator, token=await factories.insert_api_token(creator.row, tuple(scopes)))


async def make_group(api: Api, *, practice: str = "Calm Minds", email: str = "owner@example.com") -> Group:
    owner = await factories.sign_up(api, practice=practice, email=email)
    await api.ok("mutation { activateGroupPractice { practice { kind } } }", token=owner.token)
    practice_row = await Practice.get(slug=owner.slug)
    prefix = owner.slug.split("-")[0]
    ann = await factories.add_member(api, owner.slug, f"ann@{prefix}.example.com", name="Ann Clinician")
    ben = await factories.add_member(api, owner.slug, f"ben@{prefix}.example.com", name="Ben Clinician")
    return Group(
        api=api,
        practice=practice_row,
        owner=owner,
        ann=ann,
        ben=ben,
        ann_chart=await add_chart(practice_row, "Pat Annsson", created_by=owner.row.id, clinicians=[ann.row.id]),
        ben_chart=await add_chart(practice_row, "Quinn Benson", created_by=owner.row.id, clinicians=[ben.row.id]),
        shared_chart=await add_chart(
            practice_row, "Robin Shared", created_by=owner.row.id, clinicians=[ann.row.id, ben.row.id]
        ),
    )


# ------------------------------------------------------------------ operations over HTTP

ENTRY = (
    "id kind amount { amount currency } occurredOn description patientName clinician { id name } createdBy { id } "
    "chart { id } invoice { id }"
)

RECORD_CHARGE = (
    f"""mutation($i: RecordChargeInput!) {{ recordCharge(input: $i) {{ entry {{ {ENTRY} }} balance {{ amount }} }} }}"""
)
RECORD_ADJUSTMENT = f"""mutation($i: RecordAdjustmentInput!) {{ recordAdjustment(input: $i) {{ entry {{ {ENTRY} }}
balance {{ amount }} }} }}"""
RECORD_PAYMENT = f"""mutation($i: RecordPaymentInput!) {{ recordPayment(input: $i) {{
    entry {{ {ENTRY} }} balance {{ amount }} invoice {{ id status amountDue {{ amount }} }} }} }}"""
RECORD_REFUND = (
    f"""mutation($i: RecordRefundInput!) {{ recordRefund(input: $i) {{ entry {{ {ENTRY} }} balance {{ amount }} }} }}"""
)
STATEMENT = """id number patientName periodStart periodEnd openingBalance { amount } closingBalance { amount } pdfUrl
    clinician { id } chart { id } createdBy { id } entries { totalCount edges { node { id kind amount { amount } } }
    }"""
GENERATE_STATEMENT = (
    f"""mutation($i: GenerateStatementInput!) {{ generateStatement(input: $i) {{ statement {{ {STATEMENT} }} }} }}"""
)
INVOICE = """id number status patientName total { amount } amountDue { amount } clinician { id } chart { id }
    entries { totalCount edges { node { id } } }"""
CREATE_INVOICE = f"""mutation($i: CreateInvoiceInput!) {{ createInvoice(input: $i) {{ invoice {{ {INVOICE} }} }} }}"""
BALANCE = "query($f: BalanceFilter) { practice { billing { currentBalance(filter: $f) { amount currency } } } }"
HISTORY = f"""query($f: BillingFilter, $first: Int, $after: String) {{ practice {{ billing {{
    history(filter: $f, first: $first, after: $after) {{ totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node
    {{ {ENTRY} }} }} }}
}} }} }}"""


async def charge(
    api: Api,
    person: Account,
    chart: str,
    clinician: Account,
    amount: str,
    *,
    on: str = "2026-03-02",
    description: str = "Session",
) -> dict:
    data = await api.ok(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": chart,
                "clinicianId": clinician.id,
                "amount": amount,
                "occurredOn": on,
                "description": description,
            }
        },
        person.token,
    )
    return data["recordCharge"]


async def pay(
    api: Api,
    person: Account,
    chart: str,
    clinician: Account,
    amount: str,
    *,
    on: str = "2026-03-03",
    invoice: str | None = None,
) -> dict:
    data = await api.ok(
        RECORD_PAYMENT,
        {
            "i": {
                "chartId": chart,
                "clinicianIds": [clinician.id],
                "amount": amount,
                "occurredOn": on,
                "invoiceId": invoice,
            }
        },
        person.token,
    )
    return data["recordPayment"]


async def balance(
    api: Api, person: Account, *, clinicians: list[Account] | None = None, chart: str | None = None
) -> str:
    selection = {"clinicianIds": [c.id for c in clinicians] if clinicians is not None else None, "chartId": chart}
    data = await api.ok(BALANCE, {"f": selection}, person.token)
    return data["practice"]["billing"]["currentBalance"]["amount"]


async def history(
    api: Api, person: Account, selection: dict | None = None, *, first: int | None = None, after: str | None = None
) -> dict:
    data = await api.ok(HISTORY, {"f": selection, "first": first, "after": after}, person.token)
    return data["practice"]["billing"]["history"]
