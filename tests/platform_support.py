"""Partner tokens made through the API, for the token, audit and limits tests (members: tests/factories.py)."""

from __future__ import annotations

CREATE_TOKEN = """mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) {
    token apiToken { id name scopes createdAt expiresAt lastUsedAt revokedAt createdBy { id } } } }"""
REVOKE_TOKEN = "mutation($i: ApiTokenInput!) { revokeApiToken(input: $i) { apiToken { id revokedAt } } }"


async def create_token(
    api, session: str, scopes: list[str], *, name: str = "Partner", expires_at: str | None = None
) -> dict:
    """createApiToken as ``session``; returns the payload ({token, apiToken})."""
    data = await api.ok(CREATE_TOKEN, {"i": {"name": name, "scopes": scopes, "expiresAt": expires_at}}, session)
    return data["createApiToken"]
