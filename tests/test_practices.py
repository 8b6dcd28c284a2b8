"""The practice, turning it into a group, the plan catalog, and node() for Practice and Plan."""

from __future__ import annotations

import uuid

import pytest

from models import Practice
from models.enums import Permission, PracticeKind, Role
from resolvers import ids
from tests.factories import add_member, sign_up

ACTIVATE = "mutation { activateGroupPractice { practice { id kind } } }"
PLANS = "{ plans { id code name category monthlyPrice { amount currency } } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id ... on Practice { slug } ... on Plan { code } } }"


async def test_the_practice_of_the_caller(api):
    owner = await sign_up(api, practice="Calm Minds")
    data = await api.ok("{ practice { id name slug kind createdAt owner { id role } } }", token=owner.token)
    practice = data["practice"]
    assert ids.parse(practice["id"]) == ("Practice", owner.row.practice_id)
    assert (practice["name"], practice["slug"], practice["kind"]) == ("Calm Minds", "calm-minds", "SOLO")
    assert practice["owner"] == {"id": owner.id, "role": "OWNER"}


async def test_the_practice_needs_authentication(api):
    code, body = await api.error("{ practice { id } }")
    assert code == "UNAUTHENTICATED"
    assert body["data"] == {"practice": None}


# ------------------------------------------------------------------ activateGroupPractice


async def test_the_owner_turns_a_solo_practice_into_a_group_and_the_trial_carries_over(api):
    owner = await sign_up(api)
    before = await Practice.get(slug=owner.slug)
    data = await api.ok(ACTIVATE, token=owner.token)
    assert data["activateGroupPractice"]["practice"] == {"id": ids.encode("Practice", before.id), "kind": "GROUP"}
    after = await Practice.get(slug=owner.slug)
    assert after.kind == PracticeKind.GROUP
    assert (after.trial_started_at, after.trial_ends_at) == (before.trial_started_at, before.trial_ends_at)
    assert (await api.ok("{ practice { kind } }", token=owner.token))["practice"]["kind"] == "GROUP"


async def test_activating_a_group_again_is_a_conflict(api):
    owner = await sign_up(api)
    await api.ok(ACTIVATE, token=owner.token)
    code, body = await api.error(ACTIVATE, token=owner.token)
    assert code == "CONFLICT"
    assert body["data"] == {"activateGroupPractice": None}
    assert (await Practice.get(slug=owner.slug)).kind == PracticeKind.GROUP


@pytest.mark.parametrize(
    ("role", "permissions"),
    [(Role.CLINICIAN, ()), (Role.ADMINISTRATOR, tuple(Permission)), (Role.CLINICIAN, tuple(Permission))],
)
async def test_only_the_owner_activates_the_group(api, role, permissions):
    owner = await sign_up(api)
    member = await add_member(api, owner.slug, "m@example.com", role=role, permissions=permissions)
    code, _ = await api.error(ACTIVATE, token=member.token)
    assert code == "FORBIDDEN"
    assert (await Practice.get(slug=owner.slug)).kind == PracticeKind.SOLO


async def test_activating_needs_authentication(api):
    await sign_up(api)
    code, _ = await api.error(ACTIVATE)
    assert code == "UNAUTHENTICATED"
    assert await Practice.filter(kind=PracticeKind.GROUP).count() == 0


async def test_activating_touches_only_the_callers_practice(api):
    owner = await sign_up(api, practice="North", email="n@example.com")
    other = await sign_up(api, practice="South", email="s@example.com")
    await api.ok(ACTIVATE, token=owner.token)
    assert (await Practice.get(slug=other.slug)).kind == PracticeKind.SOLO


# ------------------------------------------------------------------ plans


async def test_the_plan_catalog_is_public_and_contains_erx_lite_and_a_therapist_plan(api):
    plans = (await api.ok(PLANS))["plans"]
    by_code = {p["code"]: p for p in plans}
    erx = by_code["erx-lite"]
    assert (erx["name"], erx["category"], erx["monthlyPrice"]) == (
        "e-Rx lite",
        "PRESCRIBER",
        {"amount": "89.00", "currency": "USD"},
    )
    assert any(p["category"] == "THERAPIST" for p in plans)
    assert len({p["id"] for p in plans}) == len(plans)


async def test_plan_ids_are_stable(api):
    assert (await api.ok(PLANS))["plans"] == (await api.ok(PLANS))["plans"]


# ------------------------------------------------------------------ node()


async def test_node_resolves_the_callers_practice_and_plans(api):
    owner = await sign_up(api)
    practice_id = (await api.ok("{ practice { id } }", token=owner.token))["practice"]["id"]
    data = await api.ok(NODE, {"id": practice_id}, token=owner.token)
    assert data["node"] == {"__typename": "Practice", "id": practice_id, "slug": owner.slug}

    erx = next(p for p in (await api.ok(PLANS))["plans"] if p["code"] == "erx-lite")
    data = await api.ok(NODE, {"id": erx["id"]}, token=owner.token)
    assert data["node"] == {"__typename": "Plan", "id": erx["id"], "code": "erx-lite"}

    data = await api.ok(NODE, {"id": ids.encode("Plan", uuid.uuid4())}, token=owner.token)
    assert data["node"] is None


async def test_node_does_not_reach_another_practice(api):
    owner = await sign_up(api, practice="North", email="n@example.com")
    other = await sign_up(api, practice="South", email="s@example.com")
    data = await api.ok(NODE, {"id": ids.encode("Practice", other.row.practice_id)}, token=owner.token)
    assert data["node"] is None


async def test_node_needs_authentication(api):
    erx = next(p for p in (await api.ok(PLANS))["plans"] if p["code"] == "erx-lite")
    code, body = await api.error(NODE, {"id": erx["id"]})
    assert code == "UNAUTHENTICATED"
    assert body["data"] == {"node": None}
