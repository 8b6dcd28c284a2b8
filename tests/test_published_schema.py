"""GET /schema.graphql: the published SDL (directives included) for partners, in production too."""

from __future__ import annotations

from pathlib import Path

from models.enums import TokenScope
from tests.conftest import Api
from tests.factories import insert_api_token, sign_up
from tests.test_security_http import http_client

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


async def test_any_authenticated_caller_gets_the_committed_schema_even_in_production(settings):
    production = settings.with_(env="production", jwt_secret="p" * 40)
    async with http_client(production) as client:
        owner = await sign_up(Api(client))
        token = await insert_api_token(owner.row, (TokenScope.READ_MEMBERS,))
        for bearer in (owner.token, token):
            response = await client.get("/schema.graphql", headers={"Authorization": f"Bearer {bearer}"})
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/graphql")
            assert response.text == SCHEMA_FILE.read_text()
            assert "@requiresPermission" in response.text
        # Introspection stays off there.
        introspection = await client.post(
            "/graphql",
            json={"query": "{ __schema { types { name } } }"},
            headers={"Authorization": f"Bearer {owner.token}"},
        )
        assert introspection.json().get("errors")


async def test_the_schema_needs_a_caller(api, client):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = await client.get("/schema.graphql", headers=headers)
        assert response.status_code == 401
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "type Query" not in response.text
