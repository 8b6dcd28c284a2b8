"""Errors always carry extensions.code; unexpected ones are logged and masked; query limits; health endpoints."""

from __future__ import annotations

import logging

import orjson

from resolvers import practices
from schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from server import app as server_app
from tests.factories import sign_up


async def post(client, query: str, token: str | None = None, **headers: str):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json={"query": query}, headers=headers)


async def test_an_unexpected_exception_is_masked_as_internal_and_logged_with_the_request_id(
    api, client, monkeypatch, caplog
):
    owner = await sign_up(api)

    def explode(ctx):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(practices, "current", explode)
    with caplog.at_level(logging.ERROR, logger="groups_api.errors"):
        response = await post(client, "{ viewer { id } practice { id } }", owner.token, **{"X-Request-Id": "req-123"})
    body = response.json()
    # The id is the server's own (security issue 12, item 12), never the client's X-Request-Id.
    request_id = response.headers["x-request-id"]
    assert request_id != "req-123"
    assert body["data"] == {"viewer": {"id": owner.id}, "practice": None}
    assert body["errors"] == [
        {
            "message": "internal error",
            "locations": [{"line": 1, "column": 17}],
            "path": ["practice"],
            "extensions": {"code": "INTERNAL"},
        }
    ]
    assert "hunter2" not in response.text
    [record] = [r for r in caplog.records if r.name == "groups_api.errors"]
    assert request_id in record.getMessage() and "req-123" not in record.getMessage()
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_every_request_gets_a_request_id(client):
    response = await client.get("/healthz")
    assert 0 < len(response.headers["x-request-id"]) <= 64


async def test_every_error_carries_a_code(api):
    cases = {
        "{ viewer { id } ": "GRAPHQL_PARSE_FAILED",
        "{ noSuchField }": "GRAPHQL_VALIDATION_FAILED",
        "{ viewer { id } }": "UNAUTHENTICATED",
    }
    for query, expected in cases.items():
        code, _ = await api.error(query)
        assert code == expected, query
    code, _ = await api.error("query($id: ID!) { node(id: $id) { id } }", {"id": None})
    assert code == "BAD_USER_INPUT"


def nested(depth: int) -> str:
    """A selection ``depth`` levels deep (the limiter counts levels before field validation)."""
    return "{ " + " { ".join(["practice"] + [f"f{i}" for i in range(depth - 1)]) + " { id }" + " }" * depth


async def test_a_query_deeper_than_the_limit_is_refused_as_too_complex(api):
    body = await api.post(nested(MAX_DEPTH + 1))
    codes = [e["extensions"]["code"] for e in body["errors"]]
    assert "QUERY_TOO_COMPLEX" in codes
    assert body.get("data") is None
    body = await api.post(nested(MAX_DEPTH - 1))
    assert "QUERY_TOO_COMPLEX" not in [e["extensions"]["code"] for e in body["errors"]]


async def test_too_many_aliases_are_refused_as_too_complex(api):
    allowed = "{ " + " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES)) + " }"
    assert len(await api.ok(allowed)) == MAX_ALIASES
    code, body = await api.error("{ " + " ".join(f"a{i}: __typename" for i in range(MAX_ALIASES + 1)) + " }")
    assert code == "QUERY_TOO_COMPLEX"
    assert body.get("data") is None


async def test_a_query_over_the_token_limit_is_refused_as_too_complex(api):
    code, body = await api.error("{ " + "__typename " * MAX_TOKENS + "}")
    assert code == "QUERY_TOO_COMPLEX"
    assert body.get("data") is None


async def test_a_syntax_error_is_reported_the_same_with_a_cold_or_warm_parser_cache(api):
    for _ in range(2):
        code, body = await api.error("{ viewer { id } ")
        assert code == "GRAPHQL_PARSE_FAILED"
        assert body["errors"][0]["message"] == "Syntax Error: Expected Name, found <EOF>."


async def test_responses_are_json(client):
    response = await post(client, "{ plans { code monthlyPrice { amount } } }")
    assert response.headers["content-type"].startswith("application/json")
    assert orjson.loads(response.content)["data"]["plans"]


# ------------------------------------------------------------------ health


async def test_healthz_and_readyz_answer_200(client):
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_readyz_is_503_when_the_database_does_not_answer(client, monkeypatch, caplog):
    class Down:
        def get(self, name):
            raise ConnectionError("database is down")

    monkeypatch.setattr(server_app, "connections", Down())
    with caplog.at_level(logging.WARNING, logger="groups_api"):
        ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    assert (await client.get("/healthz")).status_code == 200


async def test_a_client_that_leaves_before_its_body_arrives_is_not_a_server_error(app, caplog):
    """wrk and impatient clients close connections mid-request: nothing runs, nothing is answered, nothing is
    logged as an error (uvicorn logged 'Exception in ASGI application' with a traceback for each)."""
    messages = iter(
        [{"type": "http.request", "body": b'{"query": "{ pr', "more_body": True}, {"type": "http.disconnect"}]
    )
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("disconnected" in r.getMessage() for r in caplog.records)
