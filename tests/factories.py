"""Building blocks for tests that need more than the one owner ``signUp`` makes.

Members are inserted as rows (the invitation flow belongs to another area) and then log in through the API,
so every test still talks to the service over HTTP.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth.passwords import hash_password
from auth.tokens import hash_secret, new_api_token
from models import ApiToken, Member, Practice
from models.enums import MemberStatus, Permission, Role, TokenScope
from resolvers import ids
from tests.conftest import PASSWORD, Api

DEFAULT_PLAN = {Role.OWNER: "erx-lite", Role.CLINICIAN: "therapist-essential", Role.ADMINISTRATOR: None}
ROLE_DEFAULT = "role-default"  # plan_code sentinel: the role's usual plan


@dataclass
class Account:
    """A member who is logged in: their global ID, tokens, practice slug and row."""

    id: str
    email: str
    slug: str
    token: str
    refresh_token: str
    row: Member

    async def reload(self) -> Member:
        return await Member.get(id=self.row.id)


async def sign_up(
    api: Api, practice: str = "Calm Minds", email: str = "owner@example.com", plan: str = "erx-lite"
) -> Account:
    """A new solo practice and its owner, through ``signUp``."""
    payload = await api.sign_up(practice=practice, email=email, plan=plan)
    slug = (await api.ok("{ practice { slug } }", token=payload["accessToken"]))["practice"]["slug"]
    row = await Member.get(id=ids.parse(payload["member"]["id"])[1])
    return Account(payload["member"]["id"], email, slug, payload["accessToken"], payload["refreshToken"], row)


async def insert_member(
    slug: str,
    email: str,
    *,
    role: Role = Role.CLINICIAN,
    name: str | None = None,
    permissions: tuple[Permission, ...] = (),
    plan_code: str | None = ROLE_DEFAULT,
    password: str = PASSWORD,
    created_at: datetime | None = None,
) -> Member:
    """Insert an active member of the practice ``slug`` with an argon2 password hash."""
    practice = await Practice.get(slug=slug)
    return await Member.create(
        id=uuid.uuid4(),
        practice=practice,
        name=name or email.split("@")[0].title(),
        email=email.strip().lower(),
        password_hash=hash_password(password),
        role=role,
        status=MemberStatus.ACTIVE,
        permissions=sorted(p.value for p in permissions),
        plan_code=DEFAULT_PLAN[role] if plan_code == ROLE_DEFAULT else plan_code,
        created_at=created_at or datetime.now(UTC),
    )


async def add_member(api: Api, slug: str, email: str, **fields) -> Account:
    """Insert a member (see ``insert_member``) and log them in through ``logIn``."""
    row = await insert_member(slug, email, **fields)
    body = await api.log_in(slug, email, fields.get("password", PASSWORD))
    assert not body.get("errors"), body["errors"]
    signed = body["data"]["logIn"]
    return Account(ids.encode("Member", row.id), email, slug, signed["accessToken"], signed["refreshToken"], row)


async def insert_api_token(
    creator: Member,
    scopes: tuple[TokenScope, ...],
    *,
    expires_in: timedelta = timedelta(days=30),
    revoked: bool = False,
) -> str:
    """Insert a partner API token of ``creator`` (stored as a hash) and return its secret."""
    secret = new_api_token()
    now = datetime.now(UTC)
    await ApiToken.create(
        id=uuid.uuid4(),
        practice_id=creator.practice_id,
        created_by=creator,
        name="partner",
        token_hash=hash_secret(secret),
        scopes=[s.value for s in scopes],
        created_at=now,
        expires_at=now + expires_in,
        revoked_at=now if revoked else None,
    )
    return secret


@contextlib.contextmanager
def sql_statements(caplog) -> Iterator[list[str]]:
    """Collect the SQL statements run inside the block (Tortoise logs each one at DEBUG)."""
    statements: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        start = len(caplog.records)
        yield statements
        statements += [
            r.getMessage()
            for r in caplog.records[start:]
            if r.name == "tortoise.db_client" and r.getMessage().lstrip().split(" ", 1)[0].upper() in SQL_VERBS
        ]


SQL_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}
