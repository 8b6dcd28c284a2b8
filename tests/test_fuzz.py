"""Schema fuzzing, against the ASGI app as an owner session, a clinician session and a partner API token.

Three generators, one rule: every answer must pass ``tests.fuzz_checks.response_problems`` (no 5xx, every error
with ``extensions.code``, never ``INTERNAL``, no internal detail in any message).

- schemathesis generates queries and mutations from the live schema (positive and negative cases). IDs and strings
  come as often from a seeded practice (real ids, slugs, tokens, cursors) as at random, so operations reach the rules
  behind the lookups; half of them send their arguments as variables (each scalar's JSON path), half as literals.
- near-valid operations: a valid operation of the seeded practice with one or two variables broken (a NUL or an
  unpaired surrogate slipped into a name, a date at the end of the calendar, an amount of 30 digits, a dropped
  field...), so the hostile value passes validation and reaches the resolvers and the database.
- malformed HTTP requests: bodies that are not JSON, not UTF-8, not objects, too deep; odd content types; GETs.

CI runs ``GROUPS_API_FUZZ_EXAMPLES`` (default 1,000) schemathesis operations per credential, half as many near-valid
ones, and a fifth as many malformed requests, with a fixed seed (``GROUPS_API_FUZZ_SEED``), on both databases (the
NUL and time-range defects it found showed only on PostgreSQL). A nightly-style run raises both, e.g.
``GROUPS_API_FUZZ_EXAMPLES=20000``. Each defect it found has a regression test in tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import urlencode

import graphql
import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.graphql import nodes
from tortoise.contrib.test import truncate_all_models

from auth.tokens import JwtCodec, hash_secret, new_secret
from models import Practice, Session
from models.enums import Permission, Role, TokenScope
from resolvers import ids
from resolvers.pagination import encode_cursor
from schema import schema as live_schema
from server.app import create_app
from server.settings import Settings
from tests import factories_billing as billing
from tests import factories_charts as charts
from tests.conftest import PASSWORD, PG_URL, Api
from tests.factories_subscriptions import invite
from tests.fuzz_checks import response_problems
from tests.platform_support import create_token

EXAMPLES = int(os.environ.get("GROUPS_API_FUZZ_EXAMPLES", "1000"))
NEAR_VALID_EXAMPLES = EXAMPLES // 2
SEED = int(os.environ.get("GROUPS_API_FUZZ_SEED", "20261127"))
CREDENTIALS = ("owner", "clinician", "api_token")
# Node type names, for well-formed ids that point at nothing or at the wrong type.
TYPE_NAMES = sorted(t.name for t in live_schema._schema.type_map.values() if isinstance(t, graphql.GraphQLObjectType))


@dataclass
class World:
    """Real values of the seeded practice that generated operations pick from (filled per test, in place)."""

    ids: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    templates: list[Template] = field(default_factory=list)


def pick(items: list) -> st.SearchStrategy:
    """One of ``items`` as the list holds them when drawn (uniformly, by Hypothesis's seeded random)."""
    return st.randoms(use_true_random=False).map(lambda random: random.choice(items) if items else "")


@dataclass(frozen=True)
class Template:
    """A valid operation of the seeded practice, whose variables the near-valid fuzz breaks one or two at a time."""

    label: str
    query: str
    variables: dict


WORLD = World()


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _cursor_values() -> st.SearchStrategy:
    """Values shaped like the ones cursors carry (tagged dates, uuids, decimals), right or wrong."""
    junk = st.one_of(st.text(max_size=12), st.integers(-(2**63), 2**63 - 1), st.floats(), st.none(), st.booleans())
    tagged = st.builds(lambda tag, value: {tag: value}, st.sampled_from(["t", "d", "u", "n"]), junk)
    good = st.one_of(
        st.datetimes().map(lambda d: {"t": d.isoformat()}),
        st.dates().map(lambda d: {"d": d.isoformat()}),
        st.uuids().map(lambda u: {"u": u.hex}),
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(lambda d: {"n": str(d)}),
    )
    return st.one_of(good, tagged, junk)


CURSORS = st.one_of(
    st.lists(_cursor_values(), min_size=1, max_size=3).map(lambda values: _b64(orjson.dumps(values).decode())),
    st.lists(st.datetimes().map(lambda d: d.isoformat()), max_size=2).map(encode_cursor),
)
# Text the database or an encoder may choke on: NUL, unpaired surrogates, very long values, LIKE wildcards.
TEXT = st.one_of(
    st.text(max_size=40),
    st.emails(),
    st.sampled_from(
        ["", " ", "\x00", "a\x00b", "\ud800", "a\udfffb", "\u202e", "%", "_", "\\", "'", '"', "null", "-1", "9" * 40]
    ),
    st.builds(lambda char, count: char * count, st.characters(), st.integers(1000, 200_000)),
)
IDS = st.one_of(
    pick(WORLD.ids),
    st.builds(ids.encode, st.sampled_from(TYPE_NAMES), st.uuids()),
    st.builds(lambda name, junk: _b64(f"{name}:{junk}"), st.sampled_from(TYPE_NAMES), st.text(max_size=40)),
    st.text(max_size=40),
)
DECIMALS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.decimals().map(str),
    st.sampled_from(
        [
            "0",
            "-0",
            "0.001",
            "1e3",
            "1E-2",
            "1e999999",
            "-1e-999999",
            "NaN",
            "Infinity",
            "-inf",
            "sNaN",
            "1_000",
            " 5 ",
            "5.",
            ".5",
        ]
    ),
    st.sampled_from(["123456789012345678901234567890.123", "-999999.99", "1000000.01"]),
    st.text(max_size=12),
)
DATES = st.one_of(
    st.dates().map(str),
    st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "2026-1-1", "20260101"]),
    st.text(max_size=12),
)
DATETIMES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59Z", "2026-01-01", "now"]
    ),
    st.text(max_size=20),
)
STRINGS = st.one_of(TEXT, CURSORS, IDS, DECIMALS, DATES, DATETIMES, pick(WORLD.strings))
INTEGERS = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 101, 2**31, -(2**63), 2**64]))
# Any JSON value a variable could be given in place of another.
JSON_VALUES = st.one_of(
    STRINGS,
    INTEGERS,
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(STRINGS, max_size=3),
    st.dictionaries(TEXT, STRINGS, max_size=2),
)

