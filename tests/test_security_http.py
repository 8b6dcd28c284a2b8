"""Security issue 12, the HTTP side: /metrics (item 5), query strings and caching (item 10), request ids (item 12).

Each test goes through HTTP, like a client or an attacker would: httpx against the ASGI app, and for the access log
a real uvicorn server (the access line is written by uvicorn, not by the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import uvicorn

from bench import screens
from models import AuditEvent
from schema import errors as schema_errors
from server import observability
from server.app import create_app
from server.observability import configure_logging
from server.settings import Settings
from tests.conftest import PG_URL
from tests.factories import sign_up

METRICS_TOKEN = "m" * 40


@contextlib.asynccontextmanager
async def http_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client on an app built for ``settings`` (e.g. production), on the test database, emptied afterwards on
    PostgreSQL as the ``app`` fixture does (a later test must not meet this one's practices)."""
    app = create_app(settings, generate_schemas=True)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client
        finally:
            if PG_URL:
                from tortoise.contrib.test import truncate_all_models

                await truncate_all_models()


def operation_labels(metrics_text: str) -> set[str]:
    return set(re.findall(r'groups_api_graphql_operations_total\{operation="([^"]*)"\}', metrics_text))


# ------------------------------------------------------------------ item 5: /metrics


async def test_item5_metrics_labels_are_bounded(client):
    """Operation names a client makes up never become series: they are all counted as ``other``."""
    made_up = [f"Patient_Jane_Doe_{uuid.uuid4().hex}" for _ in range(21)]

    async def run(name: str) -> None:
        response = await client.post("/graphql", json={"query": f"query {name} {{ plans {{ code }} }}"})
        assert response.status_code == 200 and response.json()["data"]["plans"]

    # A known screen's name keeps its own series (it is a bounded, server-side list).
    await client.post("/graphql", json={"query": screens.DASHBOARD})
    await run(made_up[0])
    # operationName alone (without a matching operation in the document) is refused, and counted nowhere new.
    await client.post("/graphql", json={"query": "{ plans { code } }", "operationName": made_up[0] + "x"})
    # operationName is any JSON value a client likes: still one of the bounded labels, and a GraphQL-shaped answer.
    for odd, query in itertools.product(([], ["Dashboard"], {"name": "Dashboard"}, 7), ("{ plans { code } }", "0")):
        response = await client.post("/graphql", json={"query": query, "operationName": odd})
        assert response.status_code < 500 and response.json()["errors"][0]["extensions"]["code"], (odd, response.text)
    before = (await client.get("/metrics")).text
    for name in made_up[1:]:
        await run(name)
    after = (await client.get("/metrics")).text

    labels = operation_labels(after)
    assert not any(name in after for name in made_up)
    assert "other" in labels and "Dashboard" in labels
    assert labels <= observability.known_operation_names() | {"other"}
    assert len(after) - len(before) < 200  # 20 more names: counters moved, no series added


def test_item5_the_known_operations_are_the_screens_documents():
    """The allow-list holds the operation names of the documents the project knows (bench/screens.py); the
    trusted documents of a later change are added through ``allow_operation_names``."""
    documents = [
        screens.DASHBOARD,
        screens.CHART_LIST,
        screens.BILLING_HISTORY,
        screens.RECORD_PAYMENT,
        screens.clinician_balances(2),
    ]
    names = {re.search(r"(?:query|mutation)\s+(\w+)", document).group(1) for document in documents}  # type: ignore[union-attr]
    assert names <= observability.known_operation_names()
    observability.allow_operation_names(["TrustedThing"])
    try:
        assert observability.operation_label("TrustedThing") == "TrustedThing"
    finally:
        observability.forget_operation_names(["TrustedThing"])
    assert observability.operation_label("TrustedThing") == "other"
    assert observability.operation_label(None) == "other"


async def test_item5_metrics_need_token_in_production(settings):
    production = settings.with_(env="production", metrics_token=METRICS_TOKEN)
    async with http_client(production) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "n" * 40})
        short = await client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN[:-1]})
        not_bearer = await client.get("/metrics", headers={"Authorization": "Basic " + METRICS_TOKEN})
        right = await client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 403 and short.status_code == 403 and not_bearer.status_code == 401
    for refused in (missing, wrong, short, not_bearer):
        assert "groups_api" not in refused.text
    assert right.status_code == 200 and "groups_api_db_pool_size" in right.text

    async with http_client(settings.with_(env="production")) as client:
        off = await client.get("/metrics")
        off_with_a_token = await client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
    assert off.status_code == 404 and off_with_a_token.status_code == 404
    assert "groups_api" not in off.text

    # Outside production a token, when set, is required too; unset, /metrics stays open for local work.
    async with http_client(settings.with_(metrics_token=METRICS_TOKEN)) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})).status_code == 200

    assert Settings.from_env({"GROUPS_API_METRICS_TOKEN": METRICS_TOKEN}).metrics_token == METRICS_TOKEN
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "| `GROUPS_API_METRICS_TOKEN` |" in readme


# ------------------------------------------------------------------ item 10: query strings and caching


SEARCH = '{ practice { charts(first: 5, search: "Jane Patientname") { totalCount } } }'


