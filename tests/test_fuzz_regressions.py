"""One test per defect the schema fuzzing (tests/test_fuzz.py) found, each the smallest request that showed it.

Every answer must also pass the fuzzing's own check (``response_problems``: no 5xx, a code on every error, never
INTERNAL, no internal detail). Several defects showed only on PostgreSQL (NUL characters, times outside the UTC
range); the tests pin the refusal's code, so they fail on SQLite too when the rule is gone.
"""

from __future__ import annotations

import base64
import json
import uuid

import orjson
import pytest

from resolvers.pagination import encode_cursor
from tests import factories_billing as billing
from tests import factories_charts as charts
from tests.fuzz_checks import response_problems

AUDIT_LOG = (
    "query($f: AuditFilter, $after: String) { practice { auditLog(filter: $f, after: $after) { edges { node { "
    "id action } } } } }"
)
CHARTS = (
    "query($after: String, $search: String) { practice { charts(after: $after, search: $search) { edges { node { "
    "id } } } } }"
)
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"


async def answer(client, body: bytes | str | dict, token: str | None = None, **headers: str) -> tuple[int, dict]:
    """(status, JSON body) of a POST /graphql that must be acceptable whatever it says."""
    content = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    headers = {"content-type": "application/json", **headers}
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = await client.post("/graphql", content=content, headers=headers)
    assert not response_problems(response.status_code, response.content), response.content[:500]
    return response.status_code, orjson.loads(response.content)


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or ()]


# ------------------------------------------------------------------ inputs the database could not take


async def test_log_in_with_a_slug_or_email_longer_than_their_columns_is_invalid_credentials(api, client):
    """Was INTERNAL: Tortoise validates filter values against the column length and raised ValidationError."""
    await api.sign_up()
    for slug, email in (("x" * 81, "owner@example.com"), ("calm-minds", "o" * 400 + "@example.com")):
        _, body = await answer(
            client,
            {"query": LOG_IN, "variables": {"i": {"practiceSlug": slug, "email": email, "password": "whatever it is"}}},
        )
        assert codes(body) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    "field, value",
    [("patientName", "Pat\x00Patient"), ("email", "pat@exa\x00mple.com"), ("phone", "555\x00 0100")],
)
async def test_text_with_a_nul_character_is_bad_input(api, client, field, value):
    """Was INTERNAL on PostgreSQL (text columns refuse NUL: "invalid byte sequence for encoding UTF8: 0x00")."""
    owner = await charts.owner(api)
    chart = {"patientName": "Pat Patient", field: value}
    _, body = await answer(client, {"query": charts.CREATE_CHART, "variables": {"input": chart}}, owner.token)
    assert codes(body) == ["BAD_USER_INPUT"] and body["data"] is None


async def test_a_nul_character_in_a_string_literal_is_bad_input(api, client):
    owner = await charts.owner(api)
    query = 'mutation { createChart(input: {patientName: "Pat\\u0000Patient"}) { chart { id } } }'
    _, body = await answer(client, {"query": query}, owner.token)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert (await api.ok("{ practice { charts { totalCount } } }", token=owner.token))["practice"]["charts"][
        "totalCount"
    ] == 0


@pytest.mark.parametrize(
    "operation, variables",
    [
        (
            LOG_IN,
            {"i": {"practiceSlug": "calm\x00minds", "email": "owner@example.com", "password": "correct horse battery"}},
        ),
        (CHARTS, {"search": "Pat\x00"}),
        (AUDIT_LOG, {"f": {"action": "chart.created\x00"}}),
    ],
)
async def test_a_nul_character_in_a_lookup_is_bad_input(api, client, operation, variables):
    """Was INTERNAL on PostgreSQL: the value reached a WHERE clause."""
    owner = await charts.owner(api)
    _, body = await answer(client, {"query": operation, "variables": variables}, owner.token)
    assert codes(body) == ["BAD_USER_INPUT"]


