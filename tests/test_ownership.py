"""The practice changes hands (transferOwnership) and names (updatePractice)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from models import AuditEvent, ChartAssignment, Member, Practice, SubscriptionCharge
from models.enums import MemberStatus, Permission, Role, TokenScope
from resolvers import ids
from tests.conftest import PASSWORD, postgres_only
from tests.factories_charts import Actor, add_member, api_token, owner

TRANSFER = (
    "mutation($i: TransferOwnershipInput!) { transferOwnership(input: $i) { practice { id name owner { id role } } } }"
)
UPDATE = "mutation($i: UpdatePracticeInput!) { updatePractice(input: $i) { practice { id name slug } } }"
SUBSCRIPTION = (
    "{ practice { subscription { monthlyTotal { amount } licenses { member { id } monthlyPrice { amount } } } } }"
)
UPDATE_MEMBER = "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id role } } }"
DEACTIVATE = "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id } } }"
SET_PERMISSIONS = "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id } } }"


async def members_state(practice_id) -> list[tuple]:
    """Everything a refused transfer must leave as it was: every member's role, grants, plan and status."""
    rows = await Member.filter(practice_id=practice_id).order_by("email")
    return [(m.email, m.role.value, tuple(m.permissions), m.plan_code, m.status.value) for m in rows]


def transfer(member_id: str, password: str = PASSWORD) -> dict:
    return {"i": {"memberId": member_id, "password": password}}


async def owners(practice_id) -> list[str]:
    return [m.email for m in await Member.filter(practice_id=practice_id, role=Role.OWNER)]


@pytest.fixture
async def practice(api) -> tuple[Actor, Actor]:
    """A group practice: its owner (with a chart assigned to them) and Dana, an active clinician holding a grant."""
    boss = await owner(api)
    dana = await add_member(api, boss, "dana@example.com", permissions=[Permission.VIEW_BILLING])
    create = (
        'mutation($me: ID!) { createChart(input: {patientName: "Pat Patient", clinicianIds: [$me]}) { chart { id } } }'
    )
    await api.ok(create, {"me": boss.id}, boss.token)
    return boss, dana


# ------------------------------------------------------------------ transferOwnership


async def test_the_owner_hands_the_practice_to_an_active_clinician(api, practice):
    boss, dana = practice
    await api.ok("mutation { startSubscription { charge { id } } }", token=boss.token)
    subscription_before = (await api.ok(SUBSCRIPTION, token=boss.token))["practice"]["subscription"]
    charges_before = await SubscriptionCharge.all().count()
    charts_before = sorted(str(a.chart_id) for a in await ChartAssignment.filter(clinician_id=boss.member.id))
    assert charts_before

    data = (await api.ok(TRANSFER, transfer(dana.id), boss.token))["transferOwnership"]
    assert data["practice"]["owner"] == {"id": dana.id, "role": "OWNER"}

    new_owner, former = await Member.get(id=dana.member.id), await Member.get(id=boss.member.id)
    assert (new_owner.role, new_owner.permissions, new_owner.plan_code) == (Role.OWNER, [], "erx-lite")
    assert (former.role, former.permissions, former.plan_code, former.status) == (
        Role.CLINICIAN,
        [],
        "erx-lite",
        MemberStatus.ACTIVE,
    )
    assert await owners(boss.member.practice_id) == ["dana@example.com"]
    # The former owner keeps their charts; pricing does not change and nothing is charged.
    assert sorted(str(a.chart_id) for a in await ChartAssignment.filter(clinician_id=boss.member.id)) == charts_before
    assert (await api.ok(SUBSCRIPTION, token=dana.token))["practice"]["subscription"] == subscription_before
    assert await SubscriptionCharge.all().count() == charges_before
    # Both sessions go on, each with its new role.
    code, _ = await api.error(UPDATE, {"i": {"name": "Mine"}}, boss.token)
    assert code == "FORBIDDEN"
    await api.ok(UPDATE, {"i": {"name": "Dana's Practice"}}, dana.token)
    event = await AuditEvent.get(action="practice.ownership_transferred")
    practice_id = ids.encode("Practice", boss.member.practice_id)
    assert (event.target_id, event.actor_id, event.details) == (
        practice_id,
        boss.member.id,
        {"from": boss.id, "to": dana.id},
    )
    roles = {e.target_id: e.details for e in await AuditEvent.filter(action="member.role_changed")}
    assert roles == {boss.id: {"from": "OWNER", "to": "CLINICIAN"}, dana.id: {"from": "CLINICIAN", "to": "OWNER"}}


