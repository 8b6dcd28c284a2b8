"""Security issue 12, items 6, 8 and 9: throttled sign-ups and password hashing off the event loop, a Decimal scalar
that reads only plain ASCII decimals, and cursors whose times PostgreSQL cannot hold.

Each refusal is checked to change nothing; each test is named after its item.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import threading
from datetime import timedelta

import httpx
import pytest
from argon2 import PasswordHasher

from models import AuditEvent, BillingBalance, BillingEntry, Member, Practice, Session
from server.settings import Settings
from tests import factories_billing as billing
from tests import factories_charts as charts
from tests import factories_subscriptions as subs
from tests.conftest import PASSWORD, Api
from tests.fuzz_checks import response_problems

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


def random_address() -> str:
    """An address of its own per client, so that Redis windows of earlier runs (or of other suites) never meet it."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture
async def client_at(app):
    """Clients from chosen addresses: ``async with client_at(address) as api``."""
    clients: list[httpx.AsyncClient] = []

    def make(address: str) -> Api:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://test"
        )
        clients.append(http)
        return Api(http)

    yield make
    for http in clients:
        await http.aclose()


def codes(body: dict) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or ()]


async def everything_sign_up_writes() -> tuple[int, int, int, int]:
    return (
        await Practice.all().count(),
        await Member.all().count(),
        await Session.all().count(),
        await AuditEvent.all().count(),
    )


SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken member { id } } }"


def sign_up_variables(n: int) -> dict:
    return {
        "i": {
            "practiceName": f"Practice {n}",
            "name": "Olive Owner",
            "email": f"owner{n}@example.com",
            "password": PASSWORD,
            "planCode": "erx-lite",
        }
    }


# ------------------------------------------------------------------ item 6: sign-up throttle, hashing off the loop


@pytest.fixture
def store_kind() -> str:
    return "memory"


@pytest.fixture
def settings(settings, store_kind):
    """The real sign-up limit (the suite's fixture raises it), and the app's rate-limit store: in memory unless a test
    asks for Redis as well."""
    settings = settings.with_(sign_ups_per_hour=Settings().sign_ups_per_hour)
    if store_kind == "redis":
        if not redis_reachable():
            pytest.skip(f"no Redis at {REDIS_URL}")
        return settings.with_(redis_url=REDIS_URL)
    return settings


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
async def test_item6_sign_up_throttled_per_address(client_at, clock):
    """At most 10 sign-ups an hour from one client address (the real default, not a test setting); the 11th is
    RATE_LIMITED with retryAfter, like the log-in throttle, and creates nothing. Another address still signs up."""
    address = random_address()
    api = client_at(address)
    for n in range(10):
        body = await api.post(SIGN_UP, sign_up_variables(n))
        assert not body.get("errors"), body
    before = await everything_sign_up_writes()

    body = await api.post(SIGN_UP, sign_up_variables(10))
    assert codes(body) == ["RATE_LIMITED"], body
    assert body["data"] == {"signUp": None}
    assert 0 < body["errors"][0]["extensions"]["retryAfter"] <= 3600
    assert await everything_sign_up_writes() == before
    assert not await Practice.filter(slug="practice-10").exists()
    refused = await api.client.post("/graphql", json={"query": SIGN_UP, "variables": sign_up_variables(10)})
    assert refused.headers["Retry-After"] == str(refused.json()["errors"][0]["extensions"]["retryAfter"])  # issue 13

    other = client_at(random_address())
    assert not (await other.post(SIGN_UP, sign_up_variables(11))).get("errors")

    # The window ends an hour after it began: the first address signs up again.
    clock.advance(timedelta(hours=1, seconds=1))
    assert not (await api.post(SIGN_UP, sign_up_variables(12))).get("errors")


def test_item6_sign_up_limit_is_10_unless_configured(settings):
    """The test settings keep the real default, so the throttle test above runs against it."""
    assert settings.sign_ups_per_hour == Settings().sign_ups_per_hour == 10
    assert Settings.from_env({"GROUPS_API_SIGN_UPS_PER_HOUR": "25"}).sign_ups_per_hour == 25


LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"