# Custom scalars, and the built-in ID and String overridden with values that reach further than random text.
schemathesis.graphql.scalar("ID", st.one_of(IDS.map(nodes.String), st.integers().map(nodes.Int)))
schemathesis.graphql.scalar("String", st.one_of(TEXT, CURSORS, pick(WORLD.strings)).map(nodes.String))
schemathesis.graphql.scalar(
    "Decimal", st.one_of(DECIMALS.map(nodes.String), st.integers().map(nodes.Int), st.floats().map(nodes.Float))
)
schemathesis.graphql.scalar("Date", DATES.map(nodes.String))
schemathesis.graphql.scalar("DateTime", DATETIMES.map(nodes.String))

FUZZ_SCHEMA = schemathesis.graphql.from_dict(graphql.introspection_from_schema(live_schema._schema))
CASES = st.one_of(FUZZ_SCHEMA.as_strategy(GenerationMode.POSITIVE), FUZZ_SCHEMA.as_strategy(GenerationMode.NEGATIVE))


def hoist_arguments(document: str) -> tuple[str, dict]:
    """The same operation with the root field's arguments sent as variables (JSON values, parsed by parse_value)."""
    try:
        ast = graphql.parse(document)
    except graphql.GraphQLError:  # e.g. an unpaired surrogate printed into a literal: sent as it is
        return document, {}
    operation = next(d for d in ast.definitions if isinstance(d, graphql.OperationDefinitionNode))
    root = live_schema._schema.get_root_type(operation.operation)
    field_node = operation.selection_set.selections[0]
    field_def = root.fields.get(field_node.name.value) if root else None
    if field_def is None or not field_node.arguments:
        return document, {}
    variables, definitions, arguments = {}, [], []
    for index, argument in enumerate(field_node.arguments):
        arg_def = field_def.args.get(argument.name.value)
        if arg_def is None:
            arguments.append(argument)
            continue
        name = f"v{index}"
        variables[name] = graphql.value_from_ast_untyped(argument.value)
        definitions.append(
            graphql.VariableDefinitionNode(
                variable=graphql.VariableNode(name=graphql.NameNode(value=name)),
                type=graphql.parse_type(str(arg_def.type)),
            )
        )
        arguments.append(
            graphql.ArgumentNode(name=argument.name, value=graphql.VariableNode(name=graphql.NameNode(value=name)))
        )
    hoisted_field = replace(field_node, arguments=tuple(arguments))
    hoisted = replace(
        operation,
        variable_definitions=tuple(definitions),
        selection_set=replace(
            operation.selection_set, selections=(hoisted_field, *operation.selection_set.selections[1:])
        ),
    )
    definitions_ = tuple(hoisted if d is operation else d for d in ast.definitions)
    return graphql.print_ast(replace(ast, definitions=definitions_)), variables


