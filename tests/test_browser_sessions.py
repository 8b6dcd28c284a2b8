"""Browser apps (issue 13): CORS for the listed origins only, and cookie sessions.

A web app on a listed origin (GROUPS_API_CORS_ORIGINS) gets the refresh token in an httpOnly cookie and never sees
it; refreshSession and logOut read the cookie only for those origins. Everything else (no Origin: mobile, partners,
curl) keeps the tokens in the body, as before.
"""

from __future__ import annotations

from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest

from models import Session
from schema import build_schema
from schema.limits import credential_mutations
from server.graphql import REFRESH_COOKIE
from tests.conftest import PASSWORD
from tests.factories import sign_up
from tests.factories_subscriptions import group_practice, invite

APP = "http://localhost:5173"
OTHER_APP = "https://evil.example.com"

SIGN_UP = """mutation($i: SignUpInput!) { signUp(input: $i) { accessToken refreshToken member { id } } }"""
LOG_IN = "mutation($i: LogInInput!) { logIn(input: $i) { accessToken refreshToken member { id } } }"
ACCEPT = (
    "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { accessToken refreshToken member { id } } }"
)
REFRESH = "mutation { refreshSession(input: {}) { accessToken refreshToken member { id } } }"
REFRESH_WITH = "mutation($t: String) { refreshSession(input: {refreshToken: $t}) { accessToken refreshToken } }"
LOG_OUT = "mutation { logOut(input: {}) { loggedOut } }"
VIEWER = "{ viewer { id } }"


@pytest.fixture
def settings(settings):
    return settings.with_(cors_origins=(APP, "https://app.example.com"))