@pytest.mark.parametrize("operation", ["signUp", "logIn", "acceptInvitation"])
async def test_item6_password_hashing_does_not_block_the_loop(api, monkeypatch, operation):
    """argon2 runs in a thread: while one request's hash (or check) is running, another request is served.

    The hash is made to wait until a cheap request has been answered. In a thread, it is, and the hash then goes
    on. On the event loop, the cheap request cannot even start until the hash gives up waiting: the order proves
    it, no timing is measured (the wait's limit is only there so that a failure does not hang the suite)."""
    variables: dict
    if operation == "signUp":
        query, variables, method = SIGN_UP, sign_up_variables(1), "hash"
    elif operation == "logIn":
        await api.sign_up()
        query, method = LOG_IN, "verify"
        variables = {"i": {"practiceSlug": "calm-minds", "email": "owner@example.com", "password": PASSWORD}}
    else:
        owner = await subs.group_practice(api)
        issued = await subs.invite(api, owner, "casey@example.com")
        query, variables, method = (
            subs.ACCEPT,
            {"i": {"token": issued["token"], "name": "Casey", "password": PASSWORD}},
            "hash",
        )

    entered, cheap_answered = threading.Event(), threading.Event()
    answered_while_hashing: list[bool] = []
    real = getattr(PasswordHasher, method)

    def slow(self, *args, **kwargs):
        entered.set()
        answered_while_hashing.append(cheap_answered.wait(timeout=20))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PasswordHasher, method, slow)
    hashing = asyncio.create_task(api.post(query, variables))
    while not entered.is_set() and not hashing.done():
        await asyncio.sleep(0.001)
    assert (await api.ok("{ plans { code } }"))["plans"]
    cheap_answered.set()
    body = await hashing
    assert not body.get("errors"), body
    assert answered_while_hashing == [True]


# ------------------------------------------------------------------ item 8: the Decimal scalar


async def ledger_snapshot() -> tuple:
    balances = sorted((b.clinician_id, b.chart_id, b.balance_cents) for b in await BillingBalance.all())
    return (await BillingEntry.all().count(), balances, await AuditEvent.filter(action__startswith="billing.").count())


LITERAL_CHARGE = """mutation { recordCharge(input: {chartId: "%s", clinicianId: "%s", amount: %s, occurredOn:
"2026-03-02",
  description: "Session"}) { entry { id amount { amount } } } }"""

# Each as a JSON variable; exponents, separators, non-ASCII digits, JSON numbers, spaces, a lone point, too many
# digits (and what Python's Decimal would also read: NaN, Infinity).
NOT_PLAIN = [
    "1e999999999",
    "1E+2",
    "1e2",
    "-1e-999999999",
    "1_000",
    "١٢",
    "１２",
    "12\u00a0",
    " 12",
    "12 ",
    "+-1",
    "0x10",
    "1.",
    ".5",
    "1..5",
    "1,50",
    "NaN",
    "Infinity",
    "-inf",
    "sNaN",
    "",
    "ten",
    "9" * 29,
    "1." + "0" * 40,
    10.5,
    10,
    1e300,
    True,
    ["10"],
    {"amount": "10"},
]
# The same as literals in the document.
NOT_PLAIN_LITERALS = [
    '"1e999999999"',
    '"1_000"',
    '"١٢"',
    '"1."',
    '".5"',
    '"NaN"',
    "10.5",
    "10",
    "1e2",
    "true",
    '["10"]',
    '{amount: "10"}',
    f'"{"9" * 29}"',
]


async def test_item8_decimal_accepts_only_plain_ascii_decimals(api, client):
    g = await billing.make_group(api)
    await billing.charge(api, g.owner, g.ann_chart, g.ann, "50.00")
    before = await ledger_snapshot()
    entry = {"chartId": g.ann_chart, "clinicianId": g.ann.id, "occurredOn": "2026-03-02", "description": "Session"}
    for amount in NOT_PLAIN:
        response = await client.post(
            "/graphql",
            json={"query": billing.RECORD_CHARGE, "variables": {"i": {**entry, "amount": amount}}},
            headers={"authorization": f"Bearer {g.owner.token}"},
        )
        assert not response_problems(response.status_code, response.content), (amount, response.text)
        body = response.json()
        assert codes(body) == ["BAD_USER_INPUT"], (amount, body)
        assert body["errors"][0]["extensions"]["field"] == "input.amount", (amount, body)
    for literal in NOT_PLAIN_LITERALS:
        body = await api.post(LITERAL_CHARGE % (g.ann_chart, g.ann.id, literal), token=g.owner.token)
        assert codes(body) == ["BAD_USER_INPUT"], (literal, body)
        assert body["errors"][0]["extensions"]["field"] == "input.amount", (literal, body)
    # The other amounts: payments, refunds and signed adjustments read the same scalar.
    for mutation, extra in [
        (billing.RECORD_PAYMENT, {"clinicianIds": [g.ann.id]}),
        (billing.RECORD_REFUND, {"clinicianIds": [g.ann.id]}),
        (billing.RECORD_ADJUSTMENT, {"clinicianId": g.ann.id, "description": "x"}),
    ]:
        for amount in ["1e999999999", "-1e999999999", "1_0", 5]:
            variables = {"i": {"chartId": g.ann_chart, "amount": amount, "occurredOn": "2026-03-02", **extra}}
            body = await api.post(mutation, variables, g.owner.token)
            assert codes(body) == ["BAD_USER_INPUT"] and body["errors"][0]["extensions"]["field"] == "input.amount", (
                amount,
                body,
            )
    assert await ledger_snapshot() == before

    # Plain decimals still work, as variables and as literals: a sign, leading and trailing zeros.
    assert (await billing.charge(api, g.owner, g.ann_chart, g.ann, "+0012.50"))["entry"]["amount"]["amount"] == "12.50"
    assert (await billing.charge(api, g.owner, g.ann_chart, g.ann, "7.000"))["entry"]["amount"]["amount"] == "7.00"
    adjusted = await api.ok(
        billing.RECORD_ADJUSTMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "-0.5",
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        g.owner.token,
    )
    assert adjusted["recordAdjustment"]["entry"]["amount"]["amount"] == "-0.50"
    data = await api.ok(LITERAL_CHARGE % (g.ann_chart, g.ann.id, '"3"'), token=g.owner.token)
    assert data["recordCharge"]["entry"]["amount"]["amount"] == "3.00"


