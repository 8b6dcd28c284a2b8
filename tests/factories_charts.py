"""Test data that the API cannot make yet, or that would take many requests: members inserted straight into a
practice (then logged in through the API), partner API tokens, and charts created through the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from auth import passwords
from auth.tokens import hash_secret, new_api_token
from models import ApiToken, Member, Practice
from models.enums import MemberStatus, Permission, Role, TokenScope
from resolvers import ids
from tests.conftest import PASSWORD, Api


@dataclass
class Actor:
    """A member and, when they could log in, their access token."""

    member: Member
    token: str | None

    @property
    def id(self) -> str:
        return ids.encode("Member", self.member.id)


async def owner(
    api: Api, practice: str = "Calm Minds", email: str = "owner@example.com", *, group: bool = True
) -> Actor:
    """Sign up a practice (a group practice unless ``group=False``) and return its owner."""
    signed = await api.sign_up(practice=practice, email=email)
    if group:
        await api.ok("mutation { activateGroupPractice { practice { id } } }", token=signed["accessToken"])
    member = await Member.get(id=ids.parse(signed["member"]["id"])[1])
    return Actor(member, signed["accessToken"])


async def add_member(
    api: Api,
    practice_of: Actor,
    email: str,
    *,
    role: Role = Role.CLINICIAN,
    permissions: Iterable[Permission] = (),
    name: str | None = None,
    status: MemberStatus = MemberStatus.ACTIVE,
    log_in: bool = True,
) -> Actor:
    """Insert a member into ``practice_of``'s practice and log them in through the API (if active and ``log_in``)."""
    member = await Member.create(
        id=uuid.uuid4(),
        practice_id=practice_of.member.practice_id,
        name=name or email.split("@")[0].replace(".", " ").title(),
        email=email.lower(),
        password_hash=passwords.hash_password(PASSWORD),
        role=role,
        status=status,
        permissions=sorted(Permission(p).value for p in permissions),
        plan_code=None if role == Role.ADMINISTRATOR else "erx-lite",
        created_at=datetime.now(UTC),
        deactivated_at=datetime.now(UTC) if status == MemberStatus.DEACTIVATED else None,
    )
    token = None
    if log_in and status == MemberStatus.ACTIVE:
        slug = (await Practice.get(id=member.practice_id)).slug
        body = await api.log_in(slug, email)
        token = body["data"]["logIn"]["accessToken"]
    return Actor(member, token)


async def api_token(actor: Actor, scopes: Iterable[TokenScope]) -> str:
    """A partner API token acting as ``actor``, narrowed to ``scopes``."""
    secret = new_api_token()
    now = datetime.now(UTC)
    await ApiToken.create(
        id=uuid.uuid4(),
        practice_id=actor.member.practice_id,
        created_by_id=actor.member.id,
        name="test token",
        token_hash=hash_secret(secret),
        scopes=sorted(TokenScope(s).value for s in scopes),
        created_at=now,
        expires_at=now + timedelta(days=30),
    )
    return secret


CREATE_CHART = """mutation($input: CreateChartInput!) { createChart(input: $input) {
    chart { id patientName dateOfBirth email phone status assignedClinicians { id } } } }"""

ADD_NOTE = "mutation($input: AddChartNoteInput!) { addChartNote(input: $input) { note { id body author { id } } } }"


async def create_chart(api: Api, token: str, patient_name: str = "Pat Patient", **fields) -> dict:
    """Create a chart through the API; ``fields`` are further CreateChartInput fields (camelCase)."""
    data = await api.ok(CREATE_CHART, {"input": {"patientName": patient_name, **fields}}, token)
    return data["createChart"]["chart"]


async def add_note(api: Api, token: str, chart_id: str, body: str = "Session went well.") -> dict:
    data = await api.ok(ADD_NOTE, {"input": {"chartId": chart_id, "body": body}}, token)
    return data["addChartNote"]["note"]
