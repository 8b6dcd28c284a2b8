"""signUp, logIn, refreshSession and logOut."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import timedelta

import pytest
from tortoise.exceptions import IntegrityError

from auth import passwords
from models import Member, Practice, Session
from models.enums import MemberStatus, Role
from resolvers import ids
from resolvers.sessions import REUSE_GRACE
from tests.conftest import PASSWORD, postgres_only
from tests.factories import add_member, insert_member, sign_up

TRIAL_DAYS = 12  # not the default (30): proves the setting is used

SIGN_UP = """mutation($input: SignUpInput!) { signUp(input: $input) {
  accessToken refreshToken member { id role email plan { code } } } }"""
REFRESH = (
    "mutation($t: String) { refreshSession(input: {refreshToken: $t}) { accessToken refreshToken member { id } } }"
)
LOG_OUT = "mutation($t: String) { logOut(input: {refreshToken: $t}) { loggedOut } }"
VIEWER = "{ viewer { id } }"


@pytest.fixture
def settings(settings):
    return settings.with_(trial_days=TRIAL_DAYS)


def sign_up_input(**changes) -> dict:
    values = {
        "practiceName": "Calm Minds",
        "name": "Olive Owner",
        "email": "owner@example.com",
        "password": PASSWORD,
        "planCode": "erx-lite",
    }
    return {"input": {**values, **changes}}


async def assert_unauthenticated(api, token: str) -> None:
    code, body = await api.error(VIEWER, token=token)
    assert code == "UNAUTHENTICATED"
    assert body["data"] == {"viewer": None}


# ------------------------------------------------------------------ signUp


async def test_sign_up_creates_a_solo_practice_with_its_owner_on_the_chosen_plan(api):
    owner = await sign_up(api, practice="Calm Minds & Co.", plan="therapist-plus")
    data = await api.ok(
        "{ viewer { role email plan { code } } practice { name slug kind owner { id } } }", token=owner.token
    )
    assert data["viewer"] == {"role": "OWNER", "email": "owner@example.com", "plan": {"code": "therapist-plus"}}
    assert data["practice"] == {
        "name": "Calm Minds & Co.",
        "slug": "calm-minds-co",
        "kind": "SOLO",
        "owner": {"id": owner.id},
    }
    assert await Member.filter(practice__slug="calm-minds-co").count() == 1


async def test_sign_up_starts_the_trial_for_the_configured_days_on_the_service_clock(api, clock):
    clock.advance(timedelta(days=5))
    before = clock.now()
    await sign_up(api)
    after = clock.now()
    practice = await Practice.get(slug="calm-minds")
    assert before <= practice.trial_started_at <= after
    assert practice.trial_ends_at - practice.trial_started_at == timedelta(days=TRIAL_DAYS)


async def test_two_practices_with_the_same_name_get_distinct_slugs(api):
    first = await sign_up(api, email="a@example.com")
    second = await sign_up(api, email="b@example.com")
    third = await sign_up(api, email="c@example.com")
    assert [first.slug, second.slug, third.slug] == ["calm-minds", "calm-minds-2", "calm-minds-3"]
    assert await Practice.all().count() == 3


async def test_a_name_without_letters_still_gets_a_slug(api):
    owner = await sign_up(api, practice="!!!")
    assert owner.slug == "practice"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"planCode": "no-such-plan"}, "input.planCode"),
        ({"password": "x" * 11}, "input.password"),
        ({"email": "not-an-email"}, "input.email"),
        ({"email": "owner@"}, "input.email"),
        ({"practiceName": "   "}, "input.practiceName"),
        ({"name": ""}, "input.name"),
    ],
)
async def test_sign_up_refuses_bad_input_and_creates_nothing(api, changes, field):
    code, body = await api.error(SIGN_UP, sign_up_input(**changes))
    assert code == "BAD_USER_INPUT"
    assert body["errors"][0]["extensions"]["field"] == field
    assert body["data"] == {"signUp": None}
    assert await Practice.all().count() == 0
    assert await Member.all().count() == 0


async def test_a_twelve_character_password_is_enough(api):
    # Twelve characters zxcvbn finds hard to guess (tests/test_accounts.py has the strength rules).
    data = await api.ok(SIGN_UP, sign_up_input(password="Tx7#qPz!4mWk"))
    assert data["signUp"]["member"]["role"] == "OWNER"


async def test_sign_up_stores_the_email_trimmed_and_lower_cased(api):
    data = await api.ok(SIGN_UP, sign_up_input(email="  Olive.Owner@Example.COM "))
    assert data["signUp"]["member"]["id"]
    row = await Member.get(practice__slug="calm-minds")
    assert row.email == "olive.owner@example.com"


async def test_passwords_are_stored_as_argon2id_hashes(api):
    await sign_up(api)
    row = await Member.get(practice__slug="calm-minds")
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


# ------------------------------------------------------------------ logIn


async def test_log_in_with_slug_email_and_password(api):
    owner = await sign_up(api)
    body = await api.log_in("calm-minds", "owner@example.com")
    assert body["data"]["logIn"]["member"] == {"id": owner.id, "role": "OWNER"}
    data = await api.ok(VIEWER, token=body["data"]["logIn"]["accessToken"])
    assert data["viewer"]["id"] == owner.id


async def test_log_in_trims_and_ignores_case_of_email_and_slug(api):
    owner = await sign_up(api)
    body = await api.log_in("  Calm-Minds ", "  OWNER@Example.com  ")
    assert body["data"]["logIn"]["member"]["id"] == owner.id


async def test_the_same_email_in_two_practices_is_two_separate_accounts(api):
    first = await sign_up(api, practice="North", email="dana@example.com")
    await api.ok(SIGN_UP, sign_up_input(practiceName="South", email="dana@example.com", password="another password!"))

    north = (await api.log_in("north", "dana@example.com"))["data"]["logIn"]
    south = (await api.log_in("south", "dana@example.com", "another password!"))["data"]["logIn"]
    assert north["member"]["id"] == first.id
    assert south["member"]["id"] != first.id

    # Each password opens only its own account.
    for slug, password in (("north", "another password!"), ("south", PASSWORD)):
        body = await api.log_in(slug, "dana@example.com", password)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # A session of one practice reaches nothing of the other.
    south_practice = (await api.ok("{ practice { id } }", token=south["accessToken"]))["practice"]["id"]
    query = "query($a: ID!, $b: ID!) { viewer { id } practice { slug } a: node(id: $a) { id } b: node(id: $b) { id } }"
    data = await api.ok(query, {"a": south["member"]["id"], "b": south_practice}, token=north["accessToken"])
    assert data == {"viewer": {"id": first.id}, "practice": {"slug": "north"}, "a": None, "b": None}


async def test_every_failed_log_in_says_only_invalid_credentials(api):
    await sign_up(api, practice="North", email="dana@example.com")
    await sign_up(api, practice="South", email="sam@example.com")
    failures = [
        ("nowhere", "dana@example.com", PASSWORD),  # unknown practice
        ("north", "nobody@example.com", PASSWORD),  # unknown email
        ("north", "sam@example.com", PASSWORD),  # email of another practice
        ("north", "dana@example.com", "wrong password!"),  # wrong password
        ("north", "dana@example.com", ""),
    ]
    errors = []
    for slug, email, password in failures:
        body = await api.log_in(slug, email, password)
        assert body["data"] == {"logIn": None}
        errors.append(body["errors"])
    assert errors[0] == [
        {
            "message": "invalid credentials",
            "locations": errors[0][0]["locations"],
            "path": ["logIn"],
            "extensions": {"code": "UNAUTHENTICATED"},
        }
    ]
    assert all(e == errors[0] for e in errors)


async def test_every_failed_log_in_costs_one_password_check(api, monkeypatch):
    """No shortcut for an unknown practice or email: each attempt verifies a hash (a dummy one when none exists)."""
    await sign_up(api)
    checked = []
    real = passwords.verify_password
    monkeypatch.setattr(
        passwords, "verify_password", lambda stored, given: checked.append(stored is not None) or real(stored, given)
    )
    for slug, email, password in [
        ("nowhere", "owner@example.com", PASSWORD),
        ("calm-minds", "x@example.com", PASSWORD),
        ("calm-minds", "owner@example.com", "wrong password!"),
    ]:
        await api.log_in(slug, email, password)
    assert checked == [False, False, True]


async def test_an_email_is_unique_within_a_practice(api):
    owner = await sign_up(api)
    with pytest.raises(IntegrityError):
        await insert_member(owner.slug, " OWNER@example.com")


async def test_a_deactivated_member_cannot_log_in(api):
    owner = await sign_up(api)
    clinician = await add_member(api, owner.slug, "cleo@example.com")
    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { status } } }",
        {"i": {"memberId": clinician.id}},
        token=owner.token,
    )
    body = await api.log_in(owner.slug, "cleo@example.com")
    assert body["errors"][0]["message"] == "invalid credentials"
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert (await clinician.reload()).status == MemberStatus.DEACTIVATED


# ------------------------------------------------------------------ refresh tokens


async def test_refresh_tokens_are_random_256_bits_and_stored_only_as_a_hash(api):
    owner = await sign_up(api)
    raw = base64.urlsafe_b64decode(owner.refresh_token + "=" * (-len(owner.refresh_token) % 4))
    assert len(raw) >= 32
    session = await Session.get(member_id=owner.row.id)
    assert session.refresh_token_hash == hashlib.sha256(owner.refresh_token.encode()).hexdigest()
    assert owner.refresh_token not in session.refresh_token_hash


async def test_refresh_rotates_the_refresh_token(api):
    owner = await sign_up(api)
    first = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]
    assert first["refreshToken"] != owner.refresh_token
    assert first["member"]["id"] == owner.id
    assert (await api.ok(VIEWER, token=first["accessToken"]))["viewer"]["id"] == owner.id
    second = (await api.ok(REFRESH, {"t": first["refreshToken"]}))["refreshSession"]
    assert second["refreshToken"] not in (owner.refresh_token, first["refreshToken"])
    assert await Session.filter(member_id=owner.row.id).count() == 1


async def test_a_reused_refresh_token_revokes_the_whole_session(api, clock):
    owner = await sign_up(api)
    other_session = (await api.log_in(owner.slug, owner.email))["data"]["logIn"]
    rotated = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]
    newest = (await api.ok(REFRESH, {"t": rotated["refreshToken"]}))["refreshSession"]
    assert (await api.ok(VIEWER, token=newest["accessToken"]))["viewer"]["id"] == owner.id

    clock.advance(REUSE_GRACE + timedelta(seconds=1))
    code, _ = await api.error(REFRESH, {"t": owner.refresh_token})  # the thief (or the victim) replays it
    assert code == "UNAUTHENTICATED"

    # Everything of that session is dead: the newest refresh token and the newest access token.
    code, _ = await api.error(REFRESH, {"t": newest["refreshToken"]})
    assert code == "UNAUTHENTICATED"
    await assert_unauthenticated(api, newest["accessToken"])
    await assert_unauthenticated(api, owner.token)
    # The member's other session is untouched.
    assert (await api.ok(VIEWER, token=other_session["accessToken"]))["viewer"]["id"] == owner.id
    assert (await api.ok(REFRESH, {"t": other_session["refreshToken"]}))["refreshSession"]["refreshToken"]


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
async def test_refresh_refuses_a_missing_or_unknown_token(api, token):
    await sign_up(api)
    code, body = await api.error(REFRESH, {"t": token})
    assert code == "UNAUTHENTICATED"
    assert body["data"] == {"refreshSession": None}


async def test_refresh_tokens_expire_with_their_session(api, clock, settings):
    owner = await sign_up(api)
    clock.advance(settings.refresh_token_ttl + timedelta(seconds=1))
    code, _ = await api.error(REFRESH, {"t": owner.refresh_token})
    assert code == "UNAUTHENTICATED"


async def test_a_deactivated_member_cannot_refresh(api):
    owner = await sign_up(api)
    clinician = await add_member(api, owner.slug, "cleo@example.com")
    await Member.filter(id=clinician.row.id).update(status=MemberStatus.DEACTIVATED)
    code, _ = await api.error(REFRESH, {"t": clinician.refresh_token})
    assert code == "UNAUTHENTICATED"


# ------------------------------------------------------------------ logOut


async def test_log_out_revokes_the_current_session_at_once(api):
    owner = await sign_up(api)
    assert (await api.ok(LOG_OUT, {"t": None}, token=owner.token))["logOut"] == {"loggedOut": True}
    await assert_unauthenticated(api, owner.token)
    code, _ = await api.error(REFRESH, {"t": owner.refresh_token})
    assert code == "UNAUTHENTICATED"


async def test_log_out_with_a_refresh_token_revokes_that_session_only(api):
    owner = await sign_up(api)
    other = (await api.log_in(owner.slug, owner.email))["data"]["logIn"]
    assert (await api.ok(LOG_OUT, {"t": owner.refresh_token}))["logOut"] == {"loggedOut": True}
    await assert_unauthenticated(api, owner.token)
    assert (await api.ok(VIEWER, token=other["accessToken"]))["viewer"]["id"] == owner.id


async def test_log_out_needs_a_session(api):
    await sign_up(api)
    code, _ = await api.error(LOG_OUT, {"t": None})
    assert code == "UNAUTHENTICATED"
    code, _ = await api.error(LOG_OUT, {"t": "unknown"})
    assert code == "UNAUTHENTICATED"


async def test_log_in_after_log_out_starts_a_new_session(api):
    owner = await sign_up(api)
    await api.ok(LOG_OUT, {"t": None}, token=owner.token)
    again = (await api.log_in(owner.slug, owner.email))["data"]["logIn"]
    assert (await api.ok(VIEWER, token=again["accessToken"]))["viewer"]["id"] == owner.id
    assert ids.parse(again["member"]["id"])[1] == owner.row.id
    assert again["member"]["role"] == Role.OWNER.value


# ------------------------------------------------------------------ concurrency


@postgres_only()
async def test_concurrent_sign_ups_with_the_same_name_get_distinct_slugs(api):
    bodies = await asyncio.gather(*(api.post(SIGN_UP, sign_up_input(email=f"o{i}@example.com")) for i in range(4)))
    assert all(not b.get("errors") for b in bodies), bodies
    assert sorted(await Practice.all().values_list("slug", flat=True)) == [
        "calm-minds",
        "calm-minds-2",
        "calm-minds-3",
        "calm-minds-4",
    ]


async def _one_live_session(api, member_id) -> Session:
    sessions = await Session.filter(member_id=member_id)
    assert [s.revoked_at for s in sessions] == [None]
    return sessions[0]


async def _each_tab_keeps_its_session(api, clock, owner, pairs: list[dict]) -> None:
    """Every pair handed out works: its access token now, and its refresh token once, long after the race."""
    for pair in pairs:
        assert (await api.ok(VIEWER, token=pair["accessToken"]))["viewer"]["id"] == owner.id
    clock.advance(timedelta(minutes=20))
    for pair in pairs:
        later = (await api.ok(REFRESH, {"t": pair["refreshToken"]}))["refreshSession"]
        assert (await api.ok(VIEWER, token=later["accessToken"]))["viewer"]["id"] == owner.id
    await _one_live_session(api, owner.row.id)


@postgres_only()
@pytest.mark.parametrize("tabs", [2, 5])
async def test_concurrent_refreshes_with_the_same_token_all_get_a_pair_of_the_same_session(api, clock, tabs):
    """Tabs refreshing at the same moment: one exchanges the token, the others find it just exchanged (under the
    session's row lock) and get pairs of their own. Nobody is logged out."""
    owner = await sign_up(api)
    session_id = (await _one_live_session(api, owner.row.id)).id
    bodies = await asyncio.gather(*(api.post(REFRESH, {"t": owner.refresh_token}) for _ in range(tabs)))
    assert all(not b.get("errors") for b in bodies), bodies
    pairs = [b["data"]["refreshSession"] for b in bodies]
    assert len({p["refreshToken"] for p in pairs}) == tabs
    assert (await _one_live_session(api, owner.row.id)).id == session_id
    await _each_tab_keeps_its_session(api, clock, owner, pairs)


async def test_a_token_presented_again_within_the_grace_gets_a_fresh_pair_of_the_same_session(api, clock):
    """Two tabs one after the other, or a retry after a lost answer (SQLite and PostgreSQL)."""
    owner = await sign_up(api)
    session_id = (await _one_live_session(api, owner.row.id)).id
    first = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]
    clock.advance(REUSE_GRACE - timedelta(seconds=1))
    second = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]
    assert second["refreshToken"] != first["refreshToken"]
    assert (await _one_live_session(api, owner.row.id)).id == session_id
    await _each_tab_keeps_its_session(api, clock, owner, [first, second])


