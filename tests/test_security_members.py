"""Security issue 12, items 2-4 (members and invitations), and reactivateMember (contract v3) that item 3 relies on.

Each refusal is checked to change nothing: member rows, chart assignments, invitations, outbox mail, sessions,
subscription charges and the audit log (but for the ``auth.denied`` event a FORBIDDEN answer records).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from auth.tokens import hash_secret, new_secret
from models import AuditEvent, ChartAssignment, Invitation, Member, OutboxMessage, Session, SubscriptionCharge
from models.enums import MemberStatus, Permission, Role
from resolvers import ids
from resolvers.subscriptions import run_billing
from tests.conftest import PASSWORD, postgres_only
from tests.factories_charts import Actor, add_member, add_note, create_chart, owner
from tests.factories_subscriptions import (
    ACCEPT,
    OWNER_EMAIL,
    SLUG,
    TRIAL_END,
    frozen_clock,
    group_practice,
    invite,
    join,
    log_in,
    quote,
)

DEACTIVATE = "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id status } } }"
REACTIVATE = """mutation($i: ReactivateMemberInput!) { reactivateMember(input: $i) {
  member { id name role status email permissions plan { code } traineeStatus trainingProofValidUntil }
  charge { id kind amount { amount } member { id } } } }"""
RESEND = "mutation($i: InvitationInput!) { resendInvitation(input: $i) { token invitation { id status expiresAt } } }"
NOTES = "query($id: ID!) { node(id: $id) { ... on Chart { notes { edges { node { body } } } } } }"


@pytest.fixture
def clock():
    return frozen_clock()


async def state() -> dict:
    """Everything a refused members/invitations mutation could have touched."""
    return {
        "members": await Member.all()
        .order_by("id")
        .values(
            "id",
            "name",
            "status",
            "role",
            "permissions",
            "plan_code",
            "trainee_status",
            "training_proof_valid_until",
            "password_hash",
            "deactivated_at",
        ),
        "assignments": sorted(await ChartAssignment.all().values_list("chart_id", "clinician_id")),
        "invitations": await Invitation.all()
        .order_by("id")
        .values("id", "status", "token_hash", "expires_at", "member_id"),
        "outbox": await OutboxMessage.all().count(),
        "sessions": await Session.all().order_by("id").values("id", "revoked_at"),
        "charges": await SubscriptionCharge.all().count(),
        "audit": await AuditEvent.exclude(action="auth.denied")
        .order_by("created_at", "sequence")
        .values_list("id", flat=True),
    }


async def denials() -> int:
    return await AuditEvent.filter(action="auth.denied").count()


async def deactivate(api, token: str, member_id: str, successor: str | None = None) -> tuple[str, dict]:
    body = await api.post(DEACTIVATE, {"i": {"memberId": member_id, "reassignChartsTo": successor}}, token)
    code = body["errors"][0]["extensions"]["code"] if body.get("errors") else "ok"
    return code, body


def gid(member: Member) -> str:
    return ids.encode("Member", member.id)


# ====================================================================== item 2


async def clinician_with_charts(api, boss: Actor) -> tuple[Actor, list[str]]:
    """A clinician holding two charts, one of them with a clinical note."""
    leaving = await add_member(api, boss, "leaving@example.com")
    first = await create_chart(api, boss.token, "Pat First", clinicianIds=[leaving.id])
    second = await create_chart(api, boss.token, "Pat Second", clinicianIds=[leaving.id])
    await add_note(api, leaving.token, first["id"], "private clinical note")
    return leaving, [first["id"], second["id"]]


async def test_item2_reassigning_charts_needs_assign_charts(api):
    boss = await owner(api)
    leaving, charts = await clinician_with_charts(api, boss)
    # An administrator holding MANAGE_MEMBERS alone, with a clinician account of his own in the practice.
    admin = await add_member(
        api, boss, "adam@example.com", role=Role.ADMINISTRATOR, permissions=[Permission.MANAGE_MEMBERS]
    )
    sock_puppet = await add_member(api, boss, "adam.clinician@example.com")
    # A clinician holding MANAGE_MEMBERS alone, moving the charts to a third colleague.
    manager = await add_member(api, boss, "cleo@example.com", permissions=[Permission.MANAGE_MEMBERS])
    colleague = await add_member(api, boss, "colleague@example.com")

    before, denied = await state(), await denials()
    for caller, successor in ((admin, sock_puppet), (manager, colleague)):
        code, body = await deactivate(api, caller.token, leaving.id, successor.id)
        assert code == "FORBIDDEN", body
        assert "ASSIGN_CHARTS" in body["errors"][0]["message"]
    assert await state() == before
    assert await denials() == denied + 2
    assert (await Member.get(id=leaving.member.id)).status == MemberStatus.ACTIVE
    assert await ChartAssignment.filter(clinician_id=leaving.member.id).count() == 2
    assert (await api.ok(NOTES, {"id": charts[0]}, sock_puppet.token))["node"] is None

    # Deactivating without moving charts still needs MANAGE_MEMBERS alone.
    assert (await deactivate(api, admin.token, leaving.id))[0] == "ok"
    assert await ChartAssignment.filter(clinician_id=sock_puppet.member.id).count() == 0


async def test_item2_the_caller_is_no_successor_without_assign_charts(api):
    boss = await owner(api)
    leaving, charts = await clinician_with_charts(api, boss)
    manager = await add_member(api, boss, "cleo@example.com", permissions=[Permission.MANAGE_MEMBERS])

    before = await state()
    code, body = await deactivate(api, manager.token, leaving.id, manager.id)
    assert code == "FORBIDDEN", body
    assert await state() == before
    assert await ChartAssignment.filter(clinician_id=manager.member.id).count() == 0
    assert (await api.ok(NOTES, {"id": charts[0]}, manager.token))["node"] is None


async def test_item2_each_moved_chart_is_audited(api):
    boss = await owner(api)
    leaving, charts = await clinician_with_charts(api, boss)
    successor = await add_member(api, boss, "successor@example.com")
    # The successor already holds the second chart: it stays theirs, and only the leaving member comes off it.
    await api.ok(
        "mutation($i: ChartAssignmentInput!) { assignChart(input: $i) { chart { id } } }",
        {"i": {"chartId": charts[1], "clinicianId": successor.id}},
        boss.token,
    )
    # A clinician holding both permissions may name themself as the successor.
    lead = await add_member(
        api, boss, "lead@example.com", permissions=[Permission.MANAGE_MEMBERS, Permission.ASSIGN_CHARTS]
    )
    second_leaving = await add_member(api, boss, "second@example.com")
    third = await create_chart(api, boss.token, "Pat Third", clinicianIds=[second_leaving.id])

    assert (await deactivate(api, boss.token, leaving.id, successor.id))[0] == "ok"
    assert (await deactivate(api, lead.token, second_leaving.id, lead.id))[0] == "ok"

    events = await AuditEvent.filter(action__in=["chart.assigned", "chart.unassigned"]).values(
        "action", "target_id", "details", "actor_id"
    )
    moves = [e for e in events if (e["details"] or {}).get("via") == "deactivateMember"]
    assert sorted((e["action"], e["target_id"], e["details"]["clinician"], e["actor_id"]) for e in moves) == sorted(
        [
            ("chart.unassigned", charts[0], leaving.id, boss.member.id),
            ("chart.assigned", charts[0], successor.id, boss.member.id),
            ("chart.unassigned", charts[1], leaving.id, boss.member.id),  # the successor already held it
            ("chart.unassigned", third["id"], second_leaving.id, lead.member.id),
            ("chart.assigned", third["id"], lead.id, lead.member.id),
        ]
    )
    assert (await api.ok(NOTES, {"id": charts[0]}, successor.token))["node"]["notes"]["edges"] == [
        {"node": {"body": "private clinical note"}}
    ]


# ====================================================================== item 3


async def former_member(api, owner_token: str, email: str = "casey@example.com", **extra) -> dict:
    """A member who joined through an invitation and was deactivated: their AuthPayload from joining."""
    joined = await join(api, owner_token, email, name="Casey Former", **extra)
    await api.ok(DEACTIVATE, {"i": {"memberId": joined["member"]["id"]}}, owner_token)
    return joined


async def test_item3_inviting_a_deactivated_members_email_is_a_conflict_naming_reactivate_member(api):
    owner_token = await group_practice(api)
    manager = (await join(api, owner_token, "max@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    await former_member(api, owner_token)

    before = await state()
    for caller in (owner_token, manager):
        for email in ("casey@example.com", " CASEY@example.com "):
            code, body = await api.error(
                "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token } }",
                {"i": {"email": email, "role": "CLINICIAN", "planCode": "erx-lite"}},
                caller,
            )
            assert code == "CONFLICT", body
            assert "reactivateMember" in body["errors"][0]["message"]
    assert await state() == before


async def test_item3_accepting_never_reactivates_an_existing_account(api, clock):
    owner_token = await group_practice(api)
    former = await former_member(api, owner_token, permissions=["VIEW_ALL_CHARTS"])
    row = await Member.get(email="casey@example.com")
    # An invitation for the former member's email made before the fix (inviteMember now refuses to make one).
    token, now = new_secret(), clock.now()
    await Invitation.create(
        id=uuid.uuid4(),
        practice_id=row.practice_id,
        email=row.email,
        role=Role.CLINICIAN,
        plan_code="erx-lite",
        permissions=["MANAGE_MEMBERS"],
        token_hash=hash_secret(token),
        invited_by_id=(await Member.get(role=Role.OWNER)).id,
        created_at=now,
        expires_at=now + timedelta(days=7),
    )

    before = await state()
    code, body = await api.error(
        ACCEPT, {"i": {"token": token, "name": "Mallory", "password": "mallory's own password"}}
    )
    assert code == "CONFLICT", body
    assert "reactivateMember" in body["errors"][0]["message"]
    assert body["data"]["acceptInvitation"] is None
    assert await state() == before
    again = await Member.get(id=row.id)
    assert (again.status, again.password_hash, again.name) == (
        MemberStatus.DEACTIVATED,
        row.password_hash,
        "Casey Former",
    )
    for password in ("mallory's own password", PASSWORD):
        assert (await api.log_in(SLUG, "casey@example.com", password))["errors"][0]["extensions"][
            "code"
        ] == "UNAUTHENTICATED"
    assert former["member"]["id"] == gid(row)


async def test_item3_reactivate_member_brings_back_the_former_account_and_charges_its_seat(api, clock):
    await group_practice(api)
    clock.at = TRIAL_END
    assert await run_billing(clock.now()) == 1
    clock.advance(timedelta(days=1))
    owner_token = await log_in(api, OWNER_EMAIL)
    proof = (TRIAL_END + timedelta(days=365)).date().isoformat()
    former = await former_member(
        api,
        owner_token,
        plan="erx-pro",
        traineeStatus="PRESCRIBER_TRAINEE",
        trainingProofValidUntil=proof,
        permissions=["VIEW_BILLING", "VIEW_ALL_CHARTS"],
    )
    member_id = former["member"]["id"]
    # May (31 days) begins without them; they come back with 21 days of it left.
    clock.at = TRIAL_END.replace(month=5)
    assert await run_billing(clock.now()) == 1
    clock.advance(timedelta(days=10))
    owner_token = await log_in(api, OWNER_EMAIL)
    quoted = await quote(
        api, owner_token, "CLINICIAN", "erx-pro", trainee="PRESCRIBER_TRAINEE", proof=proof, member=member_id
    )
    assert quoted["chargeNow"]["amount"] == "43.69"  # half of 129.00 for a prescriber trainee, x 21/31

    back = (await api.ok(REACTIVATE, {"i": {"memberId": member_id}}, owner_token))["reactivateMember"]
    assert back["member"] == {
        "id": member_id,
        "name": "Casey Former",
        "role": "CLINICIAN",
        "status": "ACTIVE",
        "email": "casey@example.com",
        "permissions": ["VIEW_ALL_CHARTS", "VIEW_BILLING"],
        "plan": {"code": "erx-pro"},
        "traineeStatus": "PRESCRIBER_TRAINEE",
        "trainingProofValidUntil": proof,
    }
    assert (back["charge"]["kind"], back["charge"]["amount"]["amount"], back["charge"]["member"]["id"]) == (
        "PRORATED_SEAT",
        quoted["chargeNow"]["amount"],
        member_id,
    )
    # Their own password signs them in.
    signed = await api.log_in(SLUG, "casey@example.com")
    assert signed["data"]["logIn"]["member"]["id"] == member_id
    events = (
        await AuditEvent.filter(action__in=["member.reactivated", "subscription.seat_charged"], created_at=clock.now())
        .order_by("sequence")
        .values_list("action", "target_id", "actor_id")
    )
    owner_id = (await Member.get(role=Role.OWNER)).id
    assert events == [
        ("member.reactivated", member_id, owner_id),
        ("subscription.seat_charged", back["charge"]["id"], owner_id),
    ]
    # The next renewal counts them again.
    clock.at = TRIAL_END.replace(month=6)
    await run_billing(clock.now())
    renewal = await SubscriptionCharge.filter(kind="RENEWAL").order_by("-created_at").first()
    assert renewal.amount == Decimal("89.00") + Decimal("64.50")


async def test_item3_reactivating_in_the_period_already_paid_charges_nothing(api, clock):
    await group_practice(api)
    clock.at = TRIAL_END
    await run_billing(clock.now())
    clock.advance(timedelta(days=1))
    owner_token = await log_in(api, OWNER_EMAIL)
    former = await former_member(api, owner_token)  # joined (and was charged for) this period
    charges = await SubscriptionCharge.all().count()
    back = (await api.ok(REACTIVATE, {"i": {"memberId": former["member"]["id"]}}, owner_token))["reactivateMember"]
    assert (back["member"]["status"], back["charge"]) == ("ACTIVE", None)
    assert await SubscriptionCharge.all().count() == charges
    # The sessions they had before leaving stay ended (their access token has not expired yet).
    assert (await api.error("{ viewer { id } }", token=former["accessToken"]))[0] == "UNAUTHENTICATED"
    code, _ = await api.error(
        "mutation($t: String) { refreshSession(input: {refreshToken: $t}) { accessToken } }",
        {"t": former["refreshToken"]},
    )
    assert code == "UNAUTHENTICATED"
    assert (await api.log_in(SLUG, "casey@example.com"))["data"]["logIn"]["member"]["id"] == former["member"]["id"]


async def test_item3_reactivate_member_refusals_change_nothing(api):
    owner_token = await group_practice(api)
    plain = (await join(api, owner_token, "plain@example.com"))["accessToken"]
    manager = (await join(api, owner_token, "max@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    active = (await join(api, owner_token, "active@example.com"))["member"]["id"]
    with_grants = (await former_member(api, owner_token, permissions=["MANAGE_BILLING"]))["member"]["id"]
    without_grants = (await former_member(api, owner_token, "dee@example.com"))["member"]["id"]
    other_owner = await group_practice(api, practice="Elsewhere", email="boss@elsewhere.example")
    foreign = (await former_member(api, other_owner, "sam@elsewhere.example"))["member"]["id"]

    before = await state()
    refusals = [
        (plain, without_grants, "FORBIDDEN"),  # no MANAGE_MEMBERS
        (manager, with_grants, "FORBIDDEN"),  # grants come back only through the owner, who alone gives them
        (owner_token, active, "CONFLICT"),  # not deactivated
        (owner_token, foreign, "NOT_FOUND"),  # another practice's member
        (owner_token, ids.encode("Member", uuid.uuid4()), "NOT_FOUND"),
        (owner_token, ids.encode("Invitation", uuid.uuid4()), "NOT_FOUND"),
    ]
    for caller, member_id, expected in refusals:
        code, body = await api.error(REACTIVATE, {"i": {"memberId": member_id}}, caller)
        assert code == expected, (member_id, body)
        assert body["data"]["reactivateMember"] is None
    assert await state() == before
    # The owner of the other practice cannot reach this practice's former member either.
    code, _ = await api.error(REACTIVATE, {"i": {"memberId": without_grants}}, other_owner)
    assert code == "NOT_FOUND"
    assert await state() == before

    # A MANAGE_MEMBERS holder brings back a member without grants; the owner one with grants.
    assert (await api.ok(REACTIVATE, {"i": {"memberId": without_grants}}, manager))["reactivateMember"]["member"][
        "status"
    ] == "ACTIVE"
    back = (await api.ok(REACTIVATE, {"i": {"memberId": with_grants}}, owner_token))["reactivateMember"]["member"]
    assert (back["status"], back["permissions"]) == ("ACTIVE", ["MANAGE_BILLING"])
    code, _ = await api.error(REACTIVATE, {"i": {"memberId": with_grants}}, owner_token)
    assert code == "CONFLICT"


# ====================================================================== item 4


async def test_item4_an_invitation_with_permissions_is_resent_only_by_the_owner(api):
    owner_token = await group_practice(api)
    manager = (await join(api, owner_token, "max@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    issued = await invite(api, owner_token, "new.lead@example.com", permissions=["MANAGE_BILLING", "VIEW_ALL_CHARTS"])
    invitation_id = issued["invitation"]["id"]

    before, denied = await state(), await denials()
    code, body = await api.error(RESEND, {"i": {"invitationId": invitation_id}}, manager)
    assert code == "FORBIDDEN", body
    assert body["data"]["resendInvitation"] is None
    assert await state() == before
    assert await denials() == denied + 1

    # The invitee's token still works, with the permissions the owner gave.
    joined = await api.ok(
        "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { member { id } } }",
        {"i": {"token": issued["token"], "name": "New Lead", "password": PASSWORD}},
    )
    row = await Member.get(id=ids.decode(joined["acceptInvitation"]["member"]["id"], "Member"))
    assert sorted(row.permissions) == ["MANAGE_BILLING", "VIEW_ALL_CHARTS"]

    # The owner resends such an invitation; a MANAGE_MEMBERS holder resends one without permissions.
    granted = await invite(api, owner_token, "second.lead@example.com", permissions=["VIEW_BILLING"])
    assert (await api.ok(RESEND, {"i": {"invitationId": granted["invitation"]["id"]}}, owner_token))[
        "resendInvitation"
    ]["token"]
    plain = await invite(api, owner_token, "plain@example.com")
    assert (await api.ok(RESEND, {"i": {"invitationId": plain["invitation"]["id"]}}, manager))["resendInvitation"][
        "token"
    ]


@postgres_only()
async def test_item3_two_concurrent_reactivations_bring_the_member_back_and_charge_once(api, clock):
    await group_practice(api)
    clock.at = TRIAL_END
    await run_billing(clock.now())
    clock.advance(timedelta(days=1))
    owner_token = await log_in(api, OWNER_EMAIL)
    member_id = (await former_member(api, owner_token))["member"]["id"]
    clock.at = TRIAL_END.replace(month=5)
    await run_billing(clock.now())
    clock.advance(timedelta(days=10))
    owner_token = await log_in(api, OWNER_EMAIL)
    seat_charges = await SubscriptionCharge.filter(kind="PRORATED_SEAT").count()

    bodies = await asyncio.gather(
        *(api.post(REACTIVATE, {"i": {"memberId": member_id}}, owner_token) for _ in range(4))
    )
    assert sorted(b["errors"][0]["extensions"]["code"] if b.get("errors") else "ok" for b in bodies) == [
        "CONFLICT",
        "CONFLICT",
        "CONFLICT",
        "ok",
    ]
    assert await SubscriptionCharge.filter(kind="PRORATED_SEAT").count() == seat_charges + 1
    assert await AuditEvent.filter(action="member.reactivated").count() == 1