async def test_an_unpaired_surrogate_is_refused_before_anything_reads_it(api, client):
    """Was INTERNAL (no UTF-8 form: SQLite, asyncpg and token hashing all failed on it)."""
    owner = await charts.owner(api)
    query = json.dumps({"query": charts.CREATE_CHART, "variables": {"input": {"patientName": "Pat"}}})
    status, body = await answer(client, query.replace('"Pat"', '"Pat\\ud800"'), owner.token)
    assert (status, codes(body)) == (400, ["BAD_REQUEST"])


async def test_an_amount_of_more_digits_than_decimals_hold_is_bad_input(api, client):
    """Was INTERNAL: quantizing it to cents raised decimal.InvalidOperation before the range was checked."""
    group = await billing.make_group(api)
    entry = {
        "chartId": group.ann_chart,
        "clinicianId": group.ann.id,
        "amount": "123456789012345678901234567890.123",
        "occurredOn": "2026-03-02",
        "description": "Session",
    }
    _, body = await answer(client, {"query": billing.RECORD_CHARGE, "variables": {"i": entry}}, group.owner.token)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "input.amount"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
async def test_a_time_outside_the_utc_range_is_bad_input(api, client, moment):
    """Was INTERNAL on PostgreSQL: asyncpg could not encode the time once converted to UTC."""
    owner = await charts.owner(api)
    _, body = await answer(client, {"query": AUDIT_LOG, "variables": {"f": {"from": moment}}}, owner.token)
    assert codes(body) == ["BAD_USER_INPUT"]


# ------------------------------------------------------------------ the audit log's filters


@pytest.mark.parametrize("field", ["action", "targetId"])
async def test_an_audit_filter_longer_than_its_column_matches_nothing(api, client, field):
    """Was INTERNAL: Tortoise refused to filter on a value longer than the column."""
    owner = await charts.owner(api)
    _, body = await answer(client, {"query": AUDIT_LOG, "variables": {"f": {field: "x" * 500}}}, owner.token)
    assert not body.get("errors") and body["data"]["practice"]["auditLog"]["edges"] == []


async def test_an_audit_filter_may_mix_times_with_and_without_a_zone(api, client):
    """Was INTERNAL: comparing a naive ``from`` with an aware ``to`` raised TypeError. A time without a zone is UTC."""
    owner = await charts.owner(api)
    variables = {"f": {"from": "2000-01-01T00:00:00", "to": "2100-01-01T00:00:00Z"}}
    _, body = await answer(client, {"query": AUDIT_LOG, "variables": variables}, owner.token)
    assert not body.get("errors") and body["data"]["practice"]["auditLog"]["edges"]
    variables = {"f": {"from": "2100-01-01T00:00:00", "to": "2000-01-01T00:00:00Z"}}
    _, body = await answer(client, {"query": AUDIT_LOG, "variables": variables}, owner.token)
    assert codes(body) == ["BAD_USER_INPUT"]


# ------------------------------------------------------------------ cursors


def hand_made(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        encode_cursor([uuid.UUID(int=1), uuid.UUID(int=2)]),  # uuids where a time is
        hand_made([{"t": "2026-01-01T00:00:00+00:00"}, {"t": "2026-01-01T00:00:00+00:00"}]),  # a time where the id is
        hand_made([{"t": "2026-01-01T00:00:00"}, {"u": "0" * 32}]),  # a time without a zone
        hand_made([{"u": 5}, {"u": "0" * 32}]),  # uuid.UUID(hex=5): AttributeError
        hand_made([{"n": "x"}, {"u": "0" * 32}]),  # Decimal("x"): InvalidOperation
        hand_made([2**70, {"u": "0" * 32}]),
    ],
)
async def test_a_hand_made_cursor_is_bad_input(api, client, cursor):
    """Was INTERNAL: values of the wrong type reached the keyset WHERE clause (SQLite: "type 'UUID' is not
    supported"; PostgreSQL: a DataError), or decoding a tag raised something other than ValueError."""
    owner = await charts.owner(api)
    await charts.create_chart(api, owner.token)
    _, body = await answer(client, {"query": CHARTS, "variables": {"after": cursor}}, owner.token)
    assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "after"


