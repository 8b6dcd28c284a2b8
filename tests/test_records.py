"""Records through the HTTP API: chart updates and archiving, void invoices, and statements in every alphabet.

Who finds which chart is in tests/test_charts.py and the authorization matrix; here are the rules of the records
themselves. Every refusal is checked to have changed nothing.
"""

from __future__ import annotations

import asyncio
import io
from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
from pypdf import PdfReader

from models import AuditEvent, BillingEntry, Chart, Invoice, InvoiceLine, VoidedInvoiceLine
from models.enums import Permission as P
from models.enums import Role, TokenScope
from resolvers.ids import parse
from tests import factories
from tests.conftest import postgres_only
from tests.factories_billing import (
    CREATE_INVOICE,
    GENERATE_STATEMENT,
    RECORD_ADJUSTMENT,
    RECORD_CHARGE,
    RECORD_PAYMENT,
    Group,
    add_chart,
    charge,
    make_group,
    partner_token,
    pay,
)

UPDATE_CHART = """mutation($i: UpdateChartInput!) { updateChart(input: $i) {
    chart { id patientName dateOfBirth email phone status } } }"""
CHARTS = """query($status: ChartStatus, $search: String) { practice { charts(status: $status, search: $search) {
    totalCount edges { node { id status } } } } }"""
CHART = """query($id: ID!) { node(id: $id) { ... on Chart { id patientName status notes { totalCount } } } }"""
VOID = """mutation($i: VoidInvoiceInput!) { voidInvoice(input: $i) { invoice { id number status total { amount }
    amountDue { amount } entries { totalCount edges { node { id } } } } } }"""
ENTRY_INVOICE = "query($id: ID!) { node(id: $id) { ... on BillingEntry { invoice { id } } } }"


@pytest.fixture
async def group(api) -> Group:
    return await make_group(api)


def today() -> str:
    return date.today().isoformat()


async def chart_row(gid: str) -> tuple:
    chart = await Chart.get(id=parse(gid)[1])
    return chart.patient_name, chart.patient_name_search, chart.date_of_birth, chart.email, chart.phone, chart.status


async def chart_ids(api, token: str, **variables) -> list[str]:
    data = await api.ok(CHARTS, variables, token)
    return [edge["node"]["id"] for edge in data["practice"]["charts"]["edges"]]


async def update(api, token: str, chart: str, **fields) -> dict:
    return (await api.ok(UPDATE_CHART, {"i": {"chartId": chart, **fields}}, token))["updateChart"]["chart"]


async def refused_update(api, token: str, chart: str, **fields) -> tuple[str, dict]:
    """The error of an update that must change nothing (the chart and the audit log's chart.updated events)."""
    before = await chart_row(chart), await AuditEvent.filter(action="chart.updated").count()
    code, body = await api.error(UPDATE_CHART, {"i": {"chartId": chart, **fields}}, token)
    assert (await chart_row(chart), await AuditEvent.filter(action="chart.updated").count()) == before, body
    return code, body


# ------------------------------------------------------------------ updateChart


async def test_update_chart_changes_demographics_and_audits_only_field_names(api, group):
    g = group
    chart = await update(
        api,
        g.ann.token,
        g.ann_chart,
        patientName="  Patricia Annsson ",
        dateOfBirth="1980-02-03",
        email="Pat@Example.com",
        phone="+1 555 0100",
    )
    assert chart == {
        "id": g.ann_chart,
        "patientName": "Patricia Annsson",
        "dateOfBirth": "1980-02-03",
        "email": "pat@example.com",
        "phone": "+1 555 0100",
        "status": "ACTIVE",
    }
    assert await chart_ids(api, g.owner.token, search="patricia") == [g.ann_chart]

    # Left-out fields stay; null (or blank) clears the optional ones.
    chart = await update(api, g.ann.token, g.ann_chart, email=None, phone="  ")
    assert (chart["patientName"], chart["dateOfBirth"], chart["email"], chart["phone"]) == (
        "Patricia Annsson",
        "1980-02-03",
        None,
        None,
    )

    events = await AuditEvent.filter(action="chart.updated").order_by("sequence")
    assert [(e.target_id, e.actor_id, e.details) for e in events] == [
        (g.ann_chart, g.ann.row.id, {"fields": ["dateOfBirth", "email", "patientName", "phone"]}),
        (g.ann_chart, g.ann.row.id, {"fields": ["email", "phone"]}),
    ]
    assert "Patricia" not in str([e.details for e in events])

    # Changing nothing writes nothing.
    await update(api, g.ann.token, g.ann_chart, patientName="Patricia Annsson", email=None)
    assert await AuditEvent.filter(action="chart.updated").count() == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"patientName": "   "}, "input.patientName"),
        ({"patientName": None}, "input.patientName"),
        ({"patientName": "x" * 201}, "input.patientName"),
        ({"dateOfBirth": "1899-12-31"}, "input.dateOfBirth"),
        ({"dateOfBirth": (date.today() + timedelta(days=2)).isoformat()}, "input.dateOfBirth"),
        ({"email": "not-an-email"}, "input.email"),
        ({"phone": "call me"}, "input.phone"),
        ({"status": None}, "input.status"),
        ({"patientName": "Fine Name", "email": "bad"}, "input.email"),
    ],
)
async def test_update_chart_validates_like_create_chart_and_writes_nothing(api, group, fields, field):
    code, body = await refused_update(api, group.owner.token, group.ann_chart, **fields)
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", field)