@st.composite
def generated_requests(draw) -> dict:
    """One generated operation as a request body: literals, or (half the time) the same arguments as variables."""
    case = draw(CASES)
    query, variables = case.body, {}
    if draw(st.booleans()):
        query, variables = hoist_arguments(query)
    return {"query": query, "variables": variables, "label": case.operation.label}


# ------------------------------------------------------------------ near-valid operations

DROP = object()  # a replacement that removes the key


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every place inside a variables value, outermost first (a whole list or input object is a place too)."""
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield from _paths(inner, (*path, key))


def _replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if new is DROP and not rest:
        del copy[head]
    else:
        copy[head] = _replaced(value[head], rest, new)
    return copy


# Characters that text columns, encoders, LIKE patterns or log lines may treat specially.
NASTY_CHARACTERS = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        "\x7f",
        "\x1b",
        "\n",
        "\t",
        "\u0085",
        "\u2028",
        "\u202e",
        "\ufeff",
        "%",
        "_",
        "\\",
        "'",
        '"',
        "😀",
    ]
)


def _tainted(value: str) -> st.SearchStrategy[str]:
    """``value`` with a nasty character slipped in: the rest of the request stays valid, so it reaches the database."""
    return st.builds(lambda char, at: value[:at] + char + value[at:], NASTY_CHARACTERS, st.integers(0, len(value)))


def _hostile(value: Any) -> st.SearchStrategy:
    """A value to put where ``value`` was: mostly a near miss of the same JSON type (so the request gets past
    validation and into the resolvers and the database), sometimes anything, sometimes nothing."""
    if isinstance(value, str):
        same = st.one_of(
            _tainted(value), _tainted(value), st.builds(lambda count: value * count, st.integers(2, 5000)), STRINGS
        )
    elif isinstance(value, bool | int):
        same = INTEGERS
    elif isinstance(value, list):
        same = st.one_of(
            st.lists(STRINGS, max_size=3), st.builds(lambda item, count: [item] * count, STRINGS, st.integers(50, 3000))
        )
    else:
        same = JSON_VALUES
    return st.one_of(same, same, same, JSON_VALUES, st.just(DROP))


@st.composite
def near_valid_requests(draw) -> dict:
    """A valid operation of the seeded practice (WORLD.templates) with one or two of its variables broken."""
    template = draw(pick(WORLD.templates))
    variables = template.variables
    for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
        places = list(_paths(variables))[1:]
        if not places:
            break
        path = draw(st.sampled_from(places))
        inner = variables
        for key in path:
            inner = inner[key]
        variables = _replaced(variables, path, draw(_hostile(inner)))
    return {"query": template.query, "variables": variables, "label": f"near-valid {template.label}"}


def fuzz_settings(database_url: str) -> Settings:
    # A budget (and a sign-up limit) that thousands of operations cannot spend: RATE_LIMITED answers would hide every
    # later path.
    return Settings(
        env="test",
        database_url=database_url,
        jwt_secret="test-secret-" + "x" * 40,
        public_url="http://test",
        rate_limit_points=10**9,
        sign_ups_per_hour=10**9,
    )


@dataclass
class Credentials:
    """The three callers, and how to get each a fresh credential when an operation ended it (logOut, a revoked
    token)."""

    tokens: dict[str, str]
    owner: charts.Actor
    clinician: charts.Actor

    async def renew(self, api: Api, credential: str) -> None:
        if credential == "api_token":
            self.tokens[credential] = await charts.api_token(self.owner, list(TokenScope))
            return
        actor = self.owner if credential == "owner" else self.clinician
        slug = (await Practice.get(id=actor.member.practice_id)).slug
        body = await api.log_in(slug, actor.member.email)
        if body.get("data") and body["data"]["logIn"]:
            self.tokens[credential] = body["data"]["logIn"]["accessToken"]
            return
        # The account's log-ins are throttled: fuzzed wrong passwords given to changePassword or transferOwnership count
        # as its failed log-ins. A session written straight to the database instead.
        self.tokens[credential] = await _direct_session(actor.member)


async def _direct_session(member) -> str:
    settings = fuzz_settings("unused")
    codec = JwtCodec(settings.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    now = datetime.now(UTC)
    session = await Session.create(
        id=uuid.uuid4(),
        member_id=member.id,
        refresh_token_hash=hash_secret(new_secret()),
        created_at=now,
        last_refreshed_at=now,
        expires_at=now + timedelta(days=1),
    )
    return codec.issue(
        member_id=member.id,
        practice_id=member.practice_id,
        session_id=session.id,
        now=now,
        expires_at=now + timedelta(minutes=15),
    )


async def seed_practice(api: Api) -> Credentials:
    """A group practice with something of everything (members, charts, notes, ledger, statement, invoice,
    invitation, tokens) and a second practice; fills WORLD and returns the three credentials. The clinician's own
    id stays out of WORLD.ids: an owner's operation could deactivate them for good."""
    owner = await charts.owner(api)
    clinician = await charts.add_member(
        api, owner, "clare@example.com", permissions=[Permission.ASSIGN_CHARTS, Permission.VIEW_BILLING]
    )
    colleague = await charts.add_member(api, owner, "colin@example.com")
    admin = await charts.add_member(
        api, owner, "ada@example.com", role=Role.ADMINISTRATOR, permissions=[Permission.MANAGE_MEMBERS]
    )
    token = await charts.api_token(owner, list(TokenScope))
    other = await charts.owner(api, practice="Elsewhere", email="else@example.com")
    found = [owner.id, colleague.id, admin.id, other.id]
    billed = []
    for index, who in enumerate([clinician, colleague, owner]):
        chart = await charts.create_chart(
            api, owner.token, f"Patient {index}", clinicianIds=[who.id], dateOfBirth=f"1990-01-0{index + 1}"
        )
        note = await charts.add_note(api, owner.token, chart["id"])
        charged = await billing.charge(api, owner, chart["id"], who, "120.00", on="2026-01-05")
        await billing.charge(api, owner, chart["id"], who, "80.50", on="2026-01-12")
        paid = await billing.pay(api, owner, chart["id"], who, "50.00", on="2026-01-13")
        invoice = await api.ok(
            billing.CREATE_INVOICE, {"i": {"chartId": chart["id"], "clinicianIds": [who.id]}}, owner.token
        )
        period = {
            "chartId": chart["id"],
            "clinicianIds": [who.id],
            "periodStart": "2026-01-01",
            "periodEnd": "2026-01-31",
        }
        statement = await api.ok(billing.GENERATE_STATEMENT, {"i": period}, owner.token)
        uninvoiced = await billing.charge(api, owner, chart["id"], who, "60.00", on="2026-01-20")
        invoice_id = invoice["createInvoice"]["invoice"]["id"]
        found += [chart["id"], note["id"], charged["entry"]["id"], paid["entry"]["id"], invoice_id]
        found.append(statement["generateStatement"]["statement"]["id"])
        billed.append((chart["id"], who.id, invoice_id, uninvoiced["entry"]["id"]))
    found.append((await charts.create_chart(api, other.token, "Someone Else"))["id"])
    invitation = await invite(api, owner.token, "new@example.com")
    partner = await create_token(api, owner.token, ["READ_CHARTS"])
    found += [invitation["invitation"]["id"], partner["apiToken"]["id"]]
    events = await api.ok("{ practice { auditLog(first: 5) { edges { node { id } } } } }", token=owner.token)
    found += [edge["node"]["id"] for edge in events["practice"]["auditLog"]["edges"]]
    WORLD.ids[:] = found
    slug = (await api.ok("{ practice { slug } }", token=owner.token))["practice"]["slug"]
    WORLD.strings[:] = [
        slug,
        "elsewhere",
        invitation["token"],
        "erx-lite",
        "therapist-essential",
        "owner@example.com",
        "clare@example.com",
    ]
    cursors = await api.ok(CURSORS_QUERY, {"chart": billed[0][0]}, owner.token)
    WORLD.templates[:] = near_valid_templates(
        slug, billed[:2], colleague.id, owner.id, partner["apiToken"]["id"], invitation["token"], cursors
    )
    return Credentials({"owner": owner.token, "clinician": clinician.token, "api_token": token}, owner, clinician)


