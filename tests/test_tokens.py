"""Access tokens: 15 minutes, pinned algorithm, verified signature, issuer, audience and key id.

Forged tokens are built here with PyJWT directly, from the claims of a real token.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import timedelta

import jwt
import pytest

from auth.tokens import key_id
from models import Practice
from models.enums import MemberStatus, Permission, PracticeKind, Role, TokenScope
from tests.factories import add_member, insert_api_token, insert_member, sign_up, sql_statements

RETIRED_SECRET = "retired-secret-" + "r" * 40
VIEWER = "{ viewer { id } }"


@pytest.fixture
def settings(settings):
    """The service signs with its current secret and still accepts one retired key."""
    return settings.with_(jwt_previous_secrets=(RETIRED_SECRET,))


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def forge(claims: dict, secret: str, *, kid: str | None = None, algorithm: str = "HS256", **changes) -> str:
    headers = {"kid": kid if kid is not None else key_id(secret)}
    return jwt.encode({**claims, **changes}, secret, algorithm=algorithm, headers=headers)


async def assert_refused(api, token: str) -> None:
    code, body = await api.error(VIEWER, token=token)
    assert code == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "invalid or expired credentials"
    assert body["data"] == {"viewer": None}


async def assert_accepted(api, token: str, member_id: str) -> None:
    assert (await api.ok(VIEWER, token=token))["viewer"]["id"] == member_id


async def test_access_tokens_carry_the_pinned_algorithm_kid_and_claims(api, settings):
    owner = await sign_up(api)
    header = jwt.get_unverified_header(owner.token)
    assert header == {"alg": "HS256", "kid": key_id(settings.jwt_secret), "typ": "JWT"}
    claims = jwt.decode(
        owner.token, settings.jwt_secret, algorithms=["HS256"], audience="groups-api", issuer="groups-api"
    )
    assert {"iss", "aud", "sub", "iat", "exp", "jti", "pid", "sid"} <= set(claims)
    assert claims["sub"] == str(owner.row.id)
    assert claims["pid"] == str(owner.row.practice_id)
    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_jti_is_unique_per_token(api):
    owner = await sign_up(api)
    again = (await api.log_in(owner.slug, owner.email))["data"]["logIn"]["accessToken"]
    assert claims_of(owner.token)["jti"] != claims_of(again)["jti"]


async def test_an_access_token_lasts_15_minutes(api, clock):
    owner = await sign_up(api)
    clock.advance(timedelta(minutes=14))
    await assert_accepted(api, owner.token, owner.id)
    clock.advance(timedelta(minutes=2))
    await assert_refused(api, owner.token)


async def test_tokens_issued_on_a_moved_clock_are_valid(api, clock):
    """Issue time and expiry follow the service clock (tests, GROUPS_API_CLOCK_OFFSET), not the wall clock."""
    clock.advance(timedelta(days=3))
    owner = await sign_up(api)
    await assert_accepted(api, owner.token, owner.id)
    refreshed = (
        await api.ok(
            "mutation($t: String) { refreshSession(input: {refreshToken: $t}) { accessToken } }",
            {"t": owner.refresh_token},
        )
    )["refreshSession"]
    await assert_accepted(api, refreshed["accessToken"], owner.id)


async def test_a_token_issued_in_the_future_is_refused(api, settings):
    owner = await sign_up(api)
    claims = claims_of(owner.token)
    later = claims["iat"] + 3600
    await assert_refused(api, forge(claims, settings.jwt_secret, iat=later, exp=later + 900))


async def test_a_tampered_token_is_refused(api, settings):
    owner = await sign_up(api)
    header, payload, signature = owner.token.split(".")
    # Another member id under the original signature.
    changed = {**claims_of(owner.token), "sub": str(uuid.uuid4())}
    forged_payload = base64.urlsafe_b64encode(json.dumps(changed).encode()).decode().rstrip("=")
    await assert_refused(api, f"{header}.{forged_payload}.{signature}")
    # A flipped byte in the signature.
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    await assert_refused(api, f"{header}.{payload}.{flipped}")
    await assert_refused(api, f"{header}.{payload}.")
    await assert_accepted(api, owner.token, owner.id)


async def test_an_alg_none_token_is_refused(api, settings):
    owner = await sign_up(api)
    claims = claims_of(owner.token)
    await assert_refused(api, jwt.encode(claims, None, algorithm="none", headers={"kid": key_id(settings.jwt_secret)}))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_another_algorithm_with_the_right_secret_is_refused(api, settings):
    owner = await sign_up(api)
    await assert_refused(api, forge(claims_of(owner.token), settings.jwt_secret, algorithm="HS512"))


@pytest.mark.parametrize(("claim", "value"), [("aud", "another-service"), ("iss", "someone-else")])
async def test_wrong_audience_or_issuer_is_refused(api, settings, claim, value):
    owner = await sign_up(api)
    claims = claims_of(owner.token)
    await assert_accepted(api, forge(claims, settings.jwt_secret), owner.id)  # the forgery itself is sound
    await assert_refused(api, forge(claims, settings.jwt_secret, **{claim: value}))


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub", "jti", "pid", "sid"])
async def test_a_token_missing_a_claim_is_refused(api, settings, missing):
    owner = await sign_up(api)
    claims = claims_of(owner.token)
    del claims[missing]
    await assert_refused(api, forge(claims, settings.jwt_secret))


async def test_an_unknown_or_missing_kid_is_refused(api, settings):
    owner = await sign_up(api)
    claims = claims_of(owner.token)
    await assert_refused(api, forge(claims, settings.jwt_secret, kid="0123456789abcdef"))
    await assert_refused(api, jwt.encode(claims, settings.jwt_secret, algorithm="HS256"))


async def test_a_retired_key_still_verifies_but_a_random_key_does_not(api, settings):
    owner = await sign_up(api)
    claims = claims_of(owner.token)
    await assert_accepted(api, forge(claims, RETIRED_SECRET), owner.id)
    random_key = secrets.token_urlsafe(48)
    await assert_refused(api, forge(claims, random_key))
    # A random key cannot borrow a known kid either.
    await assert_refused(api, forge(claims, random_key, kid=key_id(settings.jwt_secret)))
    await assert_refused(api, forge(claims, random_key, kid=key_id(RETIRED_SECRET)))


async def test_a_signed_token_naming_another_practice_is_refused(api, settings):
    owner = await sign_up(api, practice="North", email="north@example.com")
    other = await sign_up(api, practice="South", email="south@example.com")
    claims = claims_of(owner.token)
    await assert_refused(api, forge(claims, settings.jwt_secret, pid=str(other.row.practice_id)))
    await assert_refused(api, forge(claims, settings.jwt_secret, sub=str(other.row.id)))


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Basic abc", "Token x.y.z", "Bearer not.a.jwt", "Bearer gapi_unknown"]
)
async def test_a_malformed_authorization_header_is_refused(client, header):
    response = await client.post("/graphql", json={"query": VIEWER}, headers={"Authorization": header})
    body = response.json()
    assert body["data"] == {"viewer": None}
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_without_a_token_guarded_fields_say_authentication_required(api):
    code, body = await api.error(VIEWER)
    assert code == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "authentication required"


# ------------------------------------------------------------------ one query per request for the caller


async def test_each_request_loads_the_caller_in_one_query(api, caplog):
    owner = await sign_up(api)
    with sql_statements(caplog) as statements:
        data = await api.ok(
            "{ viewer { id role email } viewerAccess { effectivePermissions } practice { slug } }", token=owner.token
        )
    assert data["viewer"]["id"] == owner.id
    assert len(statements) == 1, statements


async def test_the_member_list_costs_the_same_queries_for_any_number_of_members(api, caplog):
    owner = await sign_up(api)
    query = (
        "{ practice { owner { id } members { totalCount edges { node { id name email plan { code } traineeStatus } "
        "} } } }"
    )
    counts = []
    for batch in range(2):
        for i in range(10):
            await insert_member(owner.slug, f"m{batch}-{i}@example.com")
        with sql_statements(caplog) as statements:
            data = await api.ok(query, token=owner.token)
        counts.append(len(statements))
        assert data["practice"]["members"]["totalCount"] == 1 + 10 * (batch + 1)
    assert counts[0] == counts[1] <= 4


# ------------------------------------------------------------------ partner API tokens: the creator narrowed to scopes


MEMBERS = "{ practice { members { totalCount } } }"


async def test_a_partner_token_acts_as_its_creator_narrowed_to_its_scopes(api):
    owner = await sign_up(api)
    token = await insert_api_token(owner.row, (TokenScope.READ_MEMBERS,))
    data = await api.ok(
        "{ viewer { id } viewerAccess { effectivePermissions scopes apiToken { name scopes } } }", token=token
    )
    assert data["viewer"]["id"] == owner.id
    assert data["viewerAccess"]["scopes"] == ["READ_MEMBERS"]
    assert data["viewerAccess"]["apiToken"] == {"name": "partner", "scopes": ["READ_MEMBERS"]}
    assert len(data["viewerAccess"]["effectivePermissions"]) == len(Permission)
    assert (await api.ok(MEMBERS, token=token))["practice"]["members"]["totalCount"] == 1
    node = await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": owner.id}, token=token)
    assert node["node"] == {"id": owner.id}


async def test_without_the_scope_the_list_is_forbidden_and_node_is_null(api):
    owner = await sign_up(api)
    token = await insert_api_token(owner.row, (TokenScope.READ_CHARTS,))
    code, body = await api.error(MEMBERS, token=token)
    assert code == "FORBIDDEN"
    assert body["data"] == {"practice": {"members": None}}
    node = await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": owner.id}, token=token)
    assert node["node"] is None


@pytest.mark.parametrize(
    ("mutation", "variables"),
    [
        ("mutation { activateGroupPractice { practice { kind } } }", {}),
        (
            "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { role } } }",
            {"i": {"memberId": "M", "role": "ADMINISTRATOR"}},
        ),
        (
            "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id } } }",
            {"i": {"memberId": "M", "permissions": []}},
        ),
        (
            "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id } } }",
            {"i": {"memberId": "M"}},
        ),
        ("mutation { logOut(input: {}) { loggedOut } }", {}),
    ],
)
async def test_mutations_without_a_scope_are_closed_to_partner_tokens(api, mutation, variables):
    owner = await sign_up(api)
    clinician = await add_member(api, owner.slug, "cleo@example.com")
    token = await insert_api_token(owner.row, tuple(TokenScope))
    if "i" in variables:
        variables["i"]["memberId"] = clinician.id
    code, _ = await api.error(mutation, variables, token=token)
    assert code == "FORBIDDEN"
    row = await clinician.reload()
    assert (row.role, row.status, row.permissions) == (Role.CLINICIAN, MemberStatus.ACTIVE, [])
    assert (await Practice.get(slug=owner.slug)).kind == PracticeKind.SOLO


async def test_a_partner_token_stops_with_its_creator_its_expiry_or_its_revocation(api, clock):
    owner = await sign_up(api)
    clinician = await add_member(api, owner.slug, "cleo@example.com")
    of_clinician = await insert_api_token(clinician.row, (TokenScope.READ_MEMBERS,))
    short_lived = await insert_api_token(owner.row, (TokenScope.READ_MEMBERS,), expires_in=timedelta(hours=1))
    revoked = await insert_api_token(owner.row, (TokenScope.READ_MEMBERS,), revoked=True)
    assert (await api.ok(VIEWER, token=of_clinician))["viewer"]["id"] == clinician.id
    await assert_refused(api, revoked)

    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id } } }",
        {"i": {"memberId": clinician.id}},
        token=owner.token,
    )
    await assert_refused(api, of_clinician)

    assert (await api.ok(VIEWER, token=short_lived))["viewer"]["id"] == owner.id
    clock.advance(timedelta(hours=1, seconds=1))
    await assert_refused(api, short_lived)