async def test_reuse_after_the_grace_revokes_the_session_and_every_pair_of_it(api, clock):
    owner = await sign_up(api)
    first = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]
    second = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]  # within the grace
    clock.advance(REUSE_GRACE + timedelta(seconds=1))
    code, body = await api.error(REFRESH, {"t": owner.refresh_token})
    assert (code, body["data"]) == ("UNAUTHENTICATED", {"refreshSession": None})
    assert await Session.filter(member_id=owner.row.id, revoked_at=None).count() == 0
    for pair in (first, second):
        await assert_unauthenticated(api, pair["accessToken"])
        code, _ = await api.error(REFRESH, {"t": pair["refreshToken"]})
        assert code == "UNAUTHENTICATED"


async def test_a_token_exchanged_in_the_grace_is_still_spent_afterwards(api, clock):
    """The other tab's token (replaced before it was used) works once; used twice, later, it is theft like any other."""
    owner = await sign_up(api)
    first = (await api.ok(REFRESH, {"t": owner.refresh_token}))["refreshSession"]
    await api.ok(REFRESH, {"t": owner.refresh_token})  # the second tab, within the grace
    clock.advance(timedelta(minutes=5))
    await api.ok(REFRESH, {"t": first["refreshToken"]})
    clock.advance(REUSE_GRACE + timedelta(seconds=1))
    code, _ = await api.error(REFRESH, {"t": first["refreshToken"]})
    assert code == "UNAUTHENTICATED"
    assert await Session.filter(member_id=owner.row.id, revoked_at=None).count() == 0