CURSORS_QUERY = """query($chart: ID!) { practice {
    charts(first: 1) { pageInfo { endCursor } }
    members(first: 1) { pageInfo { endCursor } }
    auditLog(first: 1) { pageInfo { endCursor } }
    billing { history(first: 1) { pageInfo { endCursor } } invoices(first: 1) { pageInfo { endCursor } } }
  }
  node(id: $chart) { ... on Chart { notes(first: 1) { pageInfo { endCursor } } } } }"""


def near_valid_templates(
    slug: str,
    billed: list[tuple[str, str, str, str]],
    colleague: str,
    owner: str,
    partner_token: str,
    invitation: str,
    cursors: dict,
) -> list[Template]:
    """One valid operation of each kind the fuzz breaks, for the two (chart, clinician) pairs of ``billed``
    (chart, clinician, invoice, uninvoiced charge): the clinician's own, and a colleague's."""
    practice = cursors["practice"]
    cursor = {
        "charts": practice["charts"]["pageInfo"]["endCursor"],
        "members": practice["members"]["pageInfo"]["endCursor"],
        "audit": practice["auditLog"]["pageInfo"]["endCursor"],
        "history": practice["billing"]["history"]["pageInfo"]["endCursor"],
        "invoices": practice["billing"]["invoices"]["pageInfo"]["endCursor"],
        "notes": cursors["node"]["notes"]["pageInfo"]["endCursor"],
    }
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    shared = [
        Template(
            "createChart",
            CREATE_CHART,
            {
                "i": {
                    "patientName": "Pat New",
                    "dateOfBirth": "1980-02-03",
                    "email": "pat@example.com",
                    "phone": "+1 555 0100",
                    "clinicianIds": [colleague],
                }
            },
        ),
        Template(
            "inviteMember",
            INVITE,
            {
                "i": {
                    "email": "zed@example.com",
                    "role": "CLINICIAN",
                    "planCode": "erx-lite",
                    "traineeStatus": "PRESCRIBER_TRAINEE",
                    "trainingProofValidUntil": "2027-01-01",
                    "permissions": ["VIEW_BILLING"],
                }
            },
        ),
        Template(
            "updateMember",
            UPDATE_MEMBER,
            {
                "i": {
                    "memberId": colleague,
                    "role": "CLINICIAN",
                    "planCode": "erx-lite",
                    "traineeStatus": "NONE",
                    "trainingProofValidUntil": None,
                    "clearTrainingProof": False,
                }
            },
        ),
        Template(
            "setMemberPermissions", SET_PERMISSIONS, {"i": {"memberId": colleague, "permissions": ["VIEW_BILLING"]}}
        ),
        Template(
            "createApiToken", CREATE_API_TOKEN, {"i": {"name": "Partner", "scopes": ["READ_CHARTS"], "expiresAt": soon}}
        ),
        Template("logIn", LOG_IN, {"i": {"practiceSlug": slug, "email": "colin@example.com", "password": PASSWORD}}),
        Template(
            "signUp",
            SIGN_UP,
            {
                "i": {
                    "practiceName": "Fresh Start",
                    "name": "Fay",
                    "email": "fay@example.com",
                    "password": PASSWORD,
                    "planCode": "erx-lite",
                }
            },
        ),
        Template("acceptInvitation", ACCEPT, {"i": {"token": invitation, "name": "New Person", "password": PASSWORD}}),
        Template(
            "charts",
            CHARTS,
            {"first": 2, "after": cursor["charts"], "clinician": colleague, "search": "Pat", "status": "ACTIVE"},
        ),
        Template("members", MEMBERS, {"first": 2, "after": cursor["members"], "role": "CLINICIAN", "all": True}),
        Template(
            "auditLog",
            AUDIT_LOG,
            {
                "f": {
                    "actorId": owner,
                    "targetId": billed[0][0],
                    "action": "chart.created",
                    "apiTokenId": partner_token,
                    "from": "2026-01-01T00:00:00Z",
                    "to": soon,
                },
                "first": 3,
                "after": cursor["audit"],
            },
        ),
        Template(
            "seatQuote",
            SEAT_QUOTE,
            {
                "role": "CLINICIAN",
                "plan": "erx-lite",
                "trainee": "PRESCRIBER_TRAINEE",
                "proof": "2027-01-01",
                "member": colleague,
            },
        ),
    ]
    per_chart = []
    for chart, clinician, invoice, entry in billed:
        one = [clinician]
        per_chart += [
            Template("addChartNote", ADD_NOTE, {"i": {"chartId": chart, "body": "Went well."}}),
            Template("assignChart", ASSIGN, {"i": {"chartId": chart, "clinicianId": clinician}}),
            Template(
                "recordCharge",
                billing.RECORD_CHARGE,
                {
                    "i": {
                        "chartId": chart,
                        "clinicianId": clinician,
                        "amount": "12.50",
                        "occurredOn": "2026-02-01",
                        "description": "Session",
                    }
                },
            ),
            Template(
                "recordAdjustment",
                billing.RECORD_ADJUSTMENT,
                {
                    "i": {
                        "chartId": chart,
                        "clinicianId": clinician,
                        "amount": "-2.00",
                        "occurredOn": "2026-02-01",
                        "description": "Discount",
                    }
                },
            ),
            Template(
                "recordPayment",
                billing.RECORD_PAYMENT,
                {
                    "i": {
                        "chartId": chart,
                        "clinicianIds": one,
                        "amount": "5.00",
                        "occurredOn": "2026-02-02",
                        "description": "Card",
                        "invoiceId": invoice,
                    }
                },
            ),
            Template(
                "recordRefund",
                billing.RECORD_REFUND,
                {
                    "i": {
                        "chartId": chart,
                        "clinicianIds": one,
                        "amount": "1.00",
                        "occurredOn": "2026-02-03",
                        "description": "Refund",
                    }
                },
            ),
            Template(
                "generateStatement",
                billing.GENERATE_STATEMENT,
                {"i": {"chartId": chart, "clinicianIds": one, "periodStart": "2026-02-01", "periodEnd": "2026-02-28"}},
            ),
            Template(
                "createInvoice",
                billing.CREATE_INVOICE,
                {"i": {"chartId": chart, "clinicianIds": one, "entryIds": [entry]}},
            ),
            Template(
                "history",
                billing.HISTORY,
                {
                    "f": {
                        "clinicianIds": one,
                        "chartId": chart,
                        "from": "2026-01-01",
                        "to": "2026-12-31",
                        "kinds": ["CHARGE", "PAYMENT"],
                    },
                    "first": 5,
                    "after": cursor["history"],
                },
            ),
            Template(
                "invoices",
                INVOICES,
                {"f": {"clinicianIds": one, "chartId": chart}, "s": "OPEN", "first": 2, "after": cursor["invoices"]},
            ),
            Template("balance", billing.BALANCE, {"f": {"clinicianIds": one, "chartId": chart}}),
            Template("notes", NOTES, {"id": chart, "first": 2, "after": cursor["notes"]}),
        ]
    return shared + per_chart


