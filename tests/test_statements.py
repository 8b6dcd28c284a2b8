"""Statements through the HTTP API: what they freeze, their numbers, who sees them, and their PDF."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from pypdf import PdfReader

from models import AuditEvent, BillingCounter, Statement
from models.enums import Permission as P
from models.enums import Role, TokenScope
from resolvers.ids import encode
from tests.conftest import postgres_only
from tests.factories import Account, sql_statements
from tests.factories_billing import (
    GENERATE_STATEMENT,
    RECORD_ADJUSTMENT,
    STATEMENT,
    Group,
    add_chart,
    charge,
    make_group,
    partner_token,
    pay,
)

NODE = f"query($id: ID!) {{ node(id: $id) {{ ... on Statement {{ {STATEMENT} }} }} }}"
LIST = """query($f: BillingFilter) { practice { billing { statements(filter: $f) {
    totalCount edges { node { number clinician { id } periodStart periodEnd } } } } } }"""


@pytest.fixture
async def group(api) -> Group:
    return await make_group(api)


async def generate(
    api, person: Account, chart: str, clinician: Account, start: str = "2026-03-01", end: str = "2026-03-31"
) -> dict:
    data = await api.ok(
        GENERATE_STATEMENT,
        {"i": {"chartId": chart, "clinicianIds": [clinician.id], "periodStart": start, "periodEnd": end}},
        person.token,
    )
    return data["generateStatement"]["statement"]


async def seed(api, g: Group) -> None:
    """Ann on her chart: 70.00 before March, three entries in March, one after; noise from Ben and another chart."""
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00", on="2026-02-10")
    await pay(api, g.ann, g.ann_chart, g.ann, "30.00", on="2026-02-20")
    await charge(api, g.ann, g.ann_chart, g.ann, "90.00", on="2026-03-05", description="Therapy session")
    await api.ok(
        RECORD_ADJUSTMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "-4.50",
                "occurredOn": "2026-03-10",
                "description": "Courtesy discount",
            }
        },
        g.owner.token,
    )
    await pay(api, g.ann, g.ann_chart, g.ann, "50.00", on="2026-03-31")
    await charge(api, g.ann, g.ann_chart, g.ann, "25.00", on="2026-04-02")
    await charge(api, g.ann, g.shared_chart, g.ann, "11.00", on="2026-03-06")
    await charge(api, g.ben, g.shared_chart, g.ben, "12.00", on="2026-03-06")


def amounts(statement: dict) -> list[str]:
    return [e["node"]["amount"]["amount"] for e in statement["entries"]["edges"]]


async def pdf_of(api, statement: dict, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await api.client.get(urlsplit(statement["pdfUrl"]).path, headers=headers)


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


# ------------------------------------------------------------------ what a statement freezes


async def test_a_statement_freezes_opening_balance_entries_and_closing_balance(api, group):
    g = group
    await seed(api, g)
    statement = await generate(api, g.ann, g.ann_chart, g.ann)
    assert statement["number"] == "S-000001"
    assert statement["patientName"] == "Pat Annsson" and statement["chart"]["id"] == g.ann_chart
    assert statement["clinician"]["id"] == g.ann.id and statement["createdBy"]["id"] == g.ann.id
    assert (statement["periodStart"], statement["periodEnd"]) == ("2026-03-01", "2026-03-31")
    assert statement["openingBalance"]["amount"] == "70.00"
    assert amounts(statement) == ["90.00", "-4.50", "50.00"]  # oldest first; the period's last day included
    assert statement["closingBalance"]["amount"] == "105.50"
    # An entry back-dated into the period later does not change the statement.
    await charge(api, g.ann, g.ann_chart, g.ann, "20.00", on="2026-03-15")
    again = (await api.ok(NODE, {"id": statement["id"]}, g.ann.token))["node"]
    assert amounts(again) == ["90.00", "-4.50", "50.00"] and again["closingBalance"]["amount"] == "105.50"
    # A new statement of the same period sees it.
    fresh = await generate(api, g.owner, g.ann_chart, g.ann)
    assert fresh["number"] == "S-000002"
    assert amounts(fresh) == ["90.00", "-4.50", "20.00", "50.00"] and fresh["closingBalance"]["amount"] == "125.50"


async def test_an_empty_period_carries_the_balance_over(api, group):
    g = group
    await seed(api, g)
    statement = await generate(api, g.ann, g.ann_chart, g.ann, "2026-05-01", "2026-05-31")
    assert statement["openingBalance"] == statement["closingBalance"] == {"amount": "130.50"}
    assert statement["entries"] == {"totalCount": 0, "edges": []}


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-03-31", "2026-03-01", "input.periodStart"),
        ("2026-03-01", "2999-12-31", "input.periodEnd"),
    ],
)
async def test_a_bad_period_is_refused_without_taking_a_number(api, group, start, end, field):
    g = group
    code, body = await api.error(
        GENERATE_STATEMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "periodStart": start, "periodEnd": end}},
        g.ann.token,
    )
    assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == field
    assert await Statement.all().count() == 0
    assert (await generate(api, g.ann, g.ann_chart, g.ann))["number"] == "S-000001"


async def test_numbers_run_per_practice(api, group):
    g = group
    assert [(await generate(api, g.ann, g.ann_chart, g.ann))["number"] for _ in range(3)] == [
        "S-000001",
        "S-000002",
        "S-000003",
    ]
    other = await make_group(api, practice="Other Minds", email="other@example.com")
    assert (await generate(api, other.owner, other.ann_chart, other.ann))["number"] == "S-000001"
    assert sorted(c.last_value for c in await BillingCounter.filter(name="statement")) == [1, 3]


# ------------------------------------------------------------------ who sees statements


async def test_statements_are_seen_like_the_entries_they_hold(api, group):
    g = group
    await seed(api, g)
    ann_statement = await generate(api, g.ann, g.ann_chart, g.ann)
    ben_statement = await generate(api, g.ben, g.shared_chart, g.ben, "2026-02-01", "2026-02-28")

    async def numbers(person: Account, selection: dict | None = None) -> list[str]:
        data = await api.ok(LIST, {"f": selection}, person.token)
        return [e["node"]["number"] for e in data["practice"]["billing"]["statements"]["edges"]]

    assert await numbers(g.owner) == ["S-000002", "S-000001"]  # newest number first
    assert await numbers(g.owner, {"clinicianIds": [g.ann.id]}) == ["S-000001"]
    assert await numbers(g.owner, {"from": "2026-03-15", "to": "2026-04-30"}) == ["S-000001"]  # periods overlapping
    assert await numbers(g.owner, {"chartId": g.shared_chart}) == ["S-000002"]
    assert await numbers(g.ann) == ["S-000001"]
    assert await numbers(g.ben) == ["S-000002"]
    code, _ = await api.error(LIST, {"f": {"clinicianIds": [g.ann.id]}}, g.ben.token)
    assert code == "FORBIDDEN"
    assert (await api.ok(NODE, {"id": ann_statement["id"]}, g.ben.token))["node"] is None
    assert (await api.ok(NODE, {"id": ben_statement["id"]}, g.owner.token))["node"]["number"] == "S-000002"
    admin = await g.member("Adam Admin", Role.ADMINISTRATOR, [P.VIEW_ALL_CHARTS])
    code, _ = await api.error(LIST, token=admin.token)
    assert code == "FORBIDDEN"
    assert (await api.ok(NODE, {"id": ann_statement["id"]}, admin.token))["node"] is None


# ------------------------------------------------------------------ the PDF


async def test_the_pdf_shows_the_statement_and_its_totals(api, group):
    g = group
    await seed(api, g)
    statement = await generate(api, g.ann, g.ann_chart, g.ann)
    response = await pdf_of(api, statement, g.ann.token)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    for expected in [
        "Calm Minds",
        "Statement S-000001",
        "Patient: Pat Annsson",
        "Clinician: Ann Clinician",
        "Period: 2026-03-01 to 2026-03-31",
        "Opening balance: USD 70.00",
        "Closing balance: USD 105.50",
        "Therapy session",
        "Courtesy discount",
        "USD 90.00",
        "USD -4.50",
        "USD 160.00",
        "USD 155.50",
    ]:
        assert expected in text, (expected, text)
    assert "25.00" not in text and "11.00" not in text  # outside the period / another chart
    downloads = await AuditEvent.filter(action="billing.statement_downloaded")
    assert [(e.target_id, e.actor_id) for e in downloads] == [(statement["id"], g.ann.row.id)]


async def test_the_pdf_copes_with_names_outside_latin_1(api, group):
    g = group
    chart = await add_chart(g.practice, "Łukasz Dvořák", created_by=g.owner.row.id, clinicians=[g.ann.row.id])
    await charge(api, g.ann, chart, g.ann, "10.00", description="Séance – suivi")
    response = await pdf_of(api, await generate(api, g.ann, chart, g.ann), g.ann.token)
    assert response.status_code == 200
    text = pdf_text(response.content)
    assert "Łukasz Dvořák" in text and "Séance – suivi" in text and "Closing balance: USD 10.00" in text


async def test_the_pdf_has_the_same_authorization_as_the_graphql_field(api, group):
    g = group
    await seed(api, g)
    statement = await generate(api, g.ann, g.ann_chart, g.ann)

    async def status(token: str | None) -> int:
        return (await pdf_of(api, statement, token)).status_code

    anonymous = await pdf_of(api, statement, None)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await status("not-a-token") == 401
    assert await status(g.owner.token) == 200
    assert await status(g.ben.token) == 404  # a clinician without VIEW_BILLING: someone else's statement
    assert await status((await g.member("Adam Admin", Role.ADMINISTRATOR, [P.VIEW_ALL_CHARTS])).token) == 404
    assert await status((await g.member("Bea Biller", Role.ADMINISTRATOR, [P.VIEW_BILLING])).token) == 200
    assert await status((await g.member("Vic Viewer", Role.CLINICIAN, [P.VIEW_BILLING])).token) == 200
    other = await api.sign_up(practice="Elsewhere", email="else@example.com")
    assert await status(other["accessToken"]) == 404

    assert await status((await partner_token(g, g.owner, [TokenScope.READ_BILLING])).token) == 200
    assert (
        await status((await partner_token(g, g.owner, [TokenScope.WRITE_BILLING, TokenScope.READ_CHARTS])).token) == 403
    )
    # Ids that are not this statement's: unknown, malformed, or of another type.
    for bogus in [encode("Statement", uuid.uuid4()), "garbage", g.ann_chart]:
        response = await api.client.get(
            f"/statements/{bogus}.pdf", headers={"Authorization": f"Bearer {g.owner.token}"}
        )
        assert response.status_code == 404


# ------------------------------------------------------------------ concurrency (PostgreSQL)


@postgres_only()
async def test_concurrent_statements_get_unique_gapless_numbers(api, group):
    g = group
    await charge(api, g.owner, g.shared_chart, g.ann, "10.00")
    requests = [
        (g.ann, g.ann_chart, g.ann),
        (g.ben, g.ben_chart, g.ben),
        (g.owner, g.shared_chart, g.ann),
        (g.owner, g.shared_chart, g.ben),
    ] * 3
    results = await asyncio.gather(
        *[
            api.post(
                GENERATE_STATEMENT,
                {
                    "i": {
                        "chartId": chart,
                        "clinicianIds": [clinician.id],
                        "periodStart": "2026-03-01",
                        "periodEnd": "2026-03-31",
                    }
                },
                person.token,
            )
            for person, chart, clinician in requests
        ]
    )
    assert all(not r.get("errors") for r in results), [r["errors"] for r in results if r.get("errors")]
    numbers = sorted(r["data"]["generateStatement"]["statement"]["number"] for r in results)
    assert numbers == [f"S-{n:06d}" for n in range(1, len(requests) + 1)]
    assert sorted(s.sequence for s in await Statement.all()) == list(range(1, len(requests) + 1))


ENTRIES_PAGE = """query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Statement {
    entries(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { amount { amount
    } } } } } } }"""


async def test_a_statements_entries_page_by_keyset(api, group, clock):
    g = group
    for day, amount in [
        ("2026-03-03", "1.00"),
        ("2026-03-01", "2.00"),
        ("2026-03-03", "3.00"),
        ("2026-03-02", "4.00"),
        ("2026-03-03", "5.00"),
    ]:
        await charge(api, g.ann, g.ann_chart, g.ann, amount, on=day)
        clock.advance(timedelta(seconds=1))
    statement = await generate(api, g.ann, g.ann_chart, g.ann)
    seen, after, totals = [], None, []
    while True:
        data = await api.ok(ENTRIES_PAGE, {"id": statement["id"], "first": 2, "after": after}, g.ann.token)
        page = data["node"]["entries"]
        seen += [e["node"]["amount"]["amount"] for e in page["edges"]]
        totals.append(page["totalCount"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["2.00", "4.00", "1.00", "3.00", "5.00"]
    assert totals == [5, None, None]


async def test_listing_statements_with_their_entries_costs_the_same_queries_for_more_statements(api, group, caplog):
    g = group
    await seed(api, g)
    query = """{ practice { billing { statements { edges { node { number patientName chart { id } clinician { name }
        entries { totalCount edges { node { amount { amount } clinician { name } chart { id } invoice { id } } } } } } }
        } } }"""

    async def selects() -> int:
        with sql_statements(caplog) as statements:
            await api.ok(query, token=g.owner.token)
        return len(statements)

    await generate(api, g.ann, g.ann_chart, g.ann)
    one = await selects()
    for chart, clinician in [
        (g.shared_chart, g.ann),
        (g.shared_chart, g.ben),
        (g.ann_chart, g.ann),
        (g.ben_chart, g.ben),
    ]:
        await generate(api, g.owner, chart, clinician, "2026-01-01", "2026-04-30")
    assert await selects() == one