async def test_who_may_update_a_chart(api, group):
    """The owner, the chart's assigned clinicians, VIEW_ALL_CHARTS and ASSIGN_CHARTS; MANAGE_BILLING finds the chart
    but may not edit it; anyone else does not find it."""
    g = group
    allowed = [
        g.owner,
        g.ann,
        await g.member("Vic Viewall", Role.CLINICIAN, [P.VIEW_ALL_CHARTS]),
        await g.member("Ada Assigner", Role.ADMINISTRATOR, [P.ASSIGN_CHARTS]),
        await g.member("Avi Viewall", Role.ADMINISTRATOR, [P.VIEW_ALL_CHARTS]),
        await partner_token(g, g.owner, [TokenScope.WRITE_CHARTS]),
    ]
    for n, person in enumerate(allowed):
        assert (await update(api, person.token, g.ann_chart, patientName=f"Name {n}"))["patientName"] == f"Name {n}"

    other = await factories.sign_up(api, practice="Elsewhere", email="else@example.com")
    refused = [
        (await g.member("Bill Biller", Role.ADMINISTRATOR, [P.MANAGE_BILLING]), "FORBIDDEN"),
        (await g.member("Cal Biller", Role.CLINICIAN, [P.MANAGE_BILLING]), "FORBIDDEN"),
        (g.ben, "NOT_FOUND"),
        (await g.member("Ann Admin", Role.ADMINISTRATOR), "NOT_FOUND"),
        (other, "NOT_FOUND"),
        (await partner_token(g, g.owner, [TokenScope.READ_CHARTS]), "FORBIDDEN"),
    ]
    for person, expected in refused:
        code, _ = await refused_update(api, person.token, g.ann_chart, patientName="Nope", status="ARCHIVED")
        assert code == expected, person.email


async def test_archiving_hides_a_chart_from_the_list_unless_asked_for_and_keeps_its_history(api, group):
    g = group
    await charge(api, g.ann, g.ann_chart, g.ann, "90.00", on=today())
    await api.ok(
        "mutation($i: AddChartNoteInput!) { addChartNote(input: $i) { note { id } } }",
        {"i": {"chartId": g.ann_chart, "body": "Discharged."}},
        g.ann.token,
    )
    assert (await update(api, g.ann.token, g.ann_chart, status="ARCHIVED"))["status"] == "ARCHIVED"
    event = await AuditEvent.get(action="chart.updated")
    assert event.details == {"fields": ["status"], "status": "ARCHIVED"}

    for person in (g.owner, g.ann):
        assert g.ann_chart not in await chart_ids(api, person.token)
        assert await chart_ids(api, person.token, status="ARCHIVED") == [g.ann_chart]
    assert set(await chart_ids(api, g.owner.token, status="ACTIVE")) == {g.ben_chart, g.shared_chart}
    # Its history stays readable: the chart itself, its notes, its billing.
    chart = (await api.ok(CHART, {"id": g.ann_chart}, g.ann.token))["node"]
    assert chart == {"id": g.ann_chart, "patientName": "Pat Annsson", "status": "ARCHIVED", "notes": {"totalCount": 1}}
    history = await api.ok(
        "query($f: BillingFilter) { practice { billing { history(filter: $f) { edges { node { id } } } } } }",
        {"f": {"chartId": g.ann_chart}},
        g.ann.token,
    )
    assert len(history["practice"]["billing"]["history"]["edges"]) == 1

    # ACTIVE brings it back.
    await update(api, g.ann.token, g.ann_chart, status="ACTIVE")
    assert g.ann_chart in await chart_ids(api, g.ann.token)