CREATE_CHART = (
    "mutation($i: CreateChartInput!) { createChart(input: $i) { chart { id patientName dateOfBirth email phone } } }"
)
ADD_NOTE = "mutation($i: AddChartNoteInput!) { addChartNote(input: $i) { note { id body } } }"
ASSIGN = "mutation($i: ChartAssignmentInput!) { assignChart(input: $i) { chart { id } } }"
INVITE = "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token invitation { id expiresAt } } }"
UPDATE_MEMBER = "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id role plan { code } } } }"
SET_PERMISSIONS = (
    "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id permissions } } }"
)
CREATE_API_TOKEN = (
    "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token apiToken { id expiresAt } } }"
)
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { member { id } } }"
SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { member { id } } }"
ACCEPT = "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { member { id } } }"
CHARTS = """query($first: Int, $after: String, $clinician: ID, $search: String, $status: ChartStatus) { practice {
    charts(first: $first, after: $after, clinicianId: $clinician, search: $search, status: $status) { totalCount edges {
    cursor node { id } } } } }"""
MEMBERS = """query($first: Int, $after: String, $role: Role, $all: Boolean) { practice {
    members(first: $first, after: $after, role: $role, includeDeactivated: $all) { edges { cursor node { id name email }
    } } } }"""
AUDIT_LOG = """query($f: AuditFilter, $first: Int, $after: String) { practice {
    auditLog(filter: $f, first: $first, after: $after) { edges { cursor node { id action } } } } }"""
