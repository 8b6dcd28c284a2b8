"""Members: roles, permissions, deactivation, privacy of member fields, viewerAccess, isolation, the member list."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from models import Member
from models.enums import MemberStatus, Permission, Role, TraineeStatus
from resolvers import ids
from tests.factories import Account, add_member, insert_member, sign_up

UPDATE = "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id role plan { code } } } }"
SET_PERMISSIONS = (
    "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id "
    "permissions effectivePermissions } } }"
)
DEACTIVATE = "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id status } } }"
ALL_PERMISSIONS = [p.value for p in Permission]

MEMBER_FIELDS = (
    "id name role status email permissions effectivePermissions plan { code } traineeStatus trainingProofValidUntil"
)
PRIVATE = ("email", "permissions", "effectivePermissions")
MONEY = ("plan", "traineeStatus", "trainingProofValidUntil")


async def snapshot(member_id: uuid.UUID) -> tuple:
    row = await Member.get(id=member_id)
    return row.role, sorted(row.permissions), row.status, row.plan_code


@pytest.fixture
async def owner(api) -> Account:
    return await sign_up(api)


@pytest.fixture
async def clinician(api, owner) -> Account:
    return await add_member(api, owner.slug, "cleo@example.com", name="Cleo Clinician")


@pytest.fixture
async def manager(api, owner) -> Account:
    """An administrator holding MANAGE_MEMBERS."""
    return await add_member(
        api, owner.slug, "max@example.com", role=Role.ADMINISTRATOR, permissions=(Permission.MANAGE_MEMBERS,)
    )


# ------------------------------------------------------------------ updateMember: roles


async def test_a_manage_members_holder_changes_a_role(api, clinician, manager):
    data = await api.ok(UPDATE, {"i": {"memberId": clinician.id, "role": "ADMINISTRATOR"}}, token=manager.token)
    assert data["updateMember"]["member"] == {"id": clinician.id, "role": "ADMINISTRATOR", "plan": None}
    row = await clinician.reload()
    assert (row.role, row.plan_code) == (Role.ADMINISTRATOR, None)


@pytest.mark.parametrize("permissions", [(), (Permission.MANAGE_SUBSCRIPTION, Permission.VIEW_ALL_CHARTS)])
async def test_changing_roles_needs_manage_members(api, owner, clinician, permissions):
    caller = await add_member(api, owner.slug, "ada@example.com", role=Role.ADMINISTRATOR, permissions=permissions)
    before = await snapshot(clinician.row.id)
    code, body = await api.error(UPDATE, {"i": {"memberId": clinician.id, "role": "ADMINISTRATOR"}}, token=caller.token)
    assert code == "FORBIDDEN"
    assert body["data"] == {"updateMember": None}
    assert await snapshot(clinician.row.id) == before


async def test_the_owner_role_cannot_be_given(api, owner, clinician):
    code, body = await api.error(UPDATE, {"i": {"memberId": clinician.id, "role": "OWNER"}}, token=owner.token)
    assert code == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "input.role"
    assert (await clinician.reload()).role == Role.CLINICIAN
    assert await Member.filter(practice_id=owner.row.practice_id, role=Role.OWNER).count() == 1


@pytest.mark.parametrize("role", ["CLINICIAN", "ADMINISTRATOR"])
async def test_the_owner_role_cannot_be_taken(api, owner, manager, role):
    code, _ = await api.error(
        UPDATE, {"i": {"memberId": owner.id, "role": role, "planCode": None}}, token=manager.token
    )
    assert code == "FORBIDDEN"
    assert (await owner.reload()).role == Role.OWNER


async def test_nobody_changes_their_own_role(api, owner, manager):
    code, _ = await api.error(
        UPDATE, {"i": {"memberId": manager.id, "role": "CLINICIAN", "planCode": "therapist-plus"}}, token=manager.token
    )
    assert code == "FORBIDDEN"
    assert (await manager.reload()).role == Role.ADMINISTRATOR
    code, _ = await api.error(UPDATE, {"i": {"memberId": owner.id, "role": "ADMINISTRATOR"}}, token=owner.token)
    assert code == "FORBIDDEN"
    assert (await owner.reload()).role == Role.OWNER


async def test_an_administrator_becomes_a_clinician_only_with_a_plan(api, owner):
    admin = await add_member(api, owner.slug, "ada@example.com", role=Role.ADMINISTRATOR)
    code, body = await api.error(UPDATE, {"i": {"memberId": admin.id, "role": "CLINICIAN"}}, token=owner.token)
    assert code == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "input.planCode"
    assert (await admin.reload()).role == Role.ADMINISTRATOR

    code, body = await api.error(
        UPDATE, {"i": {"memberId": admin.id, "role": "CLINICIAN", "planCode": "nope"}}, token=owner.token
    )
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.planCode")
    assert (await admin.reload()).role == Role.ADMINISTRATOR

    data = await api.ok(
        UPDATE, {"i": {"memberId": admin.id, "role": "CLINICIAN", "planCode": "therapist-plus"}}, token=owner.token
    )
    assert data["updateMember"]["member"] == {"id": admin.id, "role": "CLINICIAN", "plan": {"code": "therapist-plus"}}


async def test_an_administrator_has_no_plan(api, owner, clinician):
    code, body = await api.error(
        UPDATE, {"i": {"memberId": clinician.id, "role": "ADMINISTRATOR", "planCode": "erx-lite"}}, token=owner.token
    )
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.planCode")
    row = await clinician.reload()
    assert (row.role, row.plan_code) == (Role.CLINICIAN, "therapist-essential")


async def test_a_deactivated_member_cannot_be_changed(api, owner, clinician):
    await api.ok(DEACTIVATE, {"i": {"memberId": clinician.id}}, token=owner.token)
    code, _ = await api.error(UPDATE, {"i": {"memberId": clinician.id, "role": "ADMINISTRATOR"}}, token=owner.token)
    assert code == "CONFLICT"
    assert (await clinician.reload()).role == Role.CLINICIAN


async def test_a_role_change_takes_effect_on_the_next_request(api, owner, clinician):
    assert (await api.ok("{ viewer { role } }", token=clinician.token))["viewer"]["role"] == "CLINICIAN"
    await api.ok(UPDATE, {"i": {"memberId": clinician.id, "role": "ADMINISTRATOR"}}, token=owner.token)
    assert (await api.ok("{ viewer { role } }", token=clinician.token))["viewer"]["role"] == "ADMINISTRATOR"


async def test_a_withdrawn_permission_takes_effect_on_the_next_request(api, owner, clinician, manager):
    other = await add_member(api, owner.slug, "otto@example.com")
    await api.ok(UPDATE, {"i": {"memberId": other.id, "role": "ADMINISTRATOR"}}, token=manager.token)
    await api.ok(SET_PERMISSIONS, {"i": {"memberId": manager.id, "permissions": []}}, token=owner.token)
    code, _ = await api.error(UPDATE, {"i": {"memberId": clinician.id, "role": "ADMINISTRATOR"}}, token=manager.token)
    assert code == "FORBIDDEN"
    assert (await clinician.reload()).role == Role.CLINICIAN


# ------------------------------------------------------------------ setMemberPermissions


async def test_the_owner_grants_exactly_the_given_permissions(api, owner, clinician):
    granted = {"memberId": clinician.id, "permissions": ["VIEW_BILLING", "ASSIGN_CHARTS", "VIEW_BILLING"]}
    data = await api.ok(SET_PERMISSIONS, {"i": granted}, token=owner.token)
    member = data["setMemberPermissions"]["member"]
    assert member["permissions"] == member["effectivePermissions"] == ["ASSIGN_CHARTS", "VIEW_BILLING"]

    data = await api.ok(
        SET_PERMISSIONS, {"i": {"memberId": clinician.id, "permissions": ["VIEW_AUDIT_LOG"]}}, token=owner.token
    )
    assert data["setMemberPermissions"]["member"]["permissions"] == ["VIEW_AUDIT_LOG"]
    assert (await clinician.reload()).permissions == ["VIEW_AUDIT_LOG"]


async def test_only_the_owner_grants_permissions(api, clinician, manager):
    code, _ = await api.error(
        SET_PERMISSIONS, {"i": {"memberId": clinician.id, "permissions": ["VIEW_BILLING"]}}, token=manager.token
    )
    assert code == "FORBIDDEN"
    assert (await clinician.reload()).permissions == []


async def test_nobody_changes_their_own_permissions(api, owner, manager):
    code, _ = await api.error(SET_PERMISSIONS, {"i": {"memberId": owner.id, "permissions": []}}, token=owner.token)
    assert code == "FORBIDDEN"
    code, _ = await api.error(
        SET_PERMISSIONS, {"i": {"memberId": manager.id, "permissions": ALL_PERMISSIONS}}, token=manager.token
    )
    assert code == "FORBIDDEN"
    assert (await manager.reload()).permissions == ["MANAGE_MEMBERS"]
    assert (await api.ok("{ viewerAccess { effectivePermissions } }", token=owner.token))["viewerAccess"][
        "effectivePermissions"
    ] == ALL_PERMISSIONS


# ------------------------------------------------------------------ deactivateMember


async def test_deactivation_ends_every_session_of_the_member_at_once(api, owner, clinician):
    second = (await api.log_in(owner.slug, clinician.email))["data"]["logIn"]
    data = await api.ok(DEACTIVATE, {"i": {"memberId": clinician.id}}, token=owner.token)
    assert data["deactivateMember"]["member"] == {"id": clinician.id, "status": "DEACTIVATED"}
    for token in (clinician.token, second["accessToken"]):
        code, _ = await api.error("{ viewer { id } }", token=token)
        assert code == "UNAUTHENTICATED"
    code, _ = await api.error(
        "mutation($t: String) { refreshSession(input: {refreshToken: $t}) { accessToken } }",
        {"t": clinician.refresh_token},
    )
    assert code == "UNAUTHENTICATED"


async def test_a_deactivated_members_token_is_refused_even_if_its_session_survives(api, owner, clinician):
    """The member is loaded on every request: their status counts, not only their sessions."""
    await Member.filter(id=clinician.row.id).update(status=MemberStatus.DEACTIVATED)
    code, _ = await api.error("{ viewer { id } }", token=clinician.token)
    assert code == "UNAUTHENTICATED"


async def test_the_owner_cannot_be_deactivated(api, owner, manager):
    code, _ = await api.error(DEACTIVATE, {"i": {"memberId": owner.id}}, token=manager.token)
    assert code == "FORBIDDEN"
    code, _ = await api.error(DEACTIVATE, {"i": {"memberId": owner.id}}, token=owner.token)
    assert code == "FORBIDDEN"
    assert (await owner.reload()).status == MemberStatus.ACTIVE
    assert (await api.ok("{ viewer { id } }", token=owner.token))["viewer"]["id"] == owner.id


async def test_nobody_deactivates_themself(api, manager):
    code, _ = await api.error(DEACTIVATE, {"i": {"memberId": manager.id}}, token=manager.token)
    assert code == "FORBIDDEN"
    assert (await manager.reload()).status == MemberStatus.ACTIVE


async def test_deactivation_needs_manage_members(api, owner, clinician):
    other = await add_member(api, owner.slug, "otto@example.com")
    code, _ = await api.error(DEACTIVATE, {"i": {"memberId": other.id}}, token=clinician.token)
    assert code == "FORBIDDEN"
    assert (await other.reload()).status == MemberStatus.ACTIVE


async def test_a_member_is_deactivated_once(api, owner, clinician):
    await api.ok(DEACTIVATE, {"i": {"memberId": clinician.id}}, token=owner.token)
    code, _ = await api.error(DEACTIVATE, {"i": {"memberId": clinician.id}}, token=owner.token)
    assert code == "CONFLICT"


async def test_deactivated_members_are_listed_only_on_request(api, owner, clinician):
    await api.ok(DEACTIVATE, {"i": {"memberId": clinician.id}}, token=owner.token)
    query = (
        "query($all: Boolean) { practice { members(includeDeactivated: $all) { totalCount edges { node { id status "
        "} } } } }"
    )
    active = (await api.ok(query, {"all": False}, token=owner.token))["practice"]["members"]
    assert [e["node"]["id"] for e in active["edges"]] == [owner.id]
    everyone = (await api.ok(query, {"all": True}, token=owner.token))["practice"]["members"]
    assert {e["node"]["id"]: e["node"]["status"] for e in everyone["edges"]} == {
        owner.id: "ACTIVE",
        clinician.id: "DEACTIVATED",
    }
    assert everyone["totalCount"] == 2


# ------------------------------------------------------------------ privacy of member fields


@pytest.fixture
async def subject(api, owner) -> Account:
    """The member whose fields the privacy tests read."""
    account = await add_member(
        api, owner.slug, "tess@example.com", name="Tess Trainee", permissions=(Permission.VIEW_BILLING,)
    )
    await Member.filter(id=account.row.id).update(
        trainee_status=TraineeStatus.NON_PRESCRIBER_TRAINEE, training_proof_valid_until=date(2027, 6, 30)
    )
    return account


FULL = {
    "name": "Tess Trainee",
    "role": "CLINICIAN",
    "status": "ACTIVE",
    "email": "tess@example.com",
    "permissions": ["VIEW_BILLING"],
    "effectivePermissions": ["VIEW_BILLING"],
    "plan": {"code": "therapist-essential"},
    "traineeStatus": "NON_PRESCRIBER_TRAINEE",
    "trainingProofValidUntil": "2027-06-30",
}


async def seen_by(api, viewer: Account, subject: Account) -> dict:
    """The subject as the viewer sees it in the member list and through node(); both must agree, without errors."""
    listed = await api.ok(
        f"{{ practice {{ members {{ edges {{ node {{ {MEMBER_FIELDS} }} }} }} }} }}", token=viewer.token
    )
    [member] = [e["node"] for e in listed["practice"]["members"]["edges"] if e["node"]["id"] == subject.id]
    node = await api.ok(
        f"query($id: ID!) {{ node(id: $id) {{ ... on Member {{ {MEMBER_FIELDS} }} }} }}",
        {"id": subject.id},
        token=viewer.token,
    )
    assert node["node"] == member
    del member["id"]
    return member


def hidden(*names: str) -> dict:
    return {**FULL, **{name: None for name in names}}


async def test_other_members_see_only_the_public_fields(api, owner, subject):
    colleague = await add_member(
        api, owner.slug, "colin@example.com", permissions=(Permission.VIEW_ALL_CHARTS, Permission.VIEW_BILLING)
    )
    assert await seen_by(api, colleague, subject) == hidden(*PRIVATE, *MONEY)
    admin = await add_member(api, owner.slug, "ada@example.com", role=Role.ADMINISTRATOR)
    assert await seen_by(api, admin, subject) == hidden(*PRIVATE, *MONEY)


async def test_members_see_all_their_own_fields(api, subject):
    assert await seen_by(api, subject, subject) == FULL
    viewer = await api.ok(f"{{ viewer {{ {MEMBER_FIELDS} }} }}", token=subject.token)
    assert viewer["viewer"] == {"id": subject.id, **FULL}


async def test_the_owner_and_manage_members_holders_see_everything(api, owner, subject, manager):
    assert await seen_by(api, owner, subject) == FULL
    assert await seen_by(api, manager, subject) == FULL


async def test_manage_subscription_holders_see_the_money_fields_only(api, owner, subject):
    billing_admin = await add_member(
        api, owner.slug, "sue@example.com", role=Role.ADMINISTRATOR, permissions=(Permission.MANAGE_SUBSCRIPTION,)
    )
    assert await seen_by(api, billing_admin, subject) == hidden(*PRIVATE)


async def test_the_owners_private_fields_are_hidden_from_colleagues(api, owner, clinician):
    data = await api.ok("{ practice { owner { id name role email plan { code } } } }", token=clinician.token)
    assert data["practice"]["owner"] == {
        "id": owner.id,
        "name": "Olive Owner",
        "role": "OWNER",
        "email": None,
        "plan": None,
    }


# ------------------------------------------------------------------ viewerAccess


VIEWER_ACCESS = "{ viewerAccess { member { id } effectivePermissions scopes apiToken { id } } }"


async def test_viewer_access_of_the_owner_is_everything(api, owner):
    data = await api.ok(VIEWER_ACCESS, token=owner.token)
    assert data["viewerAccess"] == {
        "member": {"id": owner.id},
        "effectivePermissions": ALL_PERMISSIONS,
        "scopes": [
            "READ_MEMBERS",
            "READ_CHARTS",
            "WRITE_CHARTS",
            "READ_CHART_NOTES",
            "WRITE_CHART_NOTES",
            "READ_BILLING",
            "WRITE_BILLING",
            "READ_AUDIT_LOG",
        ],
        "apiToken": None,
    }


async def test_viewer_access_follows_the_grants(api, owner, clinician):
    admin = await add_member(api, owner.slug, "ada@example.com", role=Role.ADMINISTRATOR)
    assert (await api.ok(VIEWER_ACCESS, token=admin.token))["viewerAccess"]["effectivePermissions"] == []
    assert (await api.ok(VIEWER_ACCESS, token=clinician.token))["viewerAccess"]["effectivePermissions"] == []
    await api.ok(
        SET_PERMISSIONS,
        {"i": {"memberId": clinician.id, "permissions": ["VIEW_BILLING", "ASSIGN_CHARTS"]}},
        token=owner.token,
    )
    access = (await api.ok(VIEWER_ACCESS, token=clinician.token))["viewerAccess"]
    assert access["effectivePermissions"] == ["ASSIGN_CHARTS", "VIEW_BILLING"]
    assert len(access["scopes"]) == 8  # a session holds every scope


async def test_viewer_access_needs_authentication(api):
    code, _ = await api.error(VIEWER_ACCESS)
    assert code == "UNAUTHENTICATED"


# ------------------------------------------------------------------ isolation between practices


@pytest.fixture
async def stranger(api) -> Account:
    """A clinician of another practice (with MANAGE_MEMBERS, so any change would be visible)."""
    other = await sign_up(api, practice="Elsewhere", email="boss@elsewhere.example")
    return await add_member(api, other.slug, "sam@elsewhere.example", permissions=(Permission.MANAGE_MEMBERS,))


async def test_another_practices_member_is_invisible(api, owner, stranger):
    data = await api.ok(
        "query($id: ID!) { node(id: $id) { id } practice { members { edges { node { id } } } } }",
        {"id": stranger.id},
        token=owner.token,
    )
    assert data == {"node": None, "practice": {"members": {"edges": [{"node": {"id": owner.id}}]}}}


@pytest.mark.parametrize(
    ("mutation", "extra"),
    [
        (UPDATE, {"role": "ADMINISTRATOR"}),
        (UPDATE, {"planCode": "therapist-plus"}),
        (SET_PERMISSIONS, {"permissions": ["VIEW_ALL_CHARTS"]}),
        (DEACTIVATE, {}),
    ],
)
async def test_mutations_on_another_practices_member_are_not_found_and_change_nothing(
    api, owner, stranger, mutation, extra
):
    before = await snapshot(stranger.row.id)
    code, body = await api.error(mutation, {"i": {"memberId": stranger.id, **extra}}, token=owner.token)
    assert code == "NOT_FOUND"
    unknown = ids.encode("Member", uuid.uuid4())
    _, body_unknown = await api.error(mutation, {"i": {"memberId": unknown, **extra}}, token=owner.token)
    assert body == body_unknown  # indistinguishable from an id that does not exist
    assert await snapshot(stranger.row.id) == before
    assert (await api.ok("{ viewer { id } }", token=stranger.token))["viewer"]["id"] == stranger.id


async def test_charts_cannot_be_handed_to_another_practices_member(api, owner, clinician, stranger):
    code, _ = await api.error(
        DEACTIVATE, {"i": {"memberId": clinician.id, "reassignChartsTo": stranger.id}}, token=owner.token
    )
    assert code == "NOT_FOUND"
    assert (await clinician.reload()).status == MemberStatus.ACTIVE


async def test_ids_of_another_type_are_not_found_and_malformed_ids_are_bad_input(api, owner, clinician):
    practice_id = (await api.ok("{ practice { id } }", token=owner.token))["practice"]["id"]
    code, _ = await api.error(DEACTIVATE, {"i": {"memberId": practice_id}}, token=owner.token)
    assert code == "NOT_FOUND"
    code, body = await api.error(DEACTIVATE, {"i": {"memberId": "12"}}, token=owner.token)
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.memberId")
    assert (await clinician.reload()).status == MemberStatus.ACTIVE


async def test_global_ids_reveal_no_row_numbers_or_raw_uuids(api, owner):
    assert str(owner.row.id) not in owner.id
    assert owner.row.id.hex not in owner.id


# ------------------------------------------------------------------ the member list


MEMBERS = """query($first: Int, $after: String, $role: Role) { practice { members(first: $first, after: $after, role:
$role) {
  totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id } } } } }"""


async def members_page(api, token: str, **variables) -> dict:
    return (await api.ok(MEMBERS, variables, token=token))["practice"]["members"]


async def test_the_member_list_pages_50_by_default_and_continues_after_the_cursor(api, owner):
    start = datetime.now(UTC)
    rows = [
        await insert_member(owner.slug, f"m{i:02}@example.com", created_at=start + timedelta(seconds=i))
        for i in range(55)
    ]
    expected = [owner.id] + [ids.encode("Member", r.id) for r in rows]

    first = await members_page(api, owner.token)
    assert len(first["edges"]) == 50
    assert first["totalCount"] == 56
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    assert first["pageInfo"]["endCursor"] == first["edges"][-1]["cursor"]

    rest = await members_page(api, owner.token, after=first["pageInfo"]["endCursor"])
    assert len(rest["edges"]) == 6
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True
    assert [e["node"]["id"] for e in first["edges"] + rest["edges"]] == expected


async def test_keyset_paging_breaks_ties_on_equal_creation_times(api, owner):
    same_time = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
    rows = [await insert_member(owner.slug, f"t{i}@example.com", created_at=same_time) for i in range(7)]
    rows.append(await insert_member(owner.slug, "later@example.com", created_at=same_time + timedelta(microseconds=1)))
    seen, after = [], None
    while True:
        page = await members_page(api, owner.token, first=2, after=after)
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen[0] == owner.id
    assert seen[-1] == ids.encode("Member", rows[-1].id)
    assert sorted(seen[1:]) == sorted(ids.encode("Member", r.id) for r in rows)
    assert len(seen) == len(set(seen)) == 9


@pytest.mark.parametrize("first", [101, -1])
async def test_first_is_at_most_100(api, owner, first):
    code, body = await api.error(MEMBERS, {"first": first}, token=owner.token)
    assert code == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == "first"


async def test_first_100_is_allowed(api, owner):
    for i in range(100):
        await insert_member(owner.slug, f"h{i:03}@example.com")
    page = await members_page(api, owner.token, first=100)
    assert (len(page["edges"]), page["totalCount"], page["pageInfo"]["hasNextPage"]) == (100, 101, True)


async def test_cursors_are_opaque_and_checked(api, owner, clinician):
    page = await members_page(api, owner.token, first=1)
    cursor = page["edges"][0]["cursor"]
    for raw in (str(owner.row.id), owner.row.id.hex, owner.id):
        assert raw not in cursor
    for bad in ("not-a-cursor", "W10", "e30"):
        code, body = await api.error(MEMBERS, {"after": bad}, token=owner.token)
        assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "after")


async def test_the_member_list_filters_by_role(api, owner, clinician, manager):
    page = await members_page(api, owner.token, role="ADMINISTRATOR")
    assert [e["node"]["id"] for e in page["edges"]] == [manager.id]
    assert page["totalCount"] == 1


async def test_node_returns_a_member_of_the_practice(api, owner, clinician):
    data = await api.ok(
        "query($id: ID!) { node(id: $id) { __typename id ... on Member { name } } }",
        {"id": clinician.id},
        token=owner.token,
    )
    assert data["node"] == {"__typename": "Member", "id": clinician.id, "name": "Cleo Clinician"}
    for unknown in (ids.encode("Member", uuid.uuid4()), ids.encode("Nothing", uuid.uuid4()), "garbage"):
        assert (await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": unknown}, token=owner.token))[
            "node"
        ] is None
