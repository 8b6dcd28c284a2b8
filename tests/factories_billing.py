"""Billing test helpers: a group practice with members and charts, and the billing operations over HTTP.

Members beyond the owner, charts and assignments are inserted as rows (the invitation and chart APIs are
built elsewhere); every member then signs in through ``logIn`` like a real client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from auth import passwords
from auth.tokens import hash_secret, new_api_token
from models import ApiToken, Chart, ChartAssignment, Member, Practice
from models.enums import Permission, Role, TokenScope
from resolvers.ids import encode
from tests.conftest import PASSWORD, Api

SLUG = "calm-minds"


@dataclass
class Person:
    """A signed-in member: their global id, uuid and access token."""

    gid: str
    pk: uuid.UUID
    token: str
    name: str


@dataclass
class Group:
    """The owner Olive, clinicians Ann and Ben, and three charts: Ann's, Ben's, and one shared by both."""

    api: Api
    practice: Practice
    owner: Person
    ann: Person
    ben: Person
    ann_chart: str
    ben_chart: str
    shared_chart: str
    members: dict[str, Person] = field(default_factory=dict)

    async def member(self, name: str, role: Role, permissions: Iterable[Permission] = ()) -> Person:
        person = await add_member(self.api, self.practice, name=name, role=role, permissions=permissions)
        self.members[name] = person
        return person


def now() -> datetime:
    return datetime.now(UTC)


async def add_member(api: Api, practice: Practice, *, name: str, role: Role, permissions: Iterable[Permission] = ()) -> Person:
    email = f"{name.lower().replace(' ', '.')}@example.com"
    member = await Member.create(
        id=uuid.uuid4(),
        practice=practice,
        name=name,
        email=email,
        password_hash=passwords.hash_password(PASSWORD),
        role=role,
        permissions=sorted(Permission(p).value for p in permissions),
        plan_code=None if role == Role.ADMINISTRATOR else "erx-lite",
        created_at=now(),
    )
    body = await api.log_in(practice.slug, email)
    assert not body.get("errors"), body
    return Person(encode("Member", member.id), member.id, body["data"]["logIn"]["accessToken"], name)


async def add_chart(practice: Practice, patient_name: str, *, created_by: uuid.UUID, clinicians: Iterable[uuid.UUID] = ()) -> str:
    """A chart assigned to ``clinicians``; returns its global id."""
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


async def partner_token(group: Group, person: Person, scopes: list[TokenScope]) -> Person:
    """A partner API token created by ``person`` (inserted: the token API is built elsewhere)."""
    secret = new_api_token()
    await ApiToken.create(
        id=uuid.uuid4(), practice=group.practice, created_by_id=person.pk, name="partner", token_hash=hash_secret(secret),
        scopes=[s.value for s in scopes], created_at=now(), expires_at=now() + timedelta(days=30),
    )
    return Person(person.gid, person.pk, secret, person.name)


async def make_group(api: Api, *, practice: str = "Calm Minds", email: str = "owner@example.com") -> Group:
    signed = await api.sign_up(practice=practice, email=email)
    await api.ok("mutation { activateGroupPractice { practice { kind } } }", token=signed["accessToken"])
    member_gid = signed["member"]["id"]
    owner_row = await Member.filter(email=email, role=Role.OWNER).select_related("practice").get()
    practice_row = owner_row.practice
    owner = Person(member_gid, owner_row.id, signed["accessToken"], owner_row.name)
    ann = await add_member(api, practice_row, name="Ann Clinician", role=Role.CLINICIAN)
    ben = await add_member(api, practice_row, name="Ben Clinician", role=Role.CLINICIAN)
    return Group(
        api=api,
        practice=practice_row,
        owner=owner,
        ann=ann,
        ben=ben,
        ann_chart=await add_chart(practice_row, "Pat Annsson", created_by=owner.pk, clinicians=[ann.pk]),
        ben_chart=await add_chart(practice_row, "Quinn Benson", created_by=owner.pk, clinicians=[ben.pk]),
        shared_chart=await add_chart(practice_row, "Robin Shared", created_by=owner.pk, clinicians=[ann.pk, ben.pk]),
    )


# ------------------------------------------------------------------ operations over HTTP

ENTRY = "id kind amount { amount currency } occurredOn description patientName clinician { id name } createdBy { id } chart { id } invoice { id }"

RECORD_CHARGE = f"""mutation($i: RecordChargeInput!) {{ recordCharge(input: $i) {{ entry {{ {ENTRY} }} balance {{ amount }} }} }}"""
RECORD_ADJUSTMENT = f"""mutation($i: RecordAdjustmentInput!) {{ recordAdjustment(input: $i) {{ entry {{ {ENTRY} }} balance {{ amount }} }} }}"""
RECORD_PAYMENT = f"""mutation($i: RecordPaymentInput!) {{ recordPayment(input: $i) {{
    entry {{ {ENTRY} }} balance {{ amount }} invoice {{ id status amountDue {{ amount }} }} }} }}"""
RECORD_REFUND = f"""mutation($i: RecordRefundInput!) {{ recordRefund(input: $i) {{ entry {{ {ENTRY} }} balance {{ amount }} }} }}"""
STATEMENT = """id number patientName periodStart periodEnd openingBalance { amount } closingBalance { amount } pdfUrl
    clinician { id } chart { id } createdBy { id } entries { totalCount edges { node { id kind amount { amount } } } }"""
GENERATE_STATEMENT = f"""mutation($i: GenerateStatementInput!) {{ generateStatement(input: $i) {{ statement {{ {STATEMENT} }} }} }}"""
INVOICE = """id number status patientName total { amount } amountDue { amount } clinician { id } chart { id }
    entries { totalCount edges { node { id } } }"""
CREATE_INVOICE = f"""mutation($i: CreateInvoiceInput!) {{ createInvoice(input: $i) {{ invoice {{ {INVOICE} }} }} }}"""
BALANCE = "query($f: BalanceFilter) { practice { billing { currentBalance(filter: $f) { amount currency } } } }"
HISTORY = f"""query($f: BillingFilter, $first: Int, $after: String) {{ practice {{ billing {{
    history(filter: $f, first: $first, after: $after) {{ totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {ENTRY} }} }} }}
}} }} }}"""


async def charge(api: Api, person: Person, chart: str, clinician: Person, amount: str, *, on: str = "2026-03-02",
                 description: str = "Session") -> dict:
    data = await api.ok(RECORD_CHARGE, {"i": {"chartId": chart, "clinicianId": clinician.gid, "amount": amount,
                                              "occurredOn": on, "description": description}}, person.token)
    return data["recordCharge"]


async def pay(api: Api, person: Person, chart: str, clinician: Person, amount: str, *, on: str = "2026-03-03",
              invoice: str | None = None) -> dict:
    data = await api.ok(RECORD_PAYMENT, {"i": {"chartId": chart, "clinicianIds": [clinician.gid], "amount": amount,
                                               "occurredOn": on, "invoiceId": invoice}}, person.token)
    return data["recordPayment"]


async def balance(api: Api, person: Person, *, clinicians: list[Person] | None = None, chart: str | None = None) -> str:
    selection = {"clinicianIds": [c.gid for c in clinicians] if clinicians is not None else None, "chartId": chart}
    data = await api.ok(BALANCE, {"f": selection}, person.token)
    return data["practice"]["billing"]["currentBalance"]["amount"]


async def history(api: Api, person: Person, selection: dict | None = None, *, first: int | None = None,
                  after: str | None = None) -> dict:
    data = await api.ok(HISTORY, {"f": selection, "first": first, "after": after}, person.token)
    return data["practice"]["billing"]["history"]
