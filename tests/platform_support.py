"""Helpers shared by the token, audit and limits tests: members made directly in the database (invitations are
another area's), and partner tokens made through the API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from auth import passwords
from models import Member, Practice
from models.enums import Permission, Role
from tests.conftest import PASSWORD

CREATE_TOKEN = """mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) {
    token apiToken { id name scopes createdAt expiresAt lastUsedAt revokedAt createdBy { id } } } }"""
REVOKE_TOKEN = "mutation($i: ApiTokenInput!) { revokeApiToken(input: $i) { apiToken { id revokedAt } } }"


async def add_member(
    api,
    slug: str = "calm-minds",
    *,
    email: str,
    role: Role = Role.CLINICIAN,
    permissions: tuple[Permission, ...] = (),
    name: str = "Casey Clinician",
) -> str:
    """Create an active member of the practice ``slug`` and log them in; returns their access token."""
    practice = await Practice.get(slug=slug)
    await Member.create(
        id=uuid.uuid4(),
        practice=practice,
        name=name,
        email=email,
        password_hash=passwords.hash_password(PASSWORD),
        role=role,
        permissions=[p.value for p in permissions],
        plan_code=None if role == Role.ADMINISTRATOR else "erx-lite",
        created_at=datetime.now(UTC),
    )
    body = await api.log_in(slug, email)
    assert not body.get("errors"), body
    return body["data"]["logIn"]["accessToken"]


async def create_token(api, session: str, scopes: list[str], *, name: str = "Partner", expires_at: str | None = None) -> dict:
    """createApiToken as ``session``; returns the payload ({token, apiToken})."""
    data = await api.ok(CREATE_TOKEN, {"i": {"name": name, "scopes": scopes, "expiresAt": expires_at}}, session)
    return data["createApiToken"]
