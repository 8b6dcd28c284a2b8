"""Invitations: who may invite whom, one-time tokens, replacing, resending, revoking and accepting."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest

from models import AuditEvent, Invitation, Member, OutboxMessage
from resolvers import ids
from tests.conftest import postgres_only
from tests.factories_subscriptions import (
    ACCEPT,
    INVITE,
    OWNER_EMAIL,
    PASSWORD,
    START,
    accept,
    frozen_clock,
    group_practice,
    invite,
    iso,
    join,
    log_in,
)

LIST = """query($status: InvitationStatus) { practice { invitations(status: $status) { totalCount edges { node {
  id email status } } } } }"""
RESEND = "mutation($i: InvitationInput!) { resendInvitation(input: $i) { token invitation { id status expiresAt } } }"
REVOKE = "mutation($i: InvitationInput!) { revokeInvitation(input: $i) { invitation { id status } } }"
VIEWER = (
    "{ viewer { id name role email permissions plan { code } traineeStatus trainingProofValidUntil } practice { "
    "slug } }"
)


@pytest.fixture
def clock():
    return frozen_clock()


async def accept_error(api, token: str) -> tuple[str, dict]:
    return await api.error(ACCEPT, {"i": {"token": token, "name": "Someone", "password": PASSWORD}})


# ------------------------------------------------------------------ inviting


async def test_a_solo_practice_cannot_invite(api):
    owner = (await api.sign_up())["accessToken"]
    code, _ = await api.error(
        INVITE, {"i": {"email": "clin@example.com", "role": "CLINICIAN", "planCode": "erx-lite"}}, owner
    )
    assert code == "GROUP_PRACTICE_REQUIRED"
    assert await Invitation.all().count() == 0


async def test_an_invitation_records_the_seat_and_a_one_time_token_stored_as_a_hash(api):
    owner = await group_practice(api)
    issued = await invite(
        api,
        owner,
        " Clin@Example.com ",
        plan="erx-lite",
        traineeStatus="PRESCRIBER_TRAINEE",
        trainingProofValidUntil="2026-12-31",
        permissions=["VIEW_ALL_CHARTS", "ASSIGN_CHARTS"],
    )
    invitation = issued["invitation"]
    assert invitation | {"id": None, "invitedBy": None} == {
        "id": None,
        "email": "clin@example.com",
        "role": "CLINICIAN",
        "status": "PENDING",
        "createdAt": iso(START),
        "expiresAt": iso(START + timedelta(days=7)),
        "plan": {"code": "erx-lite"},
        "permissions": ["VIEW_ALL_CHARTS", "ASSIGN_CHARTS"],
        "traineeStatus": "PRESCRIBER_TRAINEE",
        "trainingProofValidUntil": "2026-12-31",
        "invitedBy": None,
    }
    token = issued["token"]
    assert len(token) >= 43  # 32 random bytes (256 bits), base64url
    row = await Invitation.get(email="clin@example.com")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(v) for v in (await Invitation.all().values())[0].values())
    assert token not in stored


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"role": "CLINICIAN"}, "input.planCode"),
        ({"role": "CLINICIAN", "planCode": "no-such-plan"}, "input.planCode"),
        ({"role": "ADMINISTRATOR", "planCode": "erx-lite"}, "input.planCode"),
        ({"role": "OWNER", "planCode": "erx-lite"}, "input.role"),
        ({"role": "CLINICIAN", "planCode": "erx-pro", "traineeStatus": "NON_PRESCRIBER_TRAINEE"}, "input.planCode"),
        ({"role": "CLINICIAN", "planCode": "erx-pro", "email": "not an email"}, "input.email"),
    ],
)
async def test_bad_invitations_are_refused_and_create_nothing(api, variables, field):
    owner = await group_practice(api)
    code, body = await api.error(INVITE, {"i": {"email": "clin@example.com", **variables}}, owner)
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert await Invitation.all().count() == 0
    assert await OutboxMessage.all().count() == 0


async def test_inviting_needs_manage_members(api):
    owner = await group_practice(api)
    plain = (await join(api, owner, "plain@example.com"))["accessToken"]
    code, _ = await api.error(INVITE, {"i": {"email": "x@example.com", "role": "ADMINISTRATOR"}}, plain)
    assert code == "FORBIDDEN"
    manager = (await join(api, owner, "manager@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    assert (await invite(api, manager, "x@example.com", role="ADMINISTRATOR", plan=None))["invitation"][
        "status"
    ] == "PENDING"


async def test_only_the_owner_may_grant_permissions_with_an_invitation(api):
    owner = await group_practice(api)
    manager = (await join(api, owner, "manager@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    before = await Invitation.all().count()
    code, _ = await api.error(
        INVITE, {"i": {"email": "x@example.com", "role": "ADMINISTRATOR", "permissions": ["MANAGE_MEMBERS"]}}, manager
    )
    assert code == "FORBIDDEN"
    assert await Invitation.all().count() == before


async def test_inviting_an_active_member_is_a_conflict(api):
    owner = await group_practice(api)
    await join(api, owner, "clin@example.com")
    for email in ("clin@example.com", "CLIN@example.com", OWNER_EMAIL):
        code, _ = await api.error(INVITE, {"i": {"email": email, "role": "ADMINISTRATOR"}}, owner)
        assert code == "CONFLICT"


async def test_inviting_again_replaces_the_pending_invitation(api):
    owner = await group_practice(api)
    first = await invite(api, owner, "clin@example.com", plan="therapist-plus")
    second = await invite(api, owner, "clin@example.com", plan="erx-pro")
    code, _ = await accept_error(api, first["token"])
    assert code == "BAD_USER_INPUT"
    statuses = {
        e["node"]["id"]: e["node"]["status"]
        for e in (await api.ok(LIST, token=owner))["practice"]["invitations"]["edges"]
    }
    assert statuses == {first["invitation"]["id"]: "REVOKED", second["invitation"]["id"]: "PENDING"}
    member = (await accept(api, second["token"]))["member"]
    assert member["role"] == "CLINICIAN"
    assert (await Member.get(email="clin@example.com")).plan_code == "erx-pro"


# ------------------------------------------------------------------ resending and revoking


async def test_resending_issues_a_new_token_and_expiry_and_kills_the_old_token(api, clock):
    owner = await group_practice(api)
    issued = await invite(api, owner, "clin@example.com")
    clock.advance(timedelta(days=8))  # expired by now
    owner = await log_in(api, OWNER_EMAIL)
    resent = (await api.ok(RESEND, {"i": {"invitationId": issued["invitation"]["id"]}}, owner))["resendInvitation"]
    assert resent["token"] != issued["token"]
    assert resent["invitation"] == {
        "id": issued["invitation"]["id"],
        "status": "PENDING",
        "expiresAt": iso(clock.now() + timedelta(days=7)),
    }
    code, _ = await accept_error(api, issued["token"])
    assert code == "BAD_USER_INPUT"
    assert (await accept(api, resent["token"]))["member"]["role"] == "CLINICIAN"


async def test_a_revoked_invitation_is_dead_for_good(api):
    owner = await group_practice(api)
    issued = await invite(api, owner, "clin@example.com")
    revoked = (await api.ok(REVOKE, {"i": {"invitationId": issued["invitation"]["id"]}}, owner))["revokeInvitation"]
    assert revoked["invitation"]["status"] == "REVOKED"
    code, _ = await accept_error(api, issued["token"])
    assert code == "BAD_USER_INPUT"
    for mutation in (RESEND, REVOKE):
        code, _ = await api.error(mutation, {"i": {"invitationId": issued["invitation"]["id"]}}, owner)
        assert code == "CONFLICT"


async def test_another_practice_cannot_reach_an_invitation(api):
    owner = await group_practice(api)
    issued = await invite(api, owner, "clin@example.com")
    other = await group_practice(api, practice="Other Practice", email="other@example.com")
    for mutation in (RESEND, REVOKE):
        code, _ = await api.error(mutation, {"i": {"invitationId": issued["invitation"]["id"]}}, other)
        assert code == "NOT_FOUND"
    assert (await api.ok(LIST, token=other))["practice"]["invitations"]["totalCount"] == 0
    node = "query($id: ID!) { node(id: $id) { ... on Invitation { email } } }"
    assert (await api.ok(node, {"id": issued["invitation"]["id"]}, other))["node"] is None
    assert (await api.ok(node, {"id": issued["invitation"]["id"]}, owner))["node"] == {"email": "clin@example.com"}


async def test_invitations_are_listed_for_manage_members_only(api, clock):
    owner = await group_practice(api)
    plain = (await join(api, owner, "plain@example.com"))["accessToken"]
    code, body = await api.error(LIST, token=plain)
    assert code == "FORBIDDEN" and body["data"]["practice"]["invitations"] is None
    node = "query($id: ID!) { node(id: $id) { ... on Invitation { email } } }"
    pending = await invite(api, owner, "later@example.com")
    assert (await api.ok(node, {"id": pending["invitation"]["id"]}, plain))["node"] is None
    clock.advance(timedelta(days=7))
    owner = await log_in(api, OWNER_EMAIL)
    await invite(api, owner, "fresh@example.com")
    by_status = {}
    for status in ("PENDING", "EXPIRED", "ACCEPTED", "REVOKED"):
        edges = (await api.ok(LIST, {"status": status}, owner))["practice"]["invitations"]["edges"]
        by_status[status] = sorted(e["node"]["email"] for e in edges)
    assert by_status == {
        "PENDING": ["fresh@example.com"],
        "EXPIRED": ["later@example.com"],
        "ACCEPTED": ["plain@example.com"],
        "REVOKED": [],
    }


# ------------------------------------------------------------------ accepting


async def test_accepting_creates_the_account_as_invited_and_signs_it_in(api):
    owner = await group_practice(api)
    issued = await invite(
        api,
        owner,
        "clin@example.com",
        plan="erx-lite",
        traineeStatus="PRESCRIBER_TRAINEE",
        trainingProofValidUntil="2026-12-31",
        permissions=["VIEW_ALL_CHARTS"],
    )
    signed = await accept(api, issued["token"], name="  Casey Clinician ")
    assert signed["refreshToken"]
    me = await api.ok(VIEWER, token=signed["accessToken"])
    assert me["practice"]["slug"] == "calm-minds"
    assert me["viewer"] | {"id": None} == {
        "id": None,
        "name": "Casey Clinician",
        "role": "CLINICIAN",
        "email": "clin@example.com",
        "permissions": ["VIEW_ALL_CHARTS"],
        "plan": {"code": "erx-lite"},
        "traineeStatus": "PRESCRIBER_TRAINEE",
        "trainingProofValidUntil": "2026-12-31",
    }
    assert me["viewer"]["id"] == signed["member"]["id"]
    edges = (await api.ok(LIST, {"status": "ACCEPTED"}, owner))["practice"]["invitations"]["edges"]
    assert [e["node"]["id"] for e in edges] == [issued["invitation"]["id"]]
    logged_in = await api.log_in("calm-minds", "clin@example.com")
    assert logged_in["data"]["logIn"]["member"]["id"] == signed["member"]["id"]


async def test_a_token_works_once(api):
    owner = await group_practice(api)
    issued = await invite(api, owner, "clin@example.com")
    await accept(api, issued["token"])
    code, _ = await accept_error(api, issued["token"])
    assert code == "BAD_USER_INPUT"
    assert await Member.filter(email="clin@example.com").count() == 1


async def test_expired_revoked_replaced_and_unknown_tokens_fail_alike_and_create_nothing(api, clock):
    owner = await group_practice(api)
    expired = (await invite(api, owner, "expired@example.com"))["token"]
    revoked = await invite(api, owner, "revoked@example.com")
    await api.ok(REVOKE, {"i": {"invitationId": revoked["invitation"]["id"]}}, owner)
    replaced = (await invite(api, owner, "replaced@example.com"))["token"]
    await invite(api, owner, "replaced@example.com")
    clock.advance(timedelta(days=7))  # exactly 7 days: the first invitation has expired
    owner = await log_in(api, OWNER_EMAIL)
    await invite(api, owner, "revoked@example.com")  # so a fresh invitation exists for that email too
    members_before = await Member.all().count()
    errors = []
    for token in (expired, revoked["token"], replaced, "not-a-token", ""):
        code, body = await accept_error(api, token)
        errors.append((code, body["errors"][0]["message"], body["errors"][0]["extensions"].get("field")))
    assert len(set(errors)) == 1 and errors[0][0] == "BAD_USER_INPUT" and errors[0][2] == "input.token"
    assert await Member.all().count() == members_before


async def test_bad_name_or_password_on_accept_leaves_the_invitation_usable(api):
    owner = await group_practice(api)
    token = (await invite(api, owner, "clin@example.com"))["token"]
    code, _ = await api.error(ACCEPT, {"i": {"token": token, "name": "Casey", "password": "short"}})
    assert code == "BAD_USER_INPUT"
    code, _ = await api.error(ACCEPT, {"i": {"token": token, "name": "  ", "password": PASSWORD}})
    assert code == "BAD_USER_INPUT"
    assert await Member.filter(email="clin@example.com").count() == 0
    assert (await accept(api, token))["member"]["role"] == "CLINICIAN"


async def test_a_former_member_is_not_invited_back(api):
    """An invitation never reactivates an account (security issue 12, item 3: tests/test_security_members.py)."""
    owner = await group_practice(api)
    first = (await join(api, owner, "clin@example.com", permissions=["VIEW_ALL_CHARTS"]))["member"]
    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { status } } }",
        {"i": {"memberId": first["id"]}},
        owner,
    )
    code, body = await api.error(INVITE, {"i": {"email": "clin@example.com", "role": "ADMINISTRATOR"}}, owner)
    assert code == "CONFLICT" and "reactivateMember" in body["errors"][0]["message"]
    row = await Member.get(id=ids.decode(first["id"], "Member"))
    assert (row.status, row.permissions) == ("DEACTIVATED", ["VIEW_ALL_CHARTS"])


async def test_invitation_changes_are_audited(api, clock):
    owner = await group_practice(api)
    issued = await invite(api, owner, "clin@example.com")
    await api.ok(RESEND, {"i": {"invitationId": issued["invitation"]["id"]}}, owner)
    replaced = await invite(api, owner, "clin@example.com")
    other = await invite(api, owner, "other@example.com")
    await api.ok(REVOKE, {"i": {"invitationId": other["invitation"]["id"]}}, owner)
    await accept(api, replaced["token"])
    events = (
        await AuditEvent.filter(action__startswith="invitation.")
        .order_by("sequence")
        .values_list("action", "target_id")
    )
    assert events == [
        ("invitation.created", issued["invitation"]["id"]),
        ("invitation.resent", issued["invitation"]["id"]),
        ("invitation.revoked", issued["invitation"]["id"]),
        ("invitation.created", replaced["invitation"]["id"]),
        ("invitation.created", other["invitation"]["id"]),
        ("invitation.revoked", other["invitation"]["id"]),
        ("invitation.accepted", replaced["invitation"]["id"]),
    ]
    accepted = await AuditEvent.get(action="invitation.accepted")
    assert accepted.actor_id == (await Member.get(email="clin@example.com")).id


@postgres_only()
async def test_two_concurrent_accepts_create_exactly_one_member(api):
    owner = await group_practice(api)
    token = (await invite(api, owner, "clin@example.com"))["token"]
    variables = {"i": {"token": token, "name": "Casey", "password": PASSWORD}}
    bodies = await asyncio.gather(*(api.post(ACCEPT, variables) for _ in range(5)))
    winners = [b for b in bodies if not b.get("errors")]
    losers = [b for b in bodies if b.get("errors")]
    assert len(winners) == 1
    assert {b["errors"][0]["extensions"]["code"] for b in losers} == {"BAD_USER_INPUT"}
    assert await Member.filter(email="clin@example.com").count() == 1
    assert await AuditEvent.filter(action="invitation.accepted").count() == 1