class Browser:
    """A browser tab on ``origin``: sends its Origin, keeps the refresh cookie the way a browser does (the test's
    http://test is not https, so the Secure cookie is carried by hand)."""

    def __init__(self, client: httpx.AsyncClient, origin: str | None = APP) -> None:
        self.client = client
        self.origin = origin
        self.cookie: str | None = None
        self.last: SimpleCookie | None = None

    async def post(self, query: str, variables: dict | None = None, token: str | None = None) -> httpx.Response:
        headers = {"Origin": self.origin} if self.origin else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if self.cookie:
            headers["Cookie"] = f"{REFRESH_COOKIE}={self.cookie}"
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        self.last = None
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie(header)
            self.last = jar
            morsel = jar[REFRESH_COOKIE]
            self.cookie = morsel.value if morsel["max-age"] != "0" else None
        return response

    async def data(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        body = (await self.post(query, variables, token)).json()
        assert not body.get("errors"), body
        return body["data"]

    async def code(self, query: str, variables: dict | None = None, token: str | None = None) -> str:
        body = (await self.post(query, variables, token)).json()
        assert body.get("errors"), body
        return body["errors"][0]["extensions"]["code"]


def sign_up_variables(email: str = "owner@example.com") -> dict:
    return {
        "i": {
            "practiceName": "Calm Minds",
            "name": "Olive Owner",
            "email": email,
            "password": PASSWORD,
            "planCode": "erx-lite",
        }
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


async def session_rows() -> list[tuple]:
    return sorted(await Session.all().values_list("id", "refresh_token_hash", "revoked_at", "expires_at"))


# ------------------------------------------------------------------ CORS


async def test_a_preflight_from_a_listed_origin_is_answered_for_credentials(client):
    response = await client.options(
        "/graphql",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-request-id",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id"} <= allowed
    assert {m.strip() for m in response.headers["access-control-allow-methods"].split(",")} >= {"GET", "POST"}
    assert int(response.headers["access-control-max-age"]) > 0
    assert "Origin" in response.headers["vary"]

    answer = await client.post("/graphql", json={"query": "{ plans { code } }"}, headers={"Origin": APP})
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "retry-after" in answer.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("origin", [OTHER_APP, "http://localhost:5174", "null", APP + ".evil.com"])
async def test_other_origins_get_no_cors_headers(client, origin):
    preflight = await client.options(
        "/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 405
    assert cors_headers(preflight) == {}
    answer = await client.post("/graphql", json={"query": "{ plans { code } }"}, headers={"Origin": origin})
    assert cors_headers(answer) == {}


async def test_without_listed_origins_there_is_no_cors_at_all(app, settings):
    from server.app import create_app

    plain = create_app(settings.with_(cors_origins=()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://test") as http:
        preflight = await http.options("/graphql", headers={"Origin": APP, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 405 and cors_headers(preflight) == {}
        # ... and no cookie mode either: the refresh token stays in the body.
        body = (
            await http.post(
                "/graphql", json={"query": SIGN_UP, "variables": sign_up_variables()}, headers={"Origin": APP}
            )
        ).json()
    assert body["data"]["signUp"]["refreshToken"]


# ------------------------------------------------------------------ cookie mode


async def test_sign_up_from_a_listed_origin_puts_the_refresh_token_in_an_httponly_cookie_only(client, settings):
    tab = Browser(client)
    signed = (await tab.data(SIGN_UP, sign_up_variables()))["signUp"]
    assert signed["refreshToken"] is None and signed["accessToken"]
    assert tab.last is not None
    morsel = tab.last[REFRESH_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == "/graphql"
    assert morsel["secure"] is True  # outside development
    assert abs(int(morsel["max-age"]) - settings.refresh_token_ttl.total_seconds()) <= 1
    assert (await tab.data(VIEWER, token=signed["accessToken"]))["viewer"]["id"] == signed["member"]["id"]


async def test_development_cookies_are_not_secure(app, settings):
    from server.app import create_app

    development = create_app(settings.with_(env="development"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=development), base_url="http://test") as http:
        tab = Browser(http)
        await tab.data(SIGN_UP, sign_up_variables())
    assert tab.last is not None and tab.last[REFRESH_COOKIE]["secure"] == ""


async def test_requests_without_origin_keep_the_tokens_in_the_body(client, api):
    response = await client.post("/graphql", json={"query": SIGN_UP, "variables": sign_up_variables()})
    assert response.json()["data"]["signUp"]["refreshToken"]
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("mutation", ["logIn", "acceptInvitation", "refreshSession"])
async def test_every_credential_mutation_answers_in_cookie_mode(client, api, mutation):
    owner = await sign_up(api)
    tab = Browser(client)
    if mutation == "logIn":
        data = await tab.data(LOG_IN, {"i": {"practiceSlug": owner.slug, "email": owner.email, "password": PASSWORD}})
    elif mutation == "acceptInvitation":
        owner_token = await group_practice(api)
        issued = await invite(api, owner_token, "casey@example.com")
        data = await tab.data(ACCEPT, {"i": {"token": issued["token"], "name": "Casey", "password": PASSWORD}})
    else:
        data = await tab.data(REFRESH_WITH, {"t": owner.refresh_token})  # a token in the input: the answer is a cookie
    payload = data[mutation]
    assert payload["refreshToken"] is None
    assert tab.cookie
    refreshed = (await tab.data(REFRESH))["refreshSession"]
    assert refreshed["refreshToken"] is None and (await tab.data(VIEWER, token=refreshed["accessToken"]))["viewer"]


def test_every_mutation_answering_an_auth_payload_is_covered_here():
    """Cookie mode is generic (AuthPayload.of hands the token to the HTTP layer); this list makes a new credential
    mutation show up here so that it gets a test like the ones above."""
    covered = {"signUp", "logIn", "acceptInvitation", "refreshSession", "resetPassword"}
    assert credential_mutations(build_schema()._schema) <= covered


async def test_refresh_reads_the_cookie_and_rotates_it(client):
    tab = Browser(client)
    await tab.data(SIGN_UP, sign_up_variables())
    first_cookie = tab.cookie
    refreshed = (await tab.data(REFRESH))["refreshSession"]
    assert tab.cookie and tab.cookie != first_cookie
    assert (await tab.data(VIEWER, token=refreshed["accessToken"]))["viewer"]


async def test_the_cookie_lives_as_long_as_its_session(client, clock, settings):
    tab = Browser(client)
    await tab.data(SIGN_UP, sign_up_variables())
    for _ in range(3):  # days 29, 58, 87: the idle limit (30 days) until the absolute one (90) is nearer
        clock.advance(timedelta(days=29))
        await tab.data(REFRESH)
    assert tab.last is not None
    assert abs(int(tab.last[REFRESH_COOKIE]["max-age"]) - timedelta(days=3).total_seconds()) <= 1


async def test_two_tabs_refreshing_with_one_cookie_both_stay_signed_in(client, clock):
    first, second = Browser(client), Browser(client)
    await first.data(SIGN_UP, sign_up_variables())
    second.cookie = first.cookie  # one browser, one cookie jar
    a = (await first.data(REFRESH))["refreshSession"]
    b = (await second.data(REFRESH))["refreshSession"]
    for tab, pair in ((first, a), (second, b)):
        assert (await tab.data(VIEWER, token=pair["accessToken"]))["viewer"]
    clock.advance(timedelta(minutes=20))
    for tab in (first, second):
        assert (await tab.data(REFRESH))["refreshSession"]["accessToken"]
    assert await Session.filter(revoked_at=None).count() == 1


@pytest.mark.parametrize("origin", [OTHER_APP, None])
@pytest.mark.parametrize("query", [REFRESH, LOG_OUT])
async def test_the_cookie_is_read_only_for_listed_origins(client, origin, query):
    """CSRF: a page elsewhere (or anything without an Origin) sending the cookie is FORBIDDEN, and nothing changes."""
    tab = Browser(client)
    signed = (await tab.data(SIGN_UP, sign_up_variables()))["signUp"]
    before = await session_rows()
    elsewhere = Browser(client, origin)
    elsewhere.cookie = tab.cookie
    response = await elsewhere.post(query, token=signed["accessToken"])
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"] == {"refreshSession": None} if query == REFRESH else {"logOut": None}
    assert "set-cookie" not in response.headers
    assert await session_rows() == before
    # The session and its cookie still work from the app.
    assert (await tab.data(REFRESH))["refreshSession"]["accessToken"]


async def test_refresh_without_a_token_from_an_unlisted_origin_is_forbidden(client, api):
    await sign_up(api)
    before = await session_rows()
    assert await Browser(client, OTHER_APP).code(REFRESH) == "FORBIDDEN"
    assert await session_rows() == before


async def test_refresh_without_a_cookie_is_unauthenticated(client, api):
    await sign_up(api)
    assert await Browser(client).code(REFRESH) == "UNAUTHENTICATED"
    assert await Browser(client, None).code(REFRESH) == "UNAUTHENTICATED"  # curl without a token, as before


async def test_log_out_ends_the_session_and_clears_the_cookie(client):
    tab = Browser(client)
    signed = (await tab.data(SIGN_UP, sign_up_variables()))["signUp"]
    cookie = tab.cookie
    assert (await tab.data(LOG_OUT))["logOut"] == {"loggedOut": True}
    assert tab.last is not None
    cleared = tab.last[REFRESH_COOKIE]
    assert (cleared.value, cleared["max-age"], cleared["path"]) == ("", "0", "/graphql")
    assert tab.cookie is None
    assert await Session.filter(revoked_at=None).count() == 0
    assert await Browser(client, None).code(VIEWER, token=signed["accessToken"]) == "UNAUTHENTICATED"
    tab.cookie = cookie  # the old cookie, sent again, is dead
    assert await tab.code(REFRESH) == "UNAUTHENTICATED"


async def test_a_dead_cookie_is_cleared(client, clock, settings):
    tab = Browser(client)
    await tab.data(SIGN_UP, sign_up_variables())
    clock.advance(settings.refresh_token_ttl + timedelta(seconds=1))
    assert await tab.code(REFRESH) == "UNAUTHENTICATED"
    assert tab.last is not None and tab.last[REFRESH_COOKIE]["max-age"] == "0"
    assert tab.cookie is None
