"""Partner API tokens: issued once and stored as a hash, acting as their creator narrowed to their scopes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from models import ApiToken, Member
from models.enums import MemberStatus, Permission, Role
from tests.factories import add_member
from tests.platform_support import CREATE_TOKEN, REVOKE_TOKEN, create_token

ACCESS = "{ viewerAccess { scopes effectivePermissions member { id } apiToken { id name scopes } } }"
MEMBERS = "{ practice { name members { totalCount edges { node { id name } } } } }"
TOKENS = """query($all: Boolean) { practice { apiTokens(includeRevoked: $all) {
    totalCount edges { node { id name scopes lastUsedAt revokedAt createdBy { id } } } } } }"""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ------------------------------------------------------------------ issuing


async def test_token_is_shown_once_stored_as_hash_and_lasts_a_year_by_default(api, clock):
    owner = await api.sign_up()
    created = await create_token(api, owner["accessToken"], ["READ_MEMBERS", "READ_CHARTS"], name="EHR sync")
    secret = created["token"]
    assert secret.startswith("gapi_") and len(secret) >= len("gapi_") + 22  # >= 128 bits of base64url
    token = created["apiToken"]
    assert token["name"] == "EHR sync"
    assert token["scopes"] == ["READ_MEMBERS", "READ_CHARTS"]
    assert token["createdBy"]["id"] == owner["member"]["id"]
    assert token["revokedAt"] is None and token["lastUsedAt"] is None
    lifetime = parse(token["expiresAt"]) - parse(token["createdAt"])
    assert lifetime == timedelta(days=365)

    row = await ApiToken.get()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(await ApiToken.all().values())

    listed = await api.ok(TOKENS, token=owner["accessToken"])
    assert listed["practice"]["apiTokens"]["totalCount"] == 1
    assert "token" not in listed["practice"]["apiTokens"]["edges"][0]["node"]


async def test_expiry_must_be_in_the_next_year_and_bad_input_creates_nothing(api, clock):
    owner = (await api.sign_up())["accessToken"]
    now = clock.now()
    cases = [
        ({"expiresAt": iso(now - timedelta(minutes=1))}, "input.expiresAt"),
        ({"expiresAt": iso(now + timedelta(days=366))}, "input.expiresAt"),
        ({"scopes": []}, "input.scopes"),
        ({"name": "  "}, "input.name"),
    ]
    for change, field in cases:
        values = {"name": "Partner", "scopes": ["READ_MEMBERS"], **change}
        code, body = await api.error(CREATE_TOKEN, {"i": values}, owner)
        assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert await ApiToken.all().count() == 0

    chosen = now + timedelta(days=30)
    created = await create_token(api, owner, ["READ_MEMBERS"], expires_at=iso(chosen))
    assert abs(parse(created["apiToken"]["expiresAt"]) - chosen) < timedelta(seconds=1)


async def test_managing_tokens_needs_manage_api_tokens(api):
    await api.sign_up()
    plain = (await add_member(api, "calm-minds", "plain@example.com")).token
    allowed = (
        await add_member(api, "calm-minds", "keeper@example.com", permissions=(Permission.MANAGE_API_TOKENS,))
    ).token

    code, body = await api.error(CREATE_TOKEN, {"i": {"name": "x", "scopes": ["READ_MEMBERS"]}}, plain)
    assert code == "FORBIDDEN"
    code, body = await api.error(TOKENS, token=plain)
    assert code == "FORBIDDEN" and body["data"]["practice"]["apiTokens"] is None

    created = await create_token(api, allowed, ["READ_MEMBERS"])
    listed = await api.ok(TOKENS, token=allowed)
    assert [e["node"]["id"] for e in listed["practice"]["apiTokens"]["edges"]] == [created["apiToken"]["id"]]
    code, _ = await api.error(REVOKE_TOKEN, {"i": {"apiTokenId": created["apiToken"]["id"]}}, plain)
    assert code == "FORBIDDEN"
    assert (await ApiToken.get()).revoked_at is None


# ------------------------------------------------------------------ what a token may do


async def test_viewer_access_shows_the_tokens_scopes_and_the_token(api):
    owner = await api.sign_up()
    session = await api.ok(ACCESS, token=owner["accessToken"])
    assert session["viewerAccess"]["apiToken"] is None
    assert len(session["viewerAccess"]["scopes"]) == 8

    created = await create_token(api, owner["accessToken"], ["READ_CHARTS", "READ_MEMBERS"], name="Reader")
    access = (await api.ok(ACCESS, token=created["token"]))["viewerAccess"]
    assert access["scopes"] == ["READ_MEMBERS", "READ_CHARTS"]
    assert access["apiToken"] == {
        "id": created["apiToken"]["id"],
        "name": "Reader",
        "scopes": ["READ_MEMBERS", "READ_CHARTS"],
    }
    assert access["member"]["id"] == owner["member"]["id"]
    # The token acts as its creator: the owner's permissions, narrowed by scopes on each field.
    assert "MANAGE_API_TOKENS" in access["effectivePermissions"]


async def test_read_members_scope_allows_and_its_absence_denies_the_member_list(api):
    owner = (await api.sign_up())["accessToken"]
    reader = (await create_token(api, owner, ["READ_MEMBERS"]))["token"]
    other = (await create_token(api, owner, ["READ_CHARTS"]))["token"]

    data = await api.ok(MEMBERS, token=reader)
    assert data["practice"]["members"]["totalCount"] == 1

    code, body = await api.error(MEMBERS, token=other)
    assert code == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["practice", "members"]
    # Denied field is null; the rest of the response stays.
    assert body["data"]["practice"] == {"name": "Calm Minds", "members": None}


async def test_node_applies_the_scope_of_the_list(api):
    owner = await api.sign_up()
    member_id = owner["member"]["id"]
    reader = (await create_token(api, owner["accessToken"], ["READ_MEMBERS"]))["token"]
    other = (await create_token(api, owner["accessToken"], ["READ_CHARTS"]))["token"]
    query = "query($id: ID!) { node(id: $id) { id ... on Member { name } } }"

    assert (await api.ok(query, {"id": member_id}, reader))["node"] == {"id": member_id, "name": "Olive Owner"}
    assert (await api.ok(query, {"id": member_id}, other))["node"] is None


async def test_permission_fields_without_a_scope_are_closed_to_tokens(api):
    owner = (await api.sign_up())["accessToken"]
    created = await create_token(api, owner, ["READ_MEMBERS", "READ_CHARTS", "READ_AUDIT_LOG"])
    token = created["token"]

    # The creator (owner) holds MANAGE_API_TOKENS, but apiTokens has no scope: tokens never reach it.
    code, body = await api.error(TOKENS, token=token)
    assert code == "FORBIDDEN" and body["data"]["practice"]["apiTokens"] is None
    query = "query($id: ID!) { node(id: $id) { id } }"
    assert (await api.ok(query, {"id": created["apiToken"]["id"]}, token))["node"] is None
    assert (await api.ok(query, {"id": created["apiToken"]["id"]}, owner))["node"] == {"id": created["apiToken"]["id"]}


async def test_a_permission_field_with_a_scope_needs_both(api):
    owner = (await api.sign_up())["accessToken"]
    audit_log = "{ practice { auditLog(first: 1) { edges { node { action } } } } }"
    with_scope = (await create_token(api, owner, ["READ_AUDIT_LOG"]))["token"]
    without_scope = (await create_token(api, owner, ["READ_MEMBERS"]))["token"]
    assert (await api.ok(audit_log, token=with_scope))["practice"]["auditLog"]["edges"]

    code, _ = await api.error(audit_log, token=without_scope)
    assert code == "FORBIDDEN"

    # A creator without VIEW_AUDIT_LOG gives no audit log to their token, whatever its scopes.
    keeper = (
        await add_member(api, "calm-minds", "keeper@example.com", permissions=(Permission.MANAGE_API_TOKENS,))
    ).token
    narrow = (await create_token(api, keeper, ["READ_AUDIT_LOG"]))["token"]
    code, _ = await api.error(audit_log, token=narrow)
    assert code == "FORBIDDEN"


async def test_mutations_without_a_scope_are_for_sessions_alone(api):
    owner = await api.sign_up()
    clinician = (await add_member(api, "calm-minds", "casey@example.com")).token
    every_scope = [
        "READ_MEMBERS",
        "READ_CHARTS",
        "WRITE_CHARTS",
        "READ_CHART_NOTES",
        "WRITE_CHART_NOTES",
        "READ_BILLING",
        "WRITE_BILLING",
        "READ_AUDIT_LOG",
    ]
    created = await create_token(api, owner["accessToken"], every_scope)
    token = created["token"]
    casey = (await api.ok("{ viewer { id } }", token=clinician))["viewer"]["id"]

    refused = [
        (CREATE_TOKEN, {"i": {"name": "child", "scopes": ["READ_MEMBERS"]}}),
        (REVOKE_TOKEN, {"i": {"apiTokenId": created["apiToken"]["id"]}}),
        ("mutation { activateGroupPractice { practice { kind } } }", None),
        (
            "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id } } }",
            {"i": {"memberId": casey, "permissions": ["VIEW_BILLING"]}},
        ),
        (
            "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id } } }",
            {"i": {"memberId": casey}},
        ),
        ("mutation($i: LogOutInput!) { logOut(input: $i) { loggedOut } }", {"i": {}}),
    ]
    for mutation, variables in refused:
        code, _ = await api.error(mutation, variables, token)
        assert code == "FORBIDDEN", mutation

    assert await ApiToken.all().count() == 1
    assert (await ApiToken.get()).revoked_at is None
    member = await Member.get(email="casey@example.com")
    assert member.status == MemberStatus.ACTIVE and member.permissions == []
    assert (await api.ok("{ practice { kind } }", token=token))["practice"]["kind"] == "SOLO"


# ------------------------------------------------------------------ tokens that stop


async def test_revoked_token_is_refused_on_its_next_request(api):
    owner = (await api.sign_up())["accessToken"]
    created = await create_token(api, owner, ["READ_MEMBERS"])
    await api.ok("{ viewer { id } }", token=created["token"])

    revoked = await api.ok(REVOKE_TOKEN, {"i": {"apiTokenId": created["apiToken"]["id"]}}, owner)
    assert revoked["revokeApiToken"]["apiToken"]["revokedAt"] is not None
    code, _ = await api.error("{ viewer { id } }", token=created["token"])
    assert code == "UNAUTHENTICATED"

    code, _ = await api.error(REVOKE_TOKEN, {"i": {"apiTokenId": created["apiToken"]["id"]}}, owner)
    assert code == "CONFLICT"
    listed = await api.ok(TOKENS, token=owner)
    assert listed["practice"]["apiTokens"]["totalCount"] == 0
    listed = await api.ok(TOKENS, {"all": True}, owner)
    assert listed["practice"]["apiTokens"]["totalCount"] == 1


async def test_expired_token_is_refused(api, clock):
    owner = (await api.sign_up())["accessToken"]
    created = await create_token(api, owner, ["READ_MEMBERS"], expires_at=iso(clock.now() + timedelta(hours=1)))
    await api.ok("{ viewer { id } }", token=created["token"])
    clock.advance(timedelta(hours=1, seconds=1))
    code, _ = await api.error("{ viewer { id } }", token=created["token"])
    assert code == "UNAUTHENTICATED"


async def test_token_of_a_deactivated_creator_is_refused(api):
    owner = (await api.sign_up())["accessToken"]
    keeper = (
        await add_member(api, "calm-minds", "keeper@example.com", permissions=(Permission.MANAGE_API_TOKENS,))
    ).token
    created = await create_token(api, keeper, ["READ_MEMBERS"])
    await api.ok(MEMBERS, token=created["token"])
    keeper_id = (await api.ok("{ viewer { id } }", token=keeper))["viewer"]["id"]

    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { status } } }",
        {"i": {"memberId": keeper_id}},
        owner,
    )
    code, _ = await api.error(MEMBERS, token=created["token"])
    assert code == "UNAUTHENTICATED"
    assert (await ApiToken.get()).revoked_at is not None


async def test_token_stops_when_its_creator_is_deactivated_even_if_never_revoked(api):
    await api.sign_up()
    keeper = (
        await add_member(api, "calm-minds", "keeper@example.com", permissions=(Permission.MANAGE_API_TOKENS,))
    ).token
    created = await create_token(api, keeper, ["READ_MEMBERS"])
    await Member.filter(email="keeper@example.com").update(status=MemberStatus.DEACTIVATED)
    code, _ = await api.error(MEMBERS, token=created["token"])
    assert code == "UNAUTHENTICATED"
    assert (await ApiToken.get()).revoked_at is None


async def test_last_used_is_kept_and_written_at_most_once_a_minute(api, clock):
    owner = (await api.sign_up())["accessToken"]
    created = await create_token(api, owner, ["READ_MEMBERS"])

    async def last_used() -> datetime | None:
        return (await ApiToken.get()).last_used_at

    await api.ok("{ viewer { id } }", token=created["token"])
    first = await last_used()
    assert first is not None
    clock.advance(timedelta(seconds=30))
    await api.ok("{ viewer { id } }", token=created["token"])
    assert await last_used() == first
    clock.advance(timedelta(seconds=31))
    await api.ok("{ viewer { id } }", token=created["token"])
    assert await last_used() > first
    listed = await api.ok(TOKENS, token=owner)
    assert listed["practice"]["apiTokens"]["edges"][0]["node"]["lastUsedAt"] is not None


async def test_tokens_of_another_practice_are_out_of_reach(api):
    first = (await api.sign_up())["accessToken"]
    created = await create_token(api, first, ["READ_MEMBERS"])
    second = (await api.sign_up(practice="Other Place", email="boss@example.com"))["accessToken"]

    listed = await api.ok(TOKENS, token=second)
    assert listed["practice"]["apiTokens"]["totalCount"] == 0
    node = await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": created["apiToken"]["id"]}, second)
    assert node["node"] is None
    code, _ = await api.error(REVOKE_TOKEN, {"i": {"apiTokenId": created["apiToken"]["id"]}}, second)
    assert code == "NOT_FOUND"
    assert (await ApiToken.get()).revoked_at is None
    # The token reads its own practice only.
    data = await api.ok(MEMBERS, token=created["token"])
    assert data["practice"]["name"] == "Calm Minds"


async def test_administrator_with_the_permission_manages_tokens_of_others(api):
    owner = (await api.sign_up())["accessToken"]
    created = await create_token(api, owner, ["READ_MEMBERS"])
    admin = (
        await add_member(
            api, "calm-minds", "admin@example.com", role=Role.ADMINISTRATOR, permissions=(Permission.MANAGE_API_TOKENS,)
        )
    ).token
    await api.ok(REVOKE_TOKEN, {"i": {"apiTokenId": created["apiToken"]["id"]}}, admin)
    code, _ = await api.error("{ viewer { id } }", token=created["token"])
    assert code == "UNAUTHENTICATED"