async def test_an_archived_chart_refuses_new_charges_but_not_payments_or_statements(api, group):
    g = group
    await charge(api, g.ann, g.ann_chart, g.ann, "100.00", on=today())
    await update(api, g.owner.token, g.ann_chart, status="ARCHIVED")

    before = await BillingEntry.all().count(), await AuditEvent.filter(action="billing.charge_recorded").count()
    for person in (g.ann, g.owner):
        code, body = await api.error(
            RECORD_CHARGE,
            {
                "i": {
                    "chartId": g.ann_chart,
                    "clinicianId": g.ann.id,
                    "amount": "10.00",
                    "occurredOn": today(),
                    "description": "Session",
                }
            },
            person.token,
        )
        assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.chartId")
    assert (
        await BillingEntry.all().count(),
        await AuditEvent.filter(action="billing.charge_recorded").count(),
    ) == before

    paid = await pay(api, g.ann, g.ann_chart, g.ann, "30.00", on=today())
    assert paid["balance"]["amount"] == "70.00"
    adjusted = await api.ok(
        RECORD_ADJUSTMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "-20.00",
                "occurredOn": today(),
                "description": "Write-off",
            }
        },
        g.owner.token,
    )
    assert adjusted["recordAdjustment"]["balance"]["amount"] == "50.00"
    invoice = await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.ann.token)
    assert invoice["createInvoice"]["invoice"]["total"]["amount"] == "100.00"
    statement = await api.ok(
        GENERATE_STATEMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "periodStart": today(), "periodEnd": today()}},
        g.ann.token,
    )
    pdf = await api.client.get(
        urlsplit(statement["generateStatement"]["statement"]["pdfUrl"]).path,
        headers={"Authorization": f"Bearer {g.ann.token}"},
    )
    assert pdf.status_code == 200 and "Closing balance: USD 50.00" in pdf_text(pdf.content)


@postgres_only()
async def test_charges_racing_an_archive_land_before_it_or_not_at_all(api, group):
    """Every charge that lands is committed before the archive (the audit chain's order is the commit order)."""
    g = group

    async def one_charge(n: int) -> dict:
        return await api.post(
            RECORD_CHARGE,
            {
                "i": {
                    "chartId": g.ann_chart,
                    "clinicianId": g.ann.id,
                    "amount": f"{n}.00",
                    "occurredOn": today(),
                    "description": "Session",
                }
            },
            g.ann.token,
        )

    calls = [one_charge(n) for n in range(1, 13)]
    calls.insert(6, api.post(UPDATE_CHART, {"i": {"chartId": g.ann_chart, "status": "ARCHIVED"}}, g.owner.token))
    results = await asyncio.gather(*calls)
    assert not results[6].get("errors"), results[6]
    for body in results[:6] + results[7:]:
        assert not body.get("errors") or body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    archived = await AuditEvent.get(action="chart.updated")
    landed = await AuditEvent.filter(action="billing.charge_recorded")
    assert all(e.sequence < archived.sequence for e in landed)
    assert (
        len(landed) == await BillingEntry.filter(kind="CHARGE").count() == sum(not b.get("errors") for b in results) - 1
    )


# ------------------------------------------------------------------ voidInvoice


async def ledger_state() -> tuple:
    invoices = sorted((i.number, i.status, i.paid_cents) for i in await Invoice.all())
    return (
        invoices,
        await InvoiceLine.all().count(),
        await VoidedInvoiceLine.all().count(),
        await BillingEntry.all().count(),
        await AuditEvent.filter(action__startswith="billing.").count(),
    )


async def open_invoice(api, g: Group, *amounts: str) -> dict:
    for amount in amounts:
        await charge(api, g.owner, g.ann_chart, g.ann, amount, on=today())
    data = await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.owner.token)
    return data["createInvoice"]["invoice"]


async def void(api, token: str, invoice: str, reason: str = "Issued in error") -> dict:
    return (await api.ok(VOID, {"i": {"invoiceId": invoice, "reason": reason}}, token))["voidInvoice"]["invoice"]


async def refused_void(api, token: str, invoice: str, reason: str = "Issued in error") -> tuple[str, dict]:
    before = await ledger_state()
    code, body = await api.error(VOID, {"i": {"invoiceId": invoice, "reason": reason}}, token)
    assert await ledger_state() == before, body
    return code, body