SEAT_QUOTE = """query($role: Role!, $plan: String, $trainee: TraineeStatus, $proof: Date, $member: ID) { practice {
subscription {
    seatQuote(role: $role, planCode: $plan, traineeStatus: $trainee, trainingProofValidUntil: $proof, memberId: $member)
    { reason } } } }"""
INVOICES = """query($f: BillingFilter, $s: InvoiceStatus, $first: Int, $after: String) { practice { billing {
    invoices(filter: $f, status: $s, first: $first, after: $after) { edges { cursor node { id number entries(first: 2) {
    totalCount } } } }
    statements(filter: $f, first: $first, after: $after) { edges { node { id number } } } } } }"""
NOTES = """query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Chart {
    notes(first: $first, after: $after) { edges { cursor node { id } } } } } }"""


class LoggedErrors(logging.Handler):
    """What the server logged as internal errors, shown with a failing case."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def explain(self) -> str:
        return "\n".join(logging.Formatter().format(record) for record in self.records[-1:])


STILL_VALID = "{ viewerAccess { __typename } }"


class FuzzTarget:
    """The ASGI app on its own event loop, seeded, with an HTTP client: Hypothesis drives it one request at a time."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.runner = asyncio.Runner()
        self.logged = LoggedErrors()
        self.stats = Stats()

    def __enter__(self) -> Self:
        self.runner.__enter__()
        self.stop = self.runner.run(self._event())
        started = self.runner.run(self._event())
        self.serving = self.runner.get_loop().create_task(self._serve(started))
        self.runner.run(started.wait())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")
        self.credentials = self.runner.run(seed_practice(Api(self.client)))
        # Log-ins that renew a credential come from another address than the fuzzed ones, which the guessing
        # throttle may be refusing by then.
        self.renewals = 0
        self.side_client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("10.9.9.9", 1)), base_url="http://test"
        )
        logging.getLogger("groups_api").addHandler(self.logged)
        return self

    def __exit__(self, *exc_info) -> None:
        logging.getLogger("groups_api").removeHandler(self.logged)
        self.runner.run(self.client.aclose())
        self.runner.run(self.side_client.aclose())
        self.stop.set()
        self.runner.run(asyncio.wait_for(self.serving, timeout=None))
        self.runner.__exit__(*exc_info)

    @staticmethod
    async def _event() -> asyncio.Event:
        return asyncio.Event()

    async def _serve(self, started: asyncio.Event) -> None:
        """The app's lifespan, held open until ``stop``; a PostgreSQL database is emptied afterwards."""
        self.app = create_app(fuzz_settings(self.database_url), generate_schemas=True)
        async with self.app.router.lifespan_context(self.app):
            started.set()
            await self.stop.wait()
            if PG_URL:
                await truncate_all_models()

    def send(self, request: dict, credential: str | None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"}
        if credential:
            headers["authorization"] = f"Bearer {self.credentials.tokens[credential]}"
        self.logged.records.clear()
        # The standard encoder: variables may hold integers beyond 64 bits (and NaN), which orjson refuses.
        payload = json.dumps({"query": request["query"], "variables": request.get("variables") or {}}).encode()
        response = self.runner.run(self.client.post("/graphql", content=payload, headers=headers))
        if credential and b'"UNAUTHENTICATED"' in response.content and not self.still_valid(credential):
            self.runner.run(self.credentials.renew(Api(self.side_client), credential))
            self.renewals += 1
        return response.status_code, response.content

    def still_valid(self, credential: str) -> bool:
        headers = {"authorization": f"Bearer {self.credentials.tokens[credential]}"}
        response = self.runner.run(self.side_client.post("/graphql", json={"query": STILL_VALID}, headers=headers))
        return response.json() == {"data": {"viewerAccess": {"__typename": "ViewerAccess"}}}

    def count(self, label: str, content: bytes) -> None:
        errors = orjson.loads(content).get("errors") or []
        self.stats.operations[label] += 1
        self.stats.clean += not errors
        self.stats.codes.update(str((e.get("extensions") or {}).get("code")) for e in errors)

    def summary(self, title: str) -> Stats:
        """The figures since the last summary (printed: pytest -s shows them)."""
        stats, self.stats = self.stats, Stats()
        seconds = time.perf_counter() - stats.started
        print(
            f"\n{title}: {stats.total} operations in {seconds:.1f} s, {stats.clean} without errors, {self.renewals} "
            f"renewals so far; codes {dict(stats.codes.most_common())}"
        )
        return stats


@dataclass
class Stats:
    operations: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    clean: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def total(self) -> int:
        return sum(self.operations.values())


ROOT_OPERATIONS = {operation.ok().label for operation in FUZZ_SCHEMA.get_all_operations()}


def _short(value: Any, limit: int = 2000) -> str:
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def fuzz(target: FuzzTarget, credential: str, requests: st.SearchStrategy[dict], examples: int) -> None:
    """Send ``examples`` generated requests as ``credential``; the first unacceptable answer fails the test."""

    @seed(SEED)
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests)
    def operation(request: dict) -> None:
        status, content = target.send(request, credential)
        problems = response_problems(status, content)
        assert not problems, "\n".join(
            [
                f"{request['label']} as {credential}:",
                _short(request["query"]),
                f"variables: {_short(request['variables'])}",
            ]
            + problems
            + [target.logged.explain()]
        )
        target.count(request["label"], content)

    operation()


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_generated_operations_never_fail_inside(database_url: str, credential: str) -> None:
    with FuzzTarget(database_url) as target:
        fuzz(target, credential, generated_requests(), EXAMPLES)
        generated = target.summary(f"schemathesis as {credential}")
        fuzz(target, credential, near_valid_requests(), NEAR_VALID_EXAMPLES)
        near_valid = target.summary(f"near-valid as {credential}")
        # Not vacuous: some operations went through, the credential still works (or works again after renewals),
        # and (at CI size or more) every root field and every template was tried.
        assert generated.total >= EXAMPLES and generated.clean >= EXAMPLES // 20
        assert near_valid.total >= NEAR_VALID_EXAMPLES and near_valid.clean >= NEAR_VALID_EXAMPLES // 50
        assert target.still_valid(credential)
        if EXAMPLES >= 1000:
            assert set(generated.operations) == ROOT_OPERATIONS
            assert set(near_valid.operations) == {f"near-valid {t.label}" for t in WORLD.templates}