async def test_a_wrong_password_changes_nothing_and_is_throttled_like_log_in(api, practice):
    boss, dana = practice
    before = await members_state(boss.member.practice_id)
    for _ in range(10):  # limits.ACCOUNT_GUESSES
        body = await api.post(TRANSFER, transfer(dana.id, "not the password"), boss.token)
        assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.password"}
        assert body["data"] == {"transferOwnership": None}
    code, _ = await api.error(TRANSFER, transfer(dana.id), boss.token)
    assert code == "RATE_LIMITED"
    slug = (await Practice.get(id=boss.member.practice_id)).slug
    assert (await api.log_in(slug, "owner@example.com"))["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert await members_state(boss.member.practice_id) == before
    assert not await AuditEvent.filter(action="practice.ownership_transferred").exists()


@pytest.mark.parametrize("target", ["the owner", "an administrator", "a deactivated clinician", "not an id"])
async def test_only_an_active_clinician_can_become_the_owner(api, practice, target):
    boss, _ = practice
    admin = await add_member(api, boss, "admin@example.com", role=Role.ADMINISTRATOR)
    former = await add_member(api, boss, "former@example.com", status=MemberStatus.DEACTIVATED)
    member_id = {
        "the owner": boss.id,
        "an administrator": admin.id,
        "a deactivated clinician": former.id,
        "not an id": "nonsense",
    }[target]
    before = await members_state(boss.member.practice_id)
    body = await api.post(TRANSFER, transfer(member_id), boss.token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "input.memberId"
    assert await members_state(boss.member.practice_id) == before


async def test_another_practices_member_is_not_found(api, practice):
    boss, _ = practice
    other = await owner(api, "Other Practice", "other@example.com")
    stranger = await add_member(api, other, "stranger@example.com")
    before = await members_state(boss.member.practice_id), await members_state(other.member.practice_id)
    for member_id in (stranger.id, other.id, ids.encode("Member", uuid.uuid4()), ids.encode("Chart", uuid.uuid4())):
        code, _ = await api.error(TRANSFER, transfer(member_id), boss.token)
        assert code == "NOT_FOUND"
    assert (await members_state(boss.member.practice_id), await members_state(other.member.practice_id)) == before


async def test_only_the_owners_session_may_transfer(api, practice):
    boss, dana = practice
    manager = await add_member(api, boss, "manager@example.com", permissions=list(Permission))
    partner = await api_token(boss, list(TokenScope))
    before = await members_state(boss.member.practice_id)
    for bearer, expected in (
        (manager.token, "FORBIDDEN"),
        (dana.token, "FORBIDDEN"),
        (partner, "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ):
        code, _ = await api.error(TRANSFER, transfer(dana.id), bearer)
        assert code == expected
    assert await members_state(boss.member.practice_id) == before


async def test_ownership_can_go_back(api, practice):
    boss, dana = practice
    await api.ok(TRANSFER, transfer(dana.id), boss.token)
    await api.ok(TRANSFER, transfer(boss.id), dana.token)
    assert await owners(boss.member.practice_id) == ["owner@example.com"]
    assert (await Member.get(id=dana.member.id)).role == Role.CLINICIAN


@postgres_only()
async def test_two_transfers_at_once_leave_exactly_one_owner(api, practice):
    boss, dana = practice
    eve = await add_member(api, boss, "eve@example.com")
    for _ in range(3):
        bodies = await asyncio.gather(
            api.post(TRANSFER, transfer(dana.id), boss.token), api.post(TRANSFER, transfer(eve.id), boss.token)
        )
        assert sorted(bool(b.get("errors")) for b in bodies) == [False, True], bodies
        assert [b["errors"][0]["extensions"]["code"] for b in bodies if b.get("errors")] == ["FORBIDDEN"]
        current = await owners(boss.member.practice_id)
        assert len(current) == 1 and current[0] in ("dana@example.com", "eve@example.com")
        # Back to the first owner for the next round.
        winner = dana if current == ["dana@example.com"] else eve
        await api.ok(TRANSFER, transfer(boss.id), winner.token)
        assert await owners(boss.member.practice_id) == ["owner@example.com"]
    assert await AuditEvent.filter(action="practice.ownership_transferred").count() == 6


@postgres_only()
async def test_a_member_change_racing_a_transfer_never_demotes_or_deactivates_the_new_owner(api, practice):
    boss, dana = practice
    manager = await add_member(api, boss, "manager@example.com", permissions=[Permission.MANAGE_MEMBERS])
    changes = [
        (UPDATE_MEMBER, {"i": {"memberId": dana.id, "role": "ADMINISTRATOR"}}),
        (DEACTIVATE, {"i": {"memberId": dana.id}}),
        (SET_PERMISSIONS, {"i": {"memberId": dana.id, "permissions": ["VIEW_BILLING"]}}),
    ]
    for document, variables in changes:
        results = await asyncio.gather(
            api.post(TRANSFER, transfer(dana.id), boss.token),
            api.post(document, variables, manager.token if document != SET_PERMISSIONS else boss.token),
        )
        current = await Member.filter(practice_id=boss.member.practice_id, role=Role.OWNER)
        assert len(current) == 1, results
        assert current[0].status == MemberStatus.ACTIVE and current[0].permissions == [], results
        if current[0].id == dana.member.id and results[1].get("errors"):
            # The transfer went first: the change, which read Dana as a clinician, was refused.
            assert results[1]["errors"][0]["extensions"]["code"] == "FORBIDDEN", results
        elif current[0].id == dana.member.id:
            # The change went first and the transfer after it: only new grants leave her a clinician to hand it to
            # (and the transfer cleared them, as asserted above).
            assert document == SET_PERMISSIONS, results
        # The same start for the next race: the owner owns it, Dana is an active clinician.
        await Member.filter(id=boss.member.id).update(role=Role.OWNER, permissions=[])
        await Member.filter(id=dana.member.id).update(
            role=Role.CLINICIAN, status=MemberStatus.ACTIVE, deactivated_at=None, plan_code="erx-lite", permissions=[]
        )


# ------------------------------------------------------------------ updatePractice


async def test_the_owner_renames_the_practice_and_the_slug_stays(api, practice):
    boss, _ = practice
    data = (await api.ok(UPDATE, {"i": {"name": "  Quiet Minds  "}}, boss.token))["updatePractice"]["practice"]
    assert (data["name"], data["slug"]) == ("Quiet Minds", "calm-minds")
    assert (await Practice.get(id=boss.member.practice_id)).name == "Quiet Minds"
    assert not (await api.log_in("calm-minds", "owner@example.com")).get("errors")
    event = await AuditEvent.get(action="practice.renamed")
    assert (event.target_id, event.details) == (ids.encode("Practice", boss.member.practice_id), None)


@pytest.mark.parametrize(("name", "reason"), [("   ", "required"), ("x" * 201, "longer than 200")])
async def test_a_bad_name_is_refused_and_changes_nothing(api, practice, name, reason):
    boss, _ = practice
    body = await api.post(UPDATE, {"i": {"name": name}}, boss.token)
    assert body["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.name"}
    assert reason in body["errors"][0]["message"]
    assert (await Practice.get(id=boss.member.practice_id)).name == "Calm Minds"
    assert not await AuditEvent.filter(action="practice.renamed").exists()


async def test_only_the_owners_session_may_rename_the_practice(api, practice):
    boss, dana = practice
    manager = await add_member(api, boss, "manager@example.com", permissions=list(Permission))
    partner = await api_token(boss, list(TokenScope))
    for bearer, expected in (
        (manager.token, "FORBIDDEN"),
        (dana.token, "FORBIDDEN"),
        (partner, "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ):
        code, _ = await api.error(UPDATE, {"i": {"name": "Taken Over"}}, bearer)
        assert code == expected
    assert (await Practice.get(id=boss.member.practice_id)).name == "Calm Minds"
