"""Trusted documents (persisted queries): manifests checked at start-up, requests naming a document by id (POST and
GET), PERSISTED_QUERY_NOT_FOUND, GROUPS_API_TRUSTED_DOCUMENTS_ONLY=sessions, and the benchmark's screens as a
manifest."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
import pytest

from bench import screens
from models import Member
from models.enums import TokenScope
from server import cli, observability
from server.app import create_app
from server.settings import ConfigurationError, Settings
from server.trusted_documents import read_manifest
from tests.conftest import PASSWORD
from tests.factories import insert_api_token, sign_up

PLANS = "query Plans { plans { code } }"
VIEWER = "query Viewer { viewer { name role } }"
SIGN_UP = "mutation SignUp($input: SignUpInput!) { signUp(input: $input) { accessToken member { id } } }"
# Apollo's manifest format, with a name and type per operation.
PLAN_NAMES = "query TrustedPlanNames { plans { code name } }"
UNTRUSTED = "{ plans { code } }"
BOTH_CREDENTIALS = (
    'mutation Both { logIn(input: {practiceSlug: "a", email: "b", password: "c"}) { accessToken } '
    'signUp(input: {practiceName: "a", name: "b", email: "c", password: "d", planCode: "e"}) { accessToken } }'
)
# 100 members x 100 charts x 100 notes: about a million nodes, over MAX_QUERY_COST.
COSTLY = (
    "query Costly { practice { members(first: 100) { edges { node { assignedCharts(first: 100) { edges { node { "
    "notes(first: 100) { totalCount } } } } } } } } }"
)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def codegen_manifest(path: Path, *documents: str) -> Path:
    path.write_text(json.dumps({sha(d): d for d in documents}))
    return path


def apollo_manifest(path: Path, *operations: tuple[str, str, str]) -> Path:
    entries = [{"id": sha(body), "name": name, "type": kind, "body": body} for name, kind, body in operations]
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": entries}))
    return path


@pytest.fixture
def manifests(tmp_path: Path) -> tuple[str, ...]:
    return (
        str(codegen_manifest(tmp_path / "persisted-documents.json", PLANS, VIEWER, SIGN_UP)),
        str(apollo_manifest(tmp_path / "persisted-query-manifest.json", ("TrustedPlanNames", "query", PLAN_NAMES))),
    )


@pytest.fixture
def trusted_only() -> bool:
    return False


ONLY = pytest.mark.parametrize("trusted_only", [True])


@pytest.fixture
def settings(settings: Settings, manifests, trusted_only: bool) -> Settings:
    return settings.with_(trusted_documents=manifests, trusted_documents_only="sessions" if trusted_only else None)


async def post(client: httpx.AsyncClient, body: dict, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post("/graphql", json=body, headers=headers)


def code_of(response: httpx.Response) -> str:
    return response.json()["errors"][0]["extensions"]["code"]


def sign_up_input(email: str = "olive@example.com") -> dict:
    return {
        "practiceName": "Calm Minds",
        "name": "Olive Owner",
        "email": email,
        "password": PASSWORD,
        "planCode": "erx-lite",
    }


# ------------------------------------------------------------------ naming a document


async def test_a_request_names_a_codegen_document_by_document_id_with_or_without_the_prefix(client):
    for document_id in ("sha256:" + sha(PLANS), sha(PLANS)):
        response = await post(client, {"documentId": document_id})
        assert response.status_code == 200, response.text
        assert response.json()["data"]["plans"] and "errors" not in response.json()


async def test_a_named_document_takes_variables(client):
    response = await post(client, {"documentId": "sha256:" + sha(SIGN_UP), "variables": {"input": sign_up_input()}})
    assert response.status_code == 200 and response.json()["data"]["signUp"]["accessToken"], response.text


async def test_a_request_names_an_apollo_document_by_the_persisted_query_extension(client):
    body = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(PLAN_NAMES)}}}
    response = await post(client, body)
    assert response.status_code == 200, response.text
    assert {"code", "name"} <= set(response.json()["data"]["plans"][0])


async def test_an_unknown_id_is_persisted_query_not_found_with_status_200_as_apollo_clients_expect(client):
    unknown = sha("query Unknown { plans { code } }")
    for body in (
        {"documentId": "sha256:" + unknown},
        {"documentId": unknown},
        {"documentId": "md5:abc"},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": unknown}}},
    ):
        response = await post(client, body)
        assert response.status_code == 200, response.text
        error = response.json()["errors"][0]
        # Apollo Server's answer: older Apollo clients read the message, newer ones the code too.
        assert error == {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
        assert "data" not in response.json()
        assert response.headers["cache-control"] == "no-store"


async def test_without_manifests_every_id_is_unknown(settings):
    async with http_client(settings.with_(trusted_documents=())) as client:
        response = await post(client, {"documentId": "sha256:" + sha(PLANS)})
    assert response.status_code == 200 and code_of(response) == "PERSISTED_QUERY_NOT_FOUND"


async def test_apollos_retry_with_text_and_hash_runs_the_text_only_when_it_is_the_hashed_text(client):
    other = "query Other { plans { name } }"
    matching = await post(
        client, {"query": other, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(other)}}}
    )
    assert matching.status_code == 200 and matching.json()["data"]["plans"], matching.text
    mismatch = await post(client, {"query": other, "documentId": sha(PLANS)})
    assert mismatch.status_code == 400 and code_of(mismatch) == "BAD_REQUEST"
    both = await post(
        client, {"documentId": sha(PLANS), "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(VIEWER)}}}
    )
    assert both.status_code == 400 and code_of(both) == "BAD_REQUEST"


@pytest.mark.parametrize(
    "body",
    [
        {"documentId": 7},
        {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": "ab"}}},
        {"extensions": {"persistedQuery": "abc"}},
    ],
)
async def test_a_malformed_id_is_a_bad_request(client, body):
    response = await post(client, body)
    assert response.status_code == 400 and code_of(response) == "BAD_REQUEST", response.text


# ------------------------------------------------------------------ GET


async def test_get_runs_a_trusted_document_by_id_and_is_not_taken_for_graphiql(client):
    # curl's default Accept is */*, which would otherwise ask for GraphiQL.
    by_id = await client.get("/graphql", params={"documentId": "sha256:" + sha(PLANS)}, headers={"Accept": "*/*"})
    assert by_id.status_code == 200 and by_id.json()["data"]["plans"], by_id.text
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": sha(PLAN_NAMES)}})
    apollo = await client.get("/graphql", params={"extensions": extensions})
    assert apollo.status_code == 200 and apollo.json()["data"]["plans"], apollo.text
    # Outside production GET with a text keeps working (GraphiQL).
    text = await client.get("/graphql", params={"query": UNTRUSTED}, headers={"Accept": "application/json"})
    assert text.status_code == 200 and text.json()["data"]["plans"]


async def test_get_never_runs_a_mutation_even_a_trusted_one(client):
    response = await client.get(
        "/graphql", params={"documentId": sha(SIGN_UP), "variables": json.dumps({"input": sign_up_input()})}
    )
    assert response.status_code == 400, response.text
    assert await Member.all().count() == 0


async def test_in_production_get_runs_trusted_documents_by_id_only(settings):
    production = settings.with_(env="production", jwt_secret="p" * 40)
    async with http_client(production) as client:
        by_id = await client.get("/graphql", params={"documentId": "sha256:" + sha(PLANS)})
        unknown = await client.get("/graphql", params={"documentId": "sha256:" + sha("query X { plans { code } }")})
        refused = {
            "text": await client.get("/graphql", params={"query": UNTRUSTED}),
            "trusted text": await client.get("/graphql", params={"query": PLANS}),
            "text beside an id": await client.get("/graphql", params={"query": PLANS, "documentId": sha(PLANS)}),
            "no id": await client.get("/graphql", params={"extensions": "{}"}),
            "GraphiQL": await client.get("/graphql", headers={"Accept": "text/html"}),
        }
    assert by_id.status_code == 200 and by_id.json()["data"]["plans"], by_id.text
    assert unknown.status_code == 200 and code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    for name, response in refused.items():
        assert response.status_code == 405, (name, response.text)
        assert response.headers["allow"] == "GET, POST" and code_of(response) == "BAD_REQUEST", name
        assert response.headers["cache-control"] == "no-store"


# ------------------------------------------------------------------ GROUPS_API_TRUSTED_DOCUMENTS_ONLY=sessions


@ONLY
async def test_trusted_only_refuses_anonymous_and_session_texts_before_parsing(client):
    signed = await post(client, {"documentId": sha(SIGN_UP), "variables": {"input": sign_up_input()}})
    session = signed.json()["data"]["signUp"]["accessToken"]
    for token in (None, session, "not-a-valid-token"):
        for text in (UNTRUSTED, "{ this is not GraphQL", "{ __schema { types { name } } }"):
            response = await post(client, {"query": text}, token)
            assert response.status_code == 200, response.text
            assert code_of(response) == "FORBIDDEN" and "data" not in response.json(), (token, text, response.text)
            assert "trusted documents" in response.json()["errors"][0]["message"]
    # A retry sending an unknown document's text with its hash is refused too.
    apq = await post(
        client, {"query": UNTRUSTED, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha(UNTRUSTED)}}}
    )
    assert code_of(apq) == "FORBIDDEN"
    by_id = await post(client, {"documentId": "sha256:" + sha(VIEWER)}, session)
    assert by_id.json()["data"]["viewer"] == {"name": "Olive Owner", "role": "OWNER"}, by_id.text


@ONLY
async def test_trusted_only_counts_a_text_that_hashes_to_a_trusted_document_as_that_document(client):
    anonymous = await post(client, {"query": PLANS})
    assert anonymous.status_code == 200 and anonymous.json()["data"]["plans"], anonymous.text
    near_miss = await post(client, {"query": PLANS + " "})
    assert code_of(near_miss) == "FORBIDDEN"


@ONLY
async def test_trusted_only_lets_partner_tokens_send_any_document_within_the_cost_limits(client):
    signed = await post(client, {"documentId": sha(SIGN_UP), "variables": {"input": sign_up_input()}})
    assert signed.status_code == 200, signed.text
    owner = await Member.get(email="olive@example.com")
    token = await insert_api_token(
        owner, (TokenScope.READ_MEMBERS, TokenScope.READ_CHARTS, TokenScope.READ_CHART_NOTES)
    )
    free_form = await post(client, {"query": "{ practice { name members(first: 5) { totalCount } } }"}, token)
    assert free_form.json()["data"]["practice"]["members"]["totalCount"] == 1, free_form.text
    costly = await post(client, {"query": COSTLY}, token)
    assert code_of(costly) == "QUERY_TOO_COMPLEX", costly.text
    # A revoked token is no partner: its request is anonymous, and refused as one.
    revoked = await insert_api_token(owner, (TokenScope.READ_MEMBERS,), revoked=True)
    assert code_of(await post(client, {"query": UNTRUSTED}, revoked)) == "FORBIDDEN"


async def test_without_trusted_only_sessions_send_any_document(api):
    owner = await sign_up(api)
    assert (await api.ok("{ viewer { name } }", token=owner.token))["viewer"]["name"] == "Olive Owner"


# ------------------------------------------------------------------ start-up


def refuses(settings: Settings, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        create_app(settings.checked())


def test_a_document_whose_id_is_not_its_sha256_refuses_to_start(settings, tmp_path):
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps({sha(PLANS): "query Plans { plans { code name } }"}))
    refuses(settings.with_(trusted_documents=(str(path),)), rf"{re.escape(str(path))}.*{sha(PLANS)}.*does not match")
    apollo = tmp_path / "apollo.json"
    entries = [{"id": "0" * 64, "name": "Plans", "type": "query", "body": PLANS}]
    apollo.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": entries}))
    refuses(settings.with_(trusted_documents=(str(apollo),)), rf"{re.escape(str(apollo))}.*{'0' * 64}.*does not match")


def test_a_codegen_manifest_may_key_its_documents_sha256_colon_hex_as_the_client_preset_v5_writes(settings, tmp_path):
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({"sha256:" + sha(PLANS): PLANS}))
    assert read_manifest(path) == [
        (sha(PLANS), PLANS)
    ]  # held by the bare hex, which requests name with or without the prefix
    create_app(settings.with_(trusted_documents=(str(path),)).checked())
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({"sha256:" + sha(VIEWER): PLANS}))
    refuses(
        settings.with_(trusted_documents=(str(tampered),)),
        rf"{re.escape(str(tampered))}.*{sha(VIEWER)}.*does not match",
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("query Broken { plans { code }", "does not parse"),
        ("query Unknown { plans { colour } }", "not valid against this server's schema"),
        (BOTH_CREDENTIALS, "must be the only field"),
        (COSTLY, "costs 10101 points"),
    ],
)
def test_a_document_that_does_not_parse_validate_or_fit_the_cost_limit_refuses_to_start(
    settings, tmp_path, document, problem
):
    path = codegen_manifest(tmp_path / "bad.json", PLANS, document)
    refuses(
        settings.with_(trusted_documents=(str(path),)),
        rf"{re.escape(str(path))}: trusted document {sha(document)}: .*{problem}",
    )


def test_introspection_documents_refuse_to_start_in_production(settings, tmp_path):
    path = codegen_manifest(tmp_path / "introspection.json", "query Types { __schema { types { name } } }")
    production = settings.with_(env="production", jwt_secret="p" * 40, trusted_documents=(str(path),))
    refuses(production, "introspection")
    create_app(settings.with_(trusted_documents=(str(path),)))  # outside production introspection is on


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "is not JSON"),
        ("[]", "is a JSON object"),
        ('{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}', "unknown manifest format"),
        ('{"abc": 7}', "must be a string"),
    ],
)
def test_a_manifest_that_is_not_one_refuses_to_start(settings, tmp_path, content, problem):
    path = tmp_path / "manifest.json"
    path.write_text(content)
    refuses(settings.with_(trusted_documents=(str(path),)), problem)
    refuses(settings.with_(trusted_documents=(str(tmp_path / "missing.json"),)), "cannot read")


def test_trusted_documents_settings_are_read_and_checked(tmp_path):
    env = {"GROUPS_API_TRUSTED_DOCUMENTS": "a.json, b.json", "GROUPS_API_TRUSTED_DOCUMENTS_ONLY": "sessions"}
    settings = Settings.from_env(env)
    assert settings.trusted_documents == ("a.json", "b.json") and settings.trusted_documents_only == "sessions"
    assert Settings.from_env({}).trusted_documents == () and Settings.from_env({}).trusted_documents_only is None
    with pytest.raises(ConfigurationError, match="GROUPS_API_TRUSTED_DOCUMENTS_ONLY"):
        Settings.from_env({"GROUPS_API_TRUSTED_DOCUMENTS_ONLY": "all"})
    with pytest.raises(ConfigurationError, match="GROUPS_API_TRUSTED_DOCUMENTS_ONLY"):
        Settings(jwt_secret="s" * 32, trusted_documents_only="yes").checked()
    with pytest.raises(ConfigurationError, match="needs GROUPS_API_TRUSTED_DOCUMENTS"):
        Settings(jwt_secret="s" * 32, trusted_documents_only="sessions").checked()


def test_serve_refuses_a_bad_manifest_before_starting_workers(tmp_path, monkeypatch, capsys):
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps({"0" * 64: PLANS}))
    monkeypatch.setenv("GROUPS_API_TRUSTED_DOCUMENTS", str(path))
    monkeypatch.setenv("GROUPS_API_JWT_SECRET", "s" * 40)
    assert cli.main(["serve", "--database-url", f"sqlite://{tmp_path / 'db.sqlite3'}"]) == 2
    assert f"{path}: trusted document '{'0' * 64}' does not match" in capsys.readouterr().err


# ------------------------------------------------------------------ metrics


async def test_trusted_documents_names_label_metrics_and_unknown_ids_are_counted(client):
    assert {"Plans", "Viewer", "SignUp", "TrustedPlanNames"} <= observability.known_operation_names()
    await post(client, {"documentId": sha(PLAN_NAMES)})
    await post(client, {"documentId": sha("nothing")})
    text = (await client.get("/metrics")).text
    assert 'groups_api_graphql_operations_total{operation="TrustedPlanNames"}' in text
    assert 'groups_api_graphql_errors_total{code="PERSISTED_QUERY_NOT_FOUND"}' in text


# ------------------------------------------------------------------ the benchmark's screens


def test_the_bench_manifest_is_the_screens_documents():
    """``python -m bench.screens`` regenerates it."""
    assert screens.MANIFEST.read_text() == screens.manifest_json()
    assert set(json.loads(screens.MANIFEST.read_text()).values()) == set(screens.documents())


@pytest.mark.parametrize("manifests", [(str(screens.MANIFEST),)])
async def test_the_bench_manifest_loads_and_its_screens_run_by_id(api, client):
    owner = await sign_up(api)
    response = await post(
        client, {"documentId": "sha256:" + sha(screens.DASHBOARD), "variables": {"first": 10}}, owner.token
    )
    assert response.json()["data"]["practice"]["members"]["totalCount"] == 1, response.text
    assert {
        "Dashboard",
        "ChartList",
        "BillingHistory",
        "RecordPayment",
        "ClinicianBalances",
    } <= observability.known_operation_names()


# ------------------------------------------------------------------ helpers


class http_client:
    """A client on an app built for ``settings``, on the test database."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings, generate_schemas=True)

    async def __aenter__(self) -> httpx.AsyncClient:
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")
        return self.client

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        await self.lifespan.__aexit__(*exc)
