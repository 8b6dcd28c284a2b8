"""HTTP details of issue 13: gzip, link bases, every invalid field of an input in one answer."""

from __future__ import annotations

import gzip

import pytest

from bench import screens
from models import AuditEvent, BillingEntry, Practice
from tests import factories_billing as billing
from tests.conftest import PASSWORD

# ------------------------------------------------------------------ gzip


async def test_answers_over_a_kilobyte_are_gzipped_when_asked(api, client, capsys):
    g = await billing.make_group(api)
    for i in range(50):
        await billing.charge(api, g.owner, g.ann_chart, g.ann, "10.00", description=f"Session {i}")
    request = {"query": screens.BILLING_HISTORY, "variables": {"first": 50}}
    auth = {"authorization": f"Bearer {g.owner.token}"}
    plain = await client.post("/graphql", json=request, headers={**auth, "accept-encoding": "identity"})
    packed = await client.post("/graphql", json=request, headers={**auth, "accept-encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.json() == plain.json()
    assert len(packed.json()["data"]["practice"]["billing"]["history"]["edges"]) == 50
    raw, compressed = len(plain.content), packed.num_bytes_downloaded
    assert compressed == len(gzip.compress(plain.content, 6)) or compressed < raw / 4
    with capsys.disabled():
        print(f"\n50-row history page: {raw} bytes, {compressed} bytes gzipped")
    # Small answers are left alone.
    small = await client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={**auth, "accept-encoding": "gzip"}
    )
    assert "content-encoding" not in small.headers and len(small.content) < 1024


# ------------------------------------------------------------------ links


async def test_pdf_urls_use_the_api_base(app, settings):
    """(Invitation links use the app's base: tests/test_outbox.py reads them from the mail.)"""
    import httpx

    from server.app import create_app
    from tests.conftest import Api

    linked = create_app(settings.with_(public_url="https://api.example.com", app_url="https://app.example.com"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=linked), base_url="http://test") as http:
        linked_api = Api(http)
        g = await billing.make_group(linked_api)
        await billing.charge(linked_api, g.owner, g.ann_chart, g.ann, "10.00")
        statement = await linked_api.ok(
            """mutation($i: GenerateStatementInput!) { generateStatement(input: $i) { statement { pdfUrl } } }""",
            {
                "i": {
                    "chartId": g.ann_chart,
                    "clinicianIds": [g.ann.id],
                    "periodStart": "2026-03-01",
                    "periodEnd": "2026-03-31",
                }
            },
            g.owner.token,
        )
    assert statement["generateStatement"]["statement"]["pdfUrl"].startswith("https://api.example.com/statements/")


# ------------------------------------------------------------------ every invalid field in one answer


async def test_every_invalid_variable_field_is_one_error_naming_its_input_path(api):
    g = await billing.make_group(api)
    before = (await BillingEntry.all().count(), await AuditEvent.all().count())
    body = await api.post(
        billing.RECORD_PAYMENT,
        {
            "i": {
                "amount": "abc",  # unreadable: the Decimal scalar's NaN, refused with the others
                "occurredOn": "not a date",
                "clinicianIds": [g.ann.id, None],  # an item that must not be null
                "colour": "blue",  # no such field
                # chartId (required) left out
            }
        },
        g.owner.token,
    )
    assert body["data"] is None
    fields = sorted(e["extensions"]["field"] for e in body["errors"])
    assert fields == [
        "input.amount",
        "input.chartId",
        "input.clientIds.1".replace("client", "clinician"),
        "input.colour",
        "input.occurredOn",
    ], body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert (await BillingEntry.all().count(), await AuditEvent.all().count()) == before


async def test_a_variable_nested_in_a_literal_input_is_named_by_its_place(api):
    g = await billing.make_group(api)
    body = await api.post(
        """mutation($a: Decimal!, $d: Date!) { recordPayment(input: {chartId: "x", amount: $a, occurredOn: $d}) { entry
        { id } } }""",
        {"a": "12.00", "d": 20260303},
        g.owner.token,
    )
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "input.occurredOn")
    ]


async def test_a_missing_required_variable_names_its_argument(api):
    await api.sign_up()
    body = await api.post("mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }", {})
    assert [(e["extensions"]["code"], e["extensions"]["field"]) for e in body["errors"]] == [
        ("BAD_USER_INPUT", "input")
    ]


async def test_sign_up_with_several_fields_of_the_wrong_type_answers_each(api):
    body = await api.post(
        "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
        {"i": {"practiceName": 7, "name": "Olive", "email": ["olive@example.com"], "password": PASSWORD}},
    )
    assert sorted(e["extensions"]["field"] for e in body["errors"]) == [
        "input.email",
        "input.planCode",
        "input.practiceName",
    ]
    assert await Practice.all().count() == 0