async def test_sessions_end_30_days_after_their_last_refresh(api, clock, settings):
    owner = await sign_up(api)
    token = owner.refresh_token
    for _ in range(2):  # each refresh moves the idle limit
        clock.advance(settings.refresh_token_ttl - timedelta(minutes=1))
        token = (await api.ok(REFRESH, {"t": token}))["refreshSession"]["refreshToken"]
    clock.advance(settings.refresh_token_ttl + timedelta(seconds=1))
    code, _ = await api.error(REFRESH, {"t": token})
    assert code == "UNAUTHENTICATED"


async def test_sessions_end_90_days_after_log_in_however_often_refreshed(api, clock, settings):
    assert (settings.refresh_token_ttl, settings.session_max_age) == (timedelta(days=30), timedelta(days=90))
    owner = await sign_up(api)
    token = owner.refresh_token
    for _ in range(3):  # days 29, 58 and 87
        clock.advance(timedelta(days=29))
        token = (await api.ok(REFRESH, {"t": token}))["refreshSession"]["refreshToken"]
    session = await _one_live_session(api, owner.row.id)
    assert session.expires_at == session.created_at + settings.session_max_age  # not day 117
    clock.advance(timedelta(days=3, seconds=1))
    code, _ = await api.error(REFRESH, {"t": token})
    assert code == "UNAUTHENTICATED"