# ------------------------------------------------------------------ malformed HTTP requests

HTTP_EXAMPLES = max(100, EXAMPLES // 5)
SHORT_TEXT = st.one_of(
    st.text(max_size=40), NASTY_CHARACTERS, st.sampled_from(["null", "[]", "{}", "5", '"x"', "[[[[[[[[", '{"a": 1}'])
)
QUERIES = st.one_of(
    st.sampled_from(["{ __typename }", "{ viewer { id } }", "mutation { logOut(input: {}) { loggedOut } }"]), SHORT_TEXT
)
REQUEST_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)
REQUEST_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "query": st.one_of(QUERIES, REQUEST_JSON),
        "variables": REQUEST_JSON,
        "operationName": REQUEST_JSON,
        "extensions": REQUEST_JSON,
    },
)
BODIES = st.one_of(
    REQUEST_OBJECTS.map(lambda value: json.dumps(value).encode()),
    REQUEST_JSON.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 100_000)),
    REQUEST_OBJECTS.map(lambda value: json.dumps(value).encode()).flatmap(
        lambda body: st.builds(lambda junk: body + junk, st.binary(max_size=4))
    ),
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/graphql",
        "text/plain",
        "multipart/form-data",
        None,
    ]
)


@st.composite
def http_requests(draw) -> tuple[str, dict, dict, bytes | None]:
    """(method, query parameters, headers, body): what reaches /graphql before any GraphQL is read."""
    if draw(st.booleans()):
        params = draw(
            st.fixed_dictionaries(
                {"query": QUERIES},
                optional={"variables": SHORT_TEXT, "operationName": SHORT_TEXT, "extensions": SHORT_TEXT},
            )
        )
        return "GET", params, {}, None
    content_type = draw(CONTENT_TYPES)
    return "POST", {}, {"content-type": content_type} if content_type else {}, draw(BODIES)


def test_malformed_requests_are_refused_with_a_code(database_url: str) -> None:
    """Whatever the method, content type and body, /graphql answers a GraphQL-shaped JSON body, never a 5xx."""
    with FuzzTarget(database_url) as target:

        @seed(SEED)
        @hypothesis_settings(
            max_examples=HTTP_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(request=http_requests())
        def request(request: tuple[str, dict, dict, bytes | None]) -> None:
            method, params, headers, body = request
            headers = {**headers, "authorization": f"Bearer {target.credentials.tokens['owner']}"}
            # Percent-encoded by hand: a client may send the bytes of an unpaired surrogate, which httpx would refuse to
            # encode.
            url = "/graphql?" + urlencode(params, errors="surrogatepass") if params else "/graphql"
            response = target.runner.run(target.client.request(method, url, headers=headers, content=body))
            problems = response_problems(response.status_code, response.content)
            assert not problems, "\n".join(
                [f"{method} {params} {headers}", _short(body)] + problems + [target.logged.explain()]
            )
            target.count(f"{method} {response.status_code}", response.content)

        request()
        statuses = target.summary("malformed requests")
        assert statuses.total >= HTTP_EXAMPLES
        assert {"POST 400", "POST 200", "GET 200"} <= set(statuses.operations)