@pytest.mark.parametrize("amount", ["abc", "1e5", "12.5.0"])
async def test_an_unreadable_amount_alone_is_still_refused_by_its_own_check(api, amount):
    """The Decimal scalar passes unreadable values on as NaN; with nothing else wrong, validation.amount names them."""
    g = await billing.make_group(api)
    code, body = await api.error(
        billing.RECORD_PAYMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "amount": amount, "occurredOn": "2026-03-03"}},
        g.owner.token,
    )
    assert code == "BAD_USER_INPUT" and [e["extensions"]["field"] for e in body["errors"]] == ["input.amount"]


# ------------------------------------------------------------------ links follow `serve --port`


def test_links_follow_the_serving_address_outside_production(tmp_path):
    """``groups-api serve --port N`` without GROUPS_API_PUBLIC_URL: pdfUrl points at port N, and answers there."""
    import httpx

    from tests.soak_server import Server

    server = Server(f"sqlite://{tmp_path / 'links.sqlite3'}", log=tmp_path / "server.log")
    server.start()
    try:

        def gql(query: str, variables: dict | None = None, token: str | None = None) -> dict:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            body = httpx.post(
                f"{server.url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            ).json()
            assert not body.get("errors"), body
            return body["data"]

        signed = gql("""mutation { signUp(input: {practiceName: "Links", name: "Lee", email: "lee@example.com",
                        password: "correct horse battery", planCode: "erx-lite"}) { accessToken member { id } } }""")[
            "signUp"
        ]
        token, owner = signed["accessToken"], signed["member"]["id"]
        chart = gql('mutation { createChart(input: {patientName: "Pat"}) { chart { id } } }', token=token)[
            "createChart"
        ]["chart"]["id"]
        gql(
            """mutation($c: ID!, $m: ID!) { recordCharge(input: {chartId: $c, clinicianId: $m, amount: "120.00",
               occurredOn: "2026-01-05", description: "Intake"}) { entry { id } } }""",
            {"c": chart, "m": owner},
            token,
        )
        pdf_url = gql(
            """mutation($c: ID!, $m: ID!) { generateStatement(input: {chartId: $c, clinicianIds: [$m],
                         periodStart: "2026-01-01", periodEnd: "2026-01-31"}) { statement { pdfUrl } } }""",
            {"c": chart, "m": owner},
            token,
        )["generateStatement"]["statement"]["pdfUrl"]
        assert pdf_url.startswith(f"{server.url}/statements/"), pdf_url
        pdf = httpx.get(pdf_url, headers={"authorization": f"Bearer {token}"})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    finally:
        server.stop()


# ------------------------------------------------------------------ every invalid field in one answer


async def test_every_invalid_field_of_an_input_is_refused_in_one_answer(api):
    """A form with several bad fields gets one BAD_USER_INPUT error per field, each naming it, and nothing is
    written."""
    from models import Chart, Practice

    practices = await Practice.all().count()
    body = await api.post(
        "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
        {"i": {"practiceName": " ", "name": "Olive", "email": "not-an-email", "password": "short", "planCode": "nope"}},
    )
    fields = [e["extensions"]["field"] for e in body["errors"]]
    assert fields == ["input.practiceName", "input.email", "input.password", "input.planCode"]
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}
    assert all(e["path"] == ["signUp"] for e in body["errors"])
    assert await Practice.all().count() == practices

    owner = (await api.sign_up())["accessToken"]
    charts = await Chart.all().count()
    body = await api.post(
        "mutation($i: CreateChartInput!) { createChart(input: $i) { chart { id } } }",
        {"i": {"patientName": "Pat", "dateOfBirth": "2999-01-01", "email": "x@", "phone": "call me"}},
        owner,
    )
    assert [e["extensions"]["field"] for e in body["errors"]] == ["input.dateOfBirth", "input.email", "input.phone"]
    assert await Chart.all().count() == charts


async def test_every_invalid_field_of_a_ledger_entry_is_refused_in_one_answer(api):
    from models import BillingEntry
    from tests.factories_billing import RECORD_CHARGE, make_group

    group = await make_group(api)
    entries = await BillingEntry.all().count()
    body = await api.post(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": group.ann_chart,
                "clinicianId": group.ann.id,
                "amount": "0.001",
                "occurredOn": "2999-01-01",
                "description": "  ",
            }
        },
        group.owner.token,
    )
    assert [e["extensions"]["field"] for e in body["errors"]] == [
        "input.amount",
        "input.occurredOn",
        "input.description",
    ]
    assert await BillingEntry.all().count() == entries