# ------------------------------------------------------------------ item 9: cursors out of PostgreSQL's range


def hand_made(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# Times a cursor can carry that Python reads but that leave the years 1-9999 once in UTC (asyncpg converts to UTC),
# and the extremes themselves.
EXTREME_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-14:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59.999999+00:00",
]
ID = {"u": "0" * 32}

# Every list that pages by time: its query (with $after) and the cursor it reads, given a time.
LISTS = {
    "billing history": (
        "query($after: String) { practice { billing { history(after: $after) { edges { node { id } } } } } }",
        lambda t: [{"d": "2026-03-02"}, {"t": t}, ID],
    ),
    "charts": (
        "query($after: String) { practice { charts(after: $after) { edges { node { id } } } } }",
        lambda t: [{"t": t}, ID],
    ),
    "chart notes": (
        "query($after: String) { practice { charts { edges { node { notes(after: $after) { edges { node { id } } } } } "
        "} } }",
        lambda t: [{"t": t}, ID],
    ),
    "assigned charts": (
        "query($after: String) { practice { members { edges { node { assignedCharts(after: $after) { edges { node { id "
        "} } } } } } } }",
        lambda t: [{"t": t}, ID],
    ),
    "members": (
        "query($after: String) { practice { members(after: $after) { edges { node { id } } } } }",
        lambda t: [{"t": t}, ID],
    ),
    "invitations": (
        "query($after: String) { practice { invitations(after: $after) { edges { node { id } } } } }",
        lambda t: [{"t": t}, ID],
    ),
    "api tokens": (
        "query($after: String) { practice { apiTokens(after: $after) { edges { node { id } } } } }",
        lambda t: [{"t": t}, ID],
    ),
    "subscription charges": (
        "query($after: String) { practice { subscription { charges(after: $after) { edges { node { id } } } } } }",
        lambda t: [{"t": t}, ID],
    ),
    "audit log": (
        "query($after: String) { practice { auditLog(after: $after) { edges { node { id } } } } }",
        lambda t: [{"t": t}],
    ),
}


async def writes_other_than_reads() -> tuple[int, int]:
    """Audit events other than the reads of the charts a refused query still returned (the charts around refused
    notes), and ledger entries."""
    events = await AuditEvent.exclude(action__in=["chart.read", "chart.notes_read"]).count()
    return events, await BillingEntry.all().count()


@pytest.mark.parametrize("name", list(LISTS))
async def test_item9_out_of_range_cursor_is_bad_input(api, client, name):
    """Was INTERNAL on PostgreSQL: asyncpg could not encode a cursor's time once converted to UTC. Each list is read
    by a caller who sees rows of it, so that the keyset query really runs."""
    query, cursor_of = LISTS[name]
    g = await billing.make_group(api)
    await billing.charge(api, g.owner, g.ann_chart, g.ann, "10.00")
    await charts.add_note(api, g.ann.token, g.ann_chart)
    await subs.invite(api, g.owner.token, "casey@example.com")
    await api.ok("mutation { startSubscription { subscription { status } } }", token=g.owner.token)
    await api.ok(
        'mutation { createApiToken(input: {name: "Partner", scopes: [READ_CHARTS]}) { token } }', token=g.owner.token
    )
    caller = g.ann if name == "chart notes" else g.owner
    first_page = await api.ok(query, {"after": None}, caller.token)
    assert "'edges': [{" in str(first_page), first_page  # the list has rows for this caller
    writes = await writes_other_than_reads()
    for moment in EXTREME_TIMES:
        cursor = hand_made(cursor_of(moment))
        response = await client.post(
            "/graphql",
            json={"query": query, "variables": {"after": cursor}},
            headers={"authorization": f"Bearer {caller.token}"},
        )
        assert not response_problems(response.status_code, response.content), (moment, response.text)
        body = response.json()
        # Nested lists (notes, assigned charts) refuse it once per parent.
        assert set(codes(body)) == {"BAD_USER_INPUT"}, (moment, body)
        assert {error["extensions"]["field"] for error in body["errors"]} == {"after"}, (moment, body)
    assert await writes_other_than_reads() == writes