async def test_a_void_invoice_keeps_its_charges_listed_and_frees_them_for_a_new_invoice(api, group):
    g = group
    first = await open_invoice(api, g, "80.00", "40.00")
    charges = {edge["node"]["id"] for edge in first["entries"]["edges"]}
    voided = await void(api, g.ann.token, first["id"], reason="  Wrong rate  ")
    assert (voided["status"], voided["number"], voided["total"]["amount"]) == ("VOID", first["number"], "120.00")
    assert {edge["node"]["id"] for edge in voided["entries"]["edges"]} == charges
    for entry in charges:
        assert (await api.ok(ENTRY_INVOICE, {"id": entry}, g.owner.token))["node"]["invoice"] is None

    event = await AuditEvent.get(action="billing.invoice_voided")
    assert (event.target_id, event.actor_id) == (first["id"], g.ann.row.id)
    assert event.details == {
        "number": first["number"],
        "reason": "Wrong rate",
        "clinician": g.ann.id,
        "chart": g.ann_chart,
        "charges": 2,
    }

    second = (await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.owner.token))[
        "createInvoice"
    ]["invoice"]
    assert second["total"]["amount"] == "120.00" and {e["node"]["id"] for e in second["entries"]["edges"]} == charges
    for entry in charges:
        assert (await api.ok(ENTRY_INVOICE, {"id": entry}, g.owner.token))["node"]["invoice"] == {"id": second["id"]}
    # The void one still lists what it held; listing it with its status works.
    listed = await api.ok(
        "{ practice { billing { invoices(status: VOID) { edges { node { id entries { totalCount } } } } } } }",
        token=g.owner.token,
    )
    assert listed["practice"]["billing"]["invoices"]["edges"] == [
        {"node": {"id": first["id"], "entries": {"totalCount": 2}}}
    ]


async def test_only_open_invoices_without_payments_are_voided(api, group):
    g = group
    partly = await open_invoice(api, g, "100.00")
    await pay(api, g.ann, g.ann_chart, g.ann, "10.00", on=today(), invoice=partly["id"])
    assert (await refused_void(api, g.owner.token, partly["id"]))[0] == "CONFLICT"
    await pay(api, g.ann, g.ann_chart, g.ann, "90.00", on=today(), invoice=partly["id"])
    assert (await refused_void(api, g.owner.token, partly["id"]))[0] == "CONFLICT"  # PAID

    once = await open_invoice(api, g, "50.00")
    await void(api, g.owner.token, once["id"])
    assert (await refused_void(api, g.owner.token, once["id"]))[0] == "CONFLICT"  # VOID already
    # A payment on a void invoice is refused as on any invoice that is not OPEN.
    before = await ledger_state()
    code, _ = await api.error(
        RECORD_PAYMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianIds": [g.ann.id],
                "amount": "5.00",
                "occurredOn": today(),
                "invoiceId": once["id"],
            }
        },
        g.ann.token,
    )
    assert code == "CONFLICT" and await ledger_state() == before


async def test_who_may_void_an_invoice(api, group):
    """The invoice's clinician or MANAGE_BILLING; FORBIDDEN to another who sees it, NOT_FOUND to anyone else."""
    g = group
    invoice = await open_invoice(api, g, "60.00")
    other = await factories.sign_up(api, practice="Elsewhere", email="else@example.com")
    refused = [
        (g.ben, "NOT_FOUND"),
        (await g.member("Ada Admin", Role.ADMINISTRATOR), "NOT_FOUND"),
        (await g.member("Vera Viewer", Role.ADMINISTRATOR, [P.VIEW_BILLING]), "FORBIDDEN"),
        (await g.member("Cleo Viewer", Role.CLINICIAN, [P.VIEW_BILLING, P.VIEW_ALL_CHARTS]), "FORBIDDEN"),
        (other, "NOT_FOUND"),
        (await partner_token(g, g.owner, [TokenScope.READ_BILLING]), "FORBIDDEN"),
    ]
    for person, expected in refused:
        assert (await refused_void(api, person.token, invoice["id"]))[0] == expected, person.email
    code, body = await refused_void(api, g.owner.token, invoice["id"], reason="   ")
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.reason")

    manager = await g.member("Max Manager", Role.ADMINISTRATOR, [P.MANAGE_BILLING])
    assert (await void(api, manager.token, invoice["id"]))["status"] == "VOID"
    own = await open_invoice(api, g, "70.00")
    assert (await void(api, g.ann.token, own["id"]))["status"] == "VOID"
    token = await partner_token(g, g.owner, [TokenScope.WRITE_BILLING])
    third = await open_invoice(api, g, "75.00")
    assert (await void(api, token.token, third["id"]))["status"] == "VOID"


