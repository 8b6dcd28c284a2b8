"""Limits: query cost, depth and aliases refused before execution; hourly budgets in memory and in Redis;
throttled guessing of log-ins; capped request bodies; no batching."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import strawberry
from graphql import parse, validate

from models import AuditEvent, Practice
from models.enums import PracticeKind
from resolvers import limits
from schema.limits import MAX_ALIASES, MAX_DEPTH, MAX_QUERY_COST, QueryShapeRule, query_cost
from tests.conftest import PASSWORD, Api
from tests.factories import add_member
from tests.factories_subscriptions import ACCEPT, accept, group_practice, invite
from tests.platform_support import create_token

REDIS_URL = "redis://127.0.0.1:6379/0"
RATE = "{ rateLimit { limit cost remaining resetAt } }"


def redis_reachable() -> bool:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


@pytest.fixture(params=["memory", "redis"])
def store_kind(request) -> str:
    if request.param == "redis" and not redis_reachable():
        pytest.skip(f"no Redis at {REDIS_URL}")
    return request.param


STORES = {"memory": None, "redis": REDIS_URL, "unreachable": "redis://127.0.0.1:1/0"}


@pytest.fixture
def budget_points() -> int:
    """A small budget keeps the budget tests short."""
    return 20


# The guessing tests send more anonymous requests than the small budget holds (anonymous requests are charged to
# their address): they get a budget that stays out of their way.
GUESSING_BUDGET = pytest.mark.parametrize("budget_points", [10_000])


@pytest.fixture
def settings(settings, store_kind, budget_points):
    """Every test here runs with budgets in memory and again in Redis."""
    return settings.with_(redis_url=STORES[store_kind], rate_limit_points=budget_points)


def random_address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@pytest.fixture
async def client(app):
    """A client with an address of its own, so that Redis windows of earlier runs never meet this test."""
    transport = httpx.ASGITransport(app=app, client=(random_address(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def practice_name() -> str:
    return f"Calm Minds {uuid.uuid4().hex[:8]}"


async def slug_of(name: str) -> str:
    return (await Practice.get(name=name)).slug


# ------------------------------------------------------------------ cost (a small schema of nested connections)


@strawberry.type
class Item:
    name: str = "x"

    @strawberry.field
    def children(self, first: int | None = None) -> ItemConnection:
        return ItemConnection(edges=[])


@strawberry.type
class ItemEdge:
    node: Item


@strawberry.type
class ItemConnection:
    edges: list[ItemEdge]


@strawberry.type
class ItemQuery:
    @strawberry.field
    def items(self, first: int | None = None) -> ItemConnection:
        return ItemConnection(edges=[])

    @strawberry.field
    def item(self) -> Item:
        return Item()


ITEMS = strawberry.Schema(query=ItemQuery)._schema


def cost(query: str, variables: dict | None = None) -> int:
    return query_cost(ITEMS, parse(query), None, variables)


def nest(levels: int, first: str = "") -> str:
    """items { edges { node { children { edges { node { ... name } } } } } } with ``levels`` connections."""
    inner = "name"
    for level in range(levels - 1, -1, -1):
        field = "items" if level == 0 else "children"
        inner = f"{field}{first} {{ edges {{ node {{ {inner} }} }} }}"
    return "{ " + inner + " }"


def test_cost_is_the_page_size_of_each_connection_nested_sizes_multiplied_per_hundred():
    assert cost("{ item { name } }") == 1  # no connection: the minimum
    assert cost("{ items(first: 10) { edges { node { name } } } }") == 1
    assert (
        cost("{ a: items(first: 100) { edges { node { name } } } b: items(first: 100) { edges { node { name } } } }")
        == 2
    )
    # 100 + 100 * 10 = 1,100 nodes
    assert cost("{ items(first: 100) { edges { node { children(first: 10) { edges { node { name } } } } } } }") == 11
    # Left out, first is 50: 50 + 50 * 50 = 2,550 nodes, 25.5 points, rounded up.
    assert cost(nest(2)) == 26
    # 100 + 100^2 + 100^3 = 1,010,100 nodes
    assert cost(nest(3, "(first: 100)")) == 10101


def test_cost_reads_variables_and_their_defaults_and_fragments():
    query = "query($n: Int) { items(first: $n) { edges { node { children(first: $n) { edges { node { name } } } } } } }"
    assert cost(query, {"n": 100}) == 101
    assert cost(query, {"n": 10}) == 1
    assert cost(query, {}) == 26  # null: the default page size
    with_default = "query($n: Int = 100) { items(first: $n) { edges { node { name } } } }"
    assert cost(with_default, {}) == 1 and cost(with_default, {"n": 30}) == 1
    fragment = """{ items(first: 50) { edges { node { ...Kids } } } }
        fragment Kids on Item { children(first: 20) { edges { node { name } } } }"""
    assert cost(fragment) == 11  # 50 + 50 * 20 = 1,050


def test_fragments_spread_many_times_are_measured_once():
    # Each fragment spreads the next twice: 2^40 copies of the innermost connection. A walk that re-reads
    # fragments at each spread never finishes; measured once each, this is instant and refused as costly.
    n = 40
    fragments = "".join(f"fragment F{i} on Item {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(n))
    fragments += f"fragment F{n} on Item {{ children(first: 1) {{ edges {{ node {{ name }} }} }} }}\n"
    assert cost("{ item { ...F0 } }\n" + fragments) == (2**40 + 50) // 100
    aliases = fragments.replace(f"fragment F{n} on Item {{ children", f"fragment F{n} on Item {{ c: children")
    errors = validate(ITEMS, parse("{ item { ...F0 } }\n" + aliases), [QueryShapeRule])
    assert [e.extensions["code"] for e in errors] == ["QUERY_TOO_COMPLEX"]


def test_depth_and_aliases_are_refused_in_validation():
    def codes(query: str) -> list[str]:
        return [e.extensions.get("code") for e in validate(ITEMS, parse(query), [QueryShapeRule])]

    # Each connection level is three levels of fields (children, edges, node); the leaf adds one.
    deepest_allowed = (MAX_DEPTH - 1) // 3
    assert codes(nest(deepest_allowed)) == []
    assert codes(nest(deepest_allowed + 1)) == ["QUERY_TOO_COMPLEX"]
    aliased = "{ " + " ".join(f"a{i}: item {{ name }}" for i in range(MAX_ALIASES)) + " }"
    assert codes(aliased) == []
    assert codes(aliased.replace("a0: item", "a0: item { x: name } b: item")) == ["QUERY_TOO_COMPLEX"]


# ------------------------------------------------------------------ refused before execution (HTTP)


async def test_a_costly_query_is_refused_before_any_resolver_runs(api, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    events = await AuditEvent.all().count()
    mutation = "mutation { activateGroupPractice { practice { kind members(first: 1000000) { totalCount } } } }"
    code, body = await api.error(mutation, token=owner)
    assert code == "QUERY_TOO_COMPLEX"
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["cost"] == 10000 > MAX_QUERY_COST
    # The mutation did not run: the practice is still solo and nothing was recorded.
    assert (await Practice.get(name=practice_name)).kind == PracticeKind.SOLO
    assert await AuditEvent.all().count() == events
    # Nor was the refused query charged.
    assert (await api.ok(RATE, token=owner))["rateLimit"]["remaining"] == 19


async def test_cost_counts_sizes_given_in_variables(api, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    query = "query($n: Int) { practice { members(first: $n) { totalCount } } }"
    code, _ = await api.error(query, {"n": 1_000_000}, owner)
    assert code == "QUERY_TOO_COMPLEX"
    assert (await api.ok(query, {"n": 10}, owner))["practice"]["members"]["totalCount"] == 1


async def test_too_many_aliases_are_refused(api, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    query = "{ " + " ".join(f"a{i}: viewer {{ id }}" for i in range(MAX_ALIASES + 1)) + " }"
    code, body = await api.error(query, token=owner)
    assert code == "QUERY_TOO_COMPLEX" and body.get("data") is None


# ------------------------------------------------------------------ budgets


async def test_rate_limit_reports_and_spends_the_hourly_budget(api, clock, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    first = (await api.ok(RATE, token=owner))["rateLimit"]
    assert (first["limit"], first["cost"], first["remaining"]) == (20, 1, 19)
    reset_at = datetime.fromisoformat(first["resetAt"])
    assert timedelta(minutes=59) < reset_at - clock.now() <= timedelta(hours=1)

    # Three connections of 100: 3 points.
    costly = (
        "{ a: practice { members(first: 100) { totalCount } } b: practice { members(first: 100) { totalCount } } "
        "c: practice { members(first: 100) { totalCount } } rateLimit { cost remaining resetAt } }"
    )
    second = (await api.ok(costly, token=owner))["rateLimit"]
    assert (second["cost"], second["remaining"], second["resetAt"]) == (3, 16, first["resetAt"])


async def test_over_budget_is_rate_limited_with_the_time_to_retry(api, client, clock, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    token = (await create_token(api, owner, ["READ_MEMBERS"]))["token"]
    for _ in range(20):
        await api.ok("{ viewer { id } }", token=token)
    response = await client.post(
        "/graphql", json={"query": "{ viewer { id } }"}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED" and body["data"] is None
    assert 3500 < error["extensions"]["retryAfter"] <= 3600
    assert response.headers["Retry-After"] == str(error["extensions"]["retryAfter"])
    assert response.headers["X-RateLimit-Remaining"] == "0"

    clock.advance(timedelta(hours=1))
    assert (await api.ok(RATE, token=token))["rateLimit"]["remaining"] == 19


async def test_a_query_costlier_than_what_remains_is_refused_and_not_charged(api, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    for _ in range(18):
        await api.ok("{ viewer { id } }", token=owner)
    costly = "{ " + " ".join(f"a{i}: practice {{ members(first: 100) {{ totalCount }} }}" for i in range(3)) + " }"
    code, _ = await api.error(costly, token=owner)
    assert code == "RATE_LIMITED"
    assert (await api.ok(RATE, token=owner))["rateLimit"]["remaining"] == 1


async def test_each_token_has_a_budget_of_its_own(api, practice_name):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    token = (await create_token(api, owner, ["READ_MEMBERS"]))["token"]
    for _ in range(20):
        await api.ok("{ viewer { id } }", token=token)
    code, _ = await api.error("{ viewer { id } }", token=token)
    assert code == "RATE_LIMITED"
    assert (await api.ok(RATE, token=owner))["rateLimit"]["remaining"] == 18  # the session: createApiToken and this
    other = (await create_token(api, owner, ["READ_MEMBERS"]))["token"]
    assert (await api.ok(RATE, token=other))["rateLimit"]["remaining"] == 19


async def test_anonymous_requests_are_charged_to_their_address(api, app):
    """No caller, no member budget: the client address pays (security review item 1: credential mutations and other
    anonymous documents used to run uncharged). Another address has a budget of its own."""
    for _ in range(20):
        await api.ok("{ plans { code } }")
    code, body = await api.error("{ plans { code } }")
    assert code == "RATE_LIMITED"
    assert body["errors"][0]["extensions"]["retryAfter"] > 0
    code, _ = await api.error(RATE)
    assert code == "RATE_LIMITED"  # charged before the field could say UNAUTHENTICATED
    elsewhere = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(f"2001:db8::{uuid.uuid4().hex[:4]}", 5000)),
        base_url="http://test",
    )
    async with elsewhere:
        response = await elsewhere.post("/graphql", json={"query": "{ plans { code } }"})
    assert not response.json().get("errors")
    assert response.headers["X-RateLimit-Remaining"] == "19"


# ------------------------------------------------------------------ Redis: shared between processes


@pytest.fixture
def redis_url() -> str:
    if not redis_reachable():
        pytest.skip(f"no Redis at {REDIS_URL}")
    return REDIS_URL


async def test_redis_budgets_are_shared_and_charged_atomically(redis_url):
    """Two stores are two server processes: 100 concurrent charges of 1 against a limit of 60 pass 60 times."""
    first, second = limits.RedisStore(redis_url), limits.RedisStore(redis_url)
    key, now = f"test:{uuid.uuid4().hex}", datetime.now(UTC)
    try:
        charges = [
            store.charge(key, 1, limit=60, window=timedelta(hours=1), now=now)
            for store in (first, second)
            for _ in range(50)
        ]
        results = await asyncio.gather(*charges)
        assert sum(u.allowed for u in results) == 60
        seen = await first.charge(key, 0, limit=60, window=timedelta(hours=1), now=now)
        assert (
            seen.used == 60 and not (await second.charge(key, 1, limit=60, window=timedelta(hours=1), now=now)).allowed
        )
        # The window follows the service clock: an hour later it starts again.
        later = await second.charge(key, 5, limit=60, window=timedelta(hours=1), now=now + timedelta(hours=1))
        assert later.allowed and later.used == 5
        ttl = await first.redis.pttl(limits.RedisStore.PREFIX + key)
        assert 0 < ttl <= 3_600_000
    finally:
        await first.clear(key)
        await first.aclose()
        await second.aclose()


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_the_app_keeps_budgets_in_redis_when_configured(api, store_kind, practice_name, redis_url):
    owner = (await api.sign_up(practice=practice_name))["accessToken"]
    member_id = (await api.ok("{ viewer { id } }", token=owner))["viewer"]["id"]
    store = limits.RedisStore(redis_url)
    try:
        from resolvers.ids import decode

        key = f"budget:member:{decode(member_id, 'Member')}"
        assert await store.redis.hget(limits.RedisStore.PREFIX + key, "used") == b"1"
        # Another process spends the rest: this one sees it.
        await store.charge(key, 19, limit=20, window=timedelta(hours=1), now=datetime.now(UTC))
        code, _ = await api.error("{ viewer { id } }", token=owner)
        assert code == "RATE_LIMITED"
    finally:
        await store.aclose()


@pytest.mark.parametrize("store_kind", ["unreachable"])
async def test_with_redis_down_requests_go_through_uncharged_but_log_ins_fail_closed(api, store_kind, caplog):
    owner = (await api.sign_up())["accessToken"]
    data = await api.ok("{ viewer { id } rateLimit { remaining } }", token=owner)
    assert data["viewer"]["id"] and data["rateLimit"] is None
    assert any("uncharged" in r.getMessage() for r in caplog.records)
    body = await api.log_in("calm-minds", "owner@example.com")
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "6379" not in str(body) and "127.0.0.1:1" not in str(body)


# ------------------------------------------------------------------ guessing log-ins


@GUESSING_BUDGET
async def test_failed_log_ins_are_throttled_per_account(api, client, app, clock, practice_name):
    await api.sign_up(practice=practice_name)
    slug = await slug_of(practice_name)
    for _ in range(limits.ACCOUNT_GUESSES.limit):
        body = await api.log_in(slug, "owner@example.com", password="wrong password!!")
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Locked: even the right password is refused until the window ends, with no password check made.
    failed_before = await AuditEvent.filter(action="auth.login_failed").count()
    body = await api.log_in(slug, "owner@example.com")
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert 0 < body["errors"][0]["extensions"]["retryAfter"] <= 15 * 60
    assert await AuditEvent.filter(action="auth.login_failed").count() == failed_before

    # Another account from the same address is not locked.
    await add_member(api, slug, "casey@example.com")
    clock.advance(limits.ACCOUNT_GUESSES.window)
    assert not (await api.log_in(slug, "owner@example.com")).get("errors")


@GUESSING_BUDGET
async def test_failures_elsewhere_never_lock_the_right_password_out_of_a_new_address(api, client, app, practice_name):
    """Throttled per (account, address): someone failing on purpose cannot lock the owner out of their account."""
    await api.sign_up(practice=practice_name)
    slug = await slug_of(practice_name)
    for _ in range(limits.ACCOUNT_GUESSES.limit):
        body = await api.log_in(slug, "owner@example.com", password="wrong password!!")
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await api.log_in(slug, "owner@example.com"))["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    elsewhere = httpx.ASGITransport(app=app, client=(random_address(), 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://test") as http:
        body = await Api(http).log_in(slug, "owner@example.com")
        assert not body.get("errors"), body
        assert body["data"]["logIn"]["member"]["role"] == "OWNER"
    # ... while the address that failed stays throttled, for this account.
    assert (await api.log_in(slug, "owner@example.com"))["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }"


@GUESSING_BUDGET
@pytest.mark.parametrize("throttle", ["account and address", "address"])
async def test_a_throttled_log_in_answers_retry_after(api, client, practice_name, throttle):
    await api.sign_up(practice=practice_name)
    slug = await slug_of(practice_name)
    guesses = limits.ACCOUNT_GUESSES.limit if throttle == "account and address" else limits.ADDRESS_GUESSES.limit
    for i in range(guesses):
        email = "owner@example.com" if throttle == "account and address" else f"guess{i}@example.com"
        variables = {"i": {"practiceSlug": slug, "email": email, "password": "wrong password!!"}}
        assert (
            "Retry-After" not in (await client.post("/graphql", json={"query": LOG_IN, "variables": variables})).headers
        )
    variables = {"i": {"practiceSlug": slug, "email": "owner@example.com", "password": PASSWORD}}
    response = await client.post("/graphql", json={"query": LOG_IN, "variables": variables})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert response.headers["Retry-After"] == str(error["extensions"]["retryAfter"])
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60


@GUESSING_BUDGET
async def test_failed_log_ins_are_throttled_per_address(api, app, practice_name):
    await api.sign_up(practice=practice_name)
    slug = await slug_of(practice_name)
    for i in range(limits.ADDRESS_GUESSES.limit):
        body = await api.log_in(slug, f"guess{i}@example.com")
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    body = await api.log_in(slug, "owner@example.com")
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    elsewhere = httpx.ASGITransport(app=app, client=(random_address(), 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://test") as http:
        assert not (await Api(http).log_in(slug, "owner@example.com")).get("errors")


@GUESSING_BUDGET
async def test_successful_log_ins_are_never_slowed(api, practice_name):
    await api.sign_up(practice=practice_name)
    slug = await slug_of(practice_name)
    for _ in range(3 * limits.ACCOUNT_GUESSES.limit):
        assert not (await api.log_in(slug, "owner@example.com")).get("errors")
    # A success forgets the account's failures: a user who mistypes now and then is never locked out.
    for _ in range(3):
        for _ in range(limits.ACCOUNT_GUESSES.limit - 1):
            await api.log_in(slug, "owner@example.com", password="wrong password!!")
        body = await api.log_in(slug, "owner@example.com", password=PASSWORD)
        assert not body.get("errors"), body


@GUESSING_BUDGET
async def test_guessing_invitation_tokens_is_throttled_per_address(api, app, practice_name):
    owner = await group_practice(api, practice=practice_name)
    issued = await invite(api, owner, "casey@example.com")
    for i in range(limits.ADDRESS_GUESSES.limit - 1):
        code, _ = await api.error(ACCEPT, {"i": {"token": f"guess-{i}", "name": "Mallory", "password": PASSWORD}})
        assert code == "BAD_USER_INPUT"
    # Successes are not counted (nor slowed): the real token still works with one failure left.
    assert (await accept(api, issued["token"]))["member"]["role"] == "CLINICIAN"
    code, _ = await api.error(ACCEPT, {"i": {"token": "one-more", "name": "Mallory", "password": PASSWORD}})
    assert code == "BAD_USER_INPUT"
    code, body = await api.error(ACCEPT, {"i": {"token": "and-another", "name": "Mallory", "password": PASSWORD}})
    assert code == "RATE_LIMITED" and body["errors"][0]["extensions"]["retryAfter"] > 0

    elsewhere = httpx.ASGITransport(app=app, client=(random_address(), 40000))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://test") as http:
        code, _ = await Api(http).error(
            ACCEPT, {"i": {"token": "from-elsewhere", "name": "Mallory", "password": PASSWORD}}
        )
        assert code == "BAD_USER_INPUT"


# ------------------------------------------------------------------ request size and batching


async def test_request_bodies_over_a_megabyte_are_refused(client, practice_name):
    padding = "#" * 1_000_001
    response = await client.post(
        "/graphql",
        content=f'{{"query": "{{ plans {{ code }} }} {padding}"}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413

    async def chunks():  # no Content-Length: the cap is counted as the body arrives
        yield b'{"query": "{ plans { code } } '
        for _ in range(11):
            yield b"#" * 100_000
        yield b'"}'

    response = await client.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413

    response = await client.post(
        "/graphql",
        content=f'{{"query": "{{ plans {{ code }} }} {"#" * 900_000}"}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["data"]["plans"]


async def test_batched_operations_are_refused(client):
    batch = [{"query": "{ plans { code } }"}, {"query": "{ plans { name } }"}]
    response = await client.post("/graphql", json=batch)
    assert response.status_code == 400
    assert "batching" in response.text.lower()