async def test_a_cursor_of_the_list_still_pages(api, client):
    owner = await charts.owner(api)
    for name in ("Ann", "Ben"):
        await charts.create_chart(api, owner.token, name)
    first = await api.ok(
        "{ practice { charts(first: 1) { pageInfo { endCursor } edges { node { patientName } } } } }", token=owner.token
    )
    after = first["practice"]["charts"]["pageInfo"]["endCursor"]
    _, body = await answer(client, {"query": CHARTS, "variables": {"after": after}}, owner.token)
    assert [e["node"]["id"] for e in body["data"]["practice"]["charts"]["edges"]] and not body.get("errors")


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize("value, scalar", [("2026-02-30", "Date"), ("2026-13-01T00:00:00Z", "DateTime")])
async def test_a_malformed_date_names_the_expected_form_not_the_python_error(api, client, value, scalar):
    """Was "Value cannot represent a Date: "2026-02-30". day is out of range for month" (Python's own words)."""
    group = await billing.make_group(api)
    if scalar == "Date":
        query = billing.RECORD_CHARGE
        variables = {
            "i": {
                "chartId": group.ann_chart,
                "clinicianId": group.ann.id,
                "amount": "5",
                "occurredOn": value,
                "description": "x",
            }
        }
    else:
        query, variables = AUDIT_LOG, {"f": {"from": value}}
    _, body = await answer(client, {"query": query, "variables": variables}, group.owner.token)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert f'Value cannot represent a {scalar}: "{value}". Expected an ISO 8601' in error["message"]
    assert "out of range" not in error["message"] and "isoformat" not in error["message"]


# ------------------------------------------------------------------ requests Strawberry cannot read


@pytest.mark.parametrize(
    "body",
    [
        b"5",  # was a 500: Strawberry called .get on it
        b'"query"',
        b"null",
        b"[" * 100_000 + b"]" * 100_000,  # was a 500: RecursionError in json.loads
        b'{"query": "{ __typename }"}\xff',  # was a 500: UnicodeDecodeError
        # was a 500: the plain-text 400 could not be encoded
        b'{"query": "{ __typename }", "operationName": "\\ud800"}',
        b"not json",  # were plain-text 400s without a code
        b"{}",
        b'[{"query": "{ __typename }"}]',
    ],
)
async def test_a_request_that_cannot_be_read_is_a_bad_request_with_a_code(client, body):
    status, answered = await answer(client, body)
    assert (status, codes(answered)) == (400, ["BAD_REQUEST"])


async def test_an_unsupported_content_type_is_a_bad_request_with_a_code(client):
    status, answered = await answer(client, '{"query": "{ __typename }"}', **{"content-type": "text/plain"})
    assert (status, codes(answered)) == (400, ["BAD_REQUEST"])


async def test_a_body_over_the_cap_is_refused_with_a_code(client):
    """Was a plain-text 413."""
    status, answered = await answer(client, '{"query": "{ __typename }", "x": "' + "#" * 1_000_001 + '"}')
    assert (status, codes(answered)) == (413, ["QUERY_TOO_COMPLEX"])


async def test_an_answer_that_repeats_an_unpaired_surrogate_is_still_json(app):
    """Was a 500: orjson refuses to encode an unpaired surrogate an error message repeats (an operationName could
    carry one before request JSON was read strictly)."""
    endpoint = next(route.app for route in app.routes if route.path == "/graphql")
    encoded = endpoint.encode_json({"errors": [{"message": "Unknown operation named '\ud800'."}]})
    assert orjson.loads(encoded) == {"errors": [{"message": "Unknown operation named '?'."}]}