@postgres_only()
async def test_a_void_and_a_payment_of_one_invoice_never_both_land(api, group):
    g = group
    for _ in range(3):
        # A voided invoice frees its charges for the next one: pay whatever this invoice totals.
        invoice = await open_invoice(api, g, "40.00")
        total = invoice["total"]["amount"]
        paid, voided = await asyncio.gather(
            api.post(
                RECORD_PAYMENT,
                {
                    "i": {
                        "chartId": g.ann_chart,
                        "clinicianIds": [g.ann.id],
                        "amount": total,
                        "occurredOn": today(),
                        "invoiceId": invoice["id"],
                    }
                },
                g.ann.token,
            ),
            api.post(VOID, {"i": {"invoiceId": invoice["id"], "reason": "Duplicate"}}, g.owner.token),
        )
        outcomes = sorted(bool(body.get("errors")) for body in (paid, voided))
        assert outcomes == [False, True], (paid, voided)
        row = await Invoice.get(id=parse(invoice["id"])[1])
        assert (row.status, row.paid_cents) in (("PAID", row.total_cents), ("VOID", 0))


# ------------------------------------------------------------------ statements in every alphabet


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def pdf_fonts(content: bytes) -> set[str]:
    fonts = set()
    for page in PdfReader(io.BytesIO(content)).pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    return fonts


async def test_a_statement_prints_names_in_every_patients_alphabet(api, group):
    g = group
    names = ["Łucja Wąsowska", "Ελένη", "Анна", "山田太郎"]
    clinician = await factories.add_member(api, g.owner.slug, "eleni@example.com", name="Ελένη Παπαδοπούλου")
    for name in names:
        chart = await add_chart(g.practice, name, created_by=g.owner.row.id, clinicians=[clinician.row.id])
        await charge(api, clinician, chart, clinician, "10.00", on=today(), description=f"Séance – {name}")
        data = await api.ok(
            GENERATE_STATEMENT,
            {"i": {"chartId": chart, "clinicianIds": [clinician.id], "periodStart": today(), "periodEnd": today()}},
            clinician.token,
        )
        statement = data["generateStatement"]["statement"]
        response = await api.client.get(
            urlsplit(statement["pdfUrl"]).path, headers={"Authorization": f"Bearer {clinician.token}"}
        )
        assert response.status_code == 200
        text = pdf_text(response.content)
        for expected in (
            f"Patient: {name}",
            "Clinician: Ελένη Παπαδοπούλου",
            f"Séance – {name}",
            "Closing balance: USD 10.00",
        ):
            assert expected in text, (expected, text)
        fonts = pdf_fonts(response.content)
        assert all("NotoSans" in font for font in fonts), fonts
        # The CJK face is embedded only for the statement that needs it.
        assert any("NotoSansJP" in font for font in fonts) == (name == "山田太郎"), fonts


async def test_finding_every_chart_is_not_treating_it_the_billed_clinician_must_treat_the_chart(api, group):
    """With v3's reach, MANAGE_BILLING and ASSIGN_CHARTS find every chart; the clinician an entry is for must still
    treat the chart (assigned to it, or holding VIEW_ALL_CHARTS, or the owner), the caller billing themself included."""
    cora = await factories.add_member(
        api, group.owner.slug, "cora@calm.example.com", permissions=(P.MANAGE_BILLING, P.ASSIGN_CHARTS)
    )
    entries = await BillingEntry.all().count()
    for person, clinician in ((cora, cora), (group.owner, cora), (group.owner, group.ben)):
        variables = {
            "i": {
                "chartId": group.ann_chart,
                "clinicianId": clinician.id,
                "amount": "10.00",
                "occurredOn": today(),
                "description": "Session",
            }
        }
        code, body = await api.error(RECORD_CHARGE, variables, person.token)
        assert code == "BAD_USER_INPUT", body
        assert body["errors"][0]["extensions"]["field"] == "input.clinicianId"
    assert await BillingEntry.all().count() == entries
    # Cora bills for Ann, who treats the chart: allowed (MANAGE_BILLING).
    await charge(api, cora, group.ann_chart, group.ann, "10.00", on=today())
    assert await BillingEntry.all().count() == entries + 1