async def test_log_in_compares_emails_in_the_form_sign_up_stored_them(api):
    """Unicode emails are normalised the same way on sign-up and log-in (NFC), whatever form the keyboard sent."""
    decomposed, composed = "zoe\u0308@example.com", "Zo\u00cb@Example.com"
    owner = await sign_up(api, email=decomposed)
    for typed in (decomposed, composed):
        body = await api.log_in(owner.slug, typed)
        assert body["data"]["logIn"]["member"]["id"] == owner.id, typed


async def test_sign_in_payloads_show_the_caller_their_own_private_fields(api):
    data = await api.ok(
        """mutation($input: SignUpInput!) { signUp(input: $input) { refreshToken member { email permissions plan { code
        } } } }""",
        {
            "input": {
                "practiceName": "Payload Practice",
                "name": "Pat",
                "email": "Pat@Example.com",
                "password": "correct horse battery",
                "planCode": "erx-lite",
            }
        },
    )
    assert data["signUp"]["member"] == {"email": "pat@example.com", "permissions": [], "plan": {"code": "erx-lite"}}
    logged = await api.ok(
        """mutation($i: LogInInput!) { logIn(input: $i) { member { email } } }""",
        {"i": {"practiceSlug": "payload-practice", "email": "pat@example.com", "password": "correct horse battery"}},
    )
    assert logged["logIn"]["member"]["email"] == "pat@example.com"
    refreshed = await api.ok(
        "mutation($i: RefreshSessionInput!) { refreshSession(input: $i) { member { email } } }",
        {"i": {"refreshToken": data["signUp"]["refreshToken"]}},
    )
    assert refreshed["refreshSession"]["member"]["email"] == "pat@example.com"