async def test_item10_access_log_has_no_query_string(app, capsys):
    """A GET with a patient's name in ``search:`` goes through a real uvicorn server (configured as ``groups-api
    serve`` configures it): its access line names the path, never the query string."""
    configure_logging("INFO")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=True, proxy_headers=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/graphql", params={"query": SEARCH}, headers={"Accept": "application/json"})
            await client.get("/healthz", params={"patient": "Jane Patientname"})
    finally:
        server.should_exit = True
        await serving
        sock.close()
        logging.getLogger().handlers[:] = []
    assert response.status_code in (200, 405)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any('"GET /graphql HTTP/1.1"' in line["message"] for line in access), access
    assert any('"GET /healthz HTTP/1.1"' in line["message"] for line in access), access
    everything = json.dumps([line for line in lines if line["logger"] != "httpx"])  # httpx: the test's own client
    assert "Patientname" not in everything and "query=" not in everything


async def test_item10_graphql_answers_are_not_cached(client):
    answers = {
        "POST": await client.post("/graphql", json={"query": "{ plans { code } }"}),
        "POST error": await client.post("/graphql", json={"query": SEARCH}),
        "GET": await client.get(
            "/graphql", params={"query": "{ plans { code } }"}, headers={"Accept": "application/json"}
        ),
        "GraphiQL": await client.get("/graphql", headers={"Accept": "text/html"}),
        "bad JSON": await client.post("/graphql", content=b"{", headers={"Content-Type": "application/json"}),
        "too large": await client.post(
            "/graphql", content=b"x" * 1_000_001, headers={"Content-Type": "application/json"}
        ),
        "wrong method": await client.put("/graphql", json={"query": "{ plans { code } }"}),
    }
    for name, response in answers.items():
        assert response.headers.get("cache-control") == "no-store", (name, response.status_code, response.headers)


async def test_item10_get_runs_no_documents_in_production(settings):
    production = settings.with_(env="production", jwt_secret="p" * 40)
    async with http_client(production) as client:
        get = await client.get(
            "/graphql", params={"query": "{ plans { code } }"}, headers={"Accept": "application/json"}
        )
        search = await client.get("/graphql", params={"query": SEARCH})
        html = await client.get("/graphql", headers={"Accept": "text/html"})
        post = await client.post("/graphql", json={"query": "{ plans { code } }"})
    for refused in (get, search, html):
        assert refused.status_code == 405, refused.text
        assert refused.headers["allow"] == "POST"
        assert refused.headers["cache-control"] == "no-store"
        body = refused.json()
        assert "data" not in body
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert "POST" in body["errors"][0]["message"]
    assert post.status_code == 200 and post.json()["data"]["plans"]
    # Outside production GET still runs queries (GraphiQL uses it).
    async with http_client(settings) as client:
        development = await client.get(
            "/graphql", params={"query": "{ plans { code } }"}, headers={"Accept": "application/json"}
        )
    assert development.status_code == 200 and development.json()["data"]["plans"]


# ------------------------------------------------------------------ item 12: request ids


async def test_item12_audit_request_id_is_the_servers(api, client):
    chosen = "client-chosen-" + uuid.uuid4().hex[:8]
    response = await client.post(
        "/graphql",
        json={
            "query": """mutation($input: SignUpInput!) { signUp(input: $input) { member { id } } }""",
            "variables": {
                "input": {
                    "practiceName": "Calm Minds",
                    "name": "Olive Owner",
                    "email": "owner@example.com",
                    "password": "correct horse battery",
                    "planCode": "erx-lite",
                }
            },
        },
        headers={"X-Request-Id": chosen},
    )
    assert response.status_code == 200 and not response.json().get("errors"), response.text
    answered = response.headers["x-request-id"]
    assert answered != chosen and re.fullmatch(r"[0-9a-f]{32}", answered)
    [event] = await AuditEvent.filter(action="practice.signed_up")
    assert event.request_id == answered
    assert not await AuditEvent.filter(request_id=chosen).exists()
    # Two requests with the same chosen id get two ids of their own.
    again = await client.get("/healthz", headers={"X-Request-Id": chosen})
    assert again.headers["x-request-id"] not in (chosen, answered)


async def test_item12_internal_errors_are_logged_with_the_servers_id(api, client, monkeypatch, capsys):
    owner = await sign_up(api)
    chosen = "client-chosen-" + uuid.uuid4().hex[:8]

    def explode(ctx):
        raise RuntimeError("boom")

    from resolvers import practices

    monkeypatch.setattr(practices, "current", explode)
    configure_logging("INFO")
    try:
        response = await client.post(
            "/graphql",
            json={"query": "{ practice { id } }"},
            headers={"Authorization": f"Bearer {owner.token}", "X-Request-Id": chosen},
        )
    finally:
        logging.getLogger().handlers[:] = []
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL"
    answered = response.headers["x-request-id"]
    assert answered != chosen
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [record] = [r for r in records if r["logger"] == schema_errors.log.name]
    assert answered in record["message"] and chosen not in record["message"]
    assert record["request_id"] == answered
    # The client's value stays in the log line as a field of its own, for correlation with the client's logs.
    assert record["client_request_id"] == chosen
