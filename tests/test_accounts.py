"""Accounts: requestPasswordReset, resetPassword, changePassword, and the password rules of every path that sets one."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from auth.passwords import verify_password
from auth.tokens import hash_secret
from models import AuditEvent, Member, OutboxMessage, PasswordReset, Session
from models.enums import MemberStatus, TokenScope
from resolvers import accounts, ids, outbox
from tests.conftest import PASSWORD, postgres_only
from tests.factories import add_member, insert_api_token, sign_up, sql_statements
from tests.factories_subscriptions import group_practice, invite

NEW_PASSWORD = "plum-fjord-kiwi"
REQUEST = "mutation($i: RequestPasswordResetInput!) { requestPasswordReset(input: $i) { requested } }"
RESET = (
    "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { accessToken refreshToken member { id email "
    "role } } }"
)
CHANGE = "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { member { id email } } }"
REFRESH = "mutation($i: RefreshSessionInput!) { refreshSession(input: $i) { accessToken } }"
VIEWER = "{ viewer { id } }"
LINK = re.compile(r"http://test/reset-password#token=([A-Za-z0-9_-]+)")


@pytest.fixture
def mailbox(monkeypatch) -> list[dict]:
    """Every mail the outbox sends, as it would go out (the outbox logs it in tests, and empties its stored body)."""
    sent: list[dict] = []

    async def send(settings, recipient, subject, body):
        sent.append({"recipient": recipient, "subject": subject, "body": body})

    monkeypatch.setattr(outbox, "send", send)
    return sent


async def request_reset(api, slug="calm-minds", email="owner@example.com") -> dict:
    return await api.post(REQUEST, {"i": {"practiceSlug": slug, "email": email}})


async def reset_token(api, mailbox, slug="calm-minds", email="owner@example.com") -> str:
    """Ask for a reset and read the token from the link in the mail."""
    before = len(mailbox)
    body = await request_reset(api, slug, email)
    assert body == {"data": {"requestPasswordReset": {"requested": True}}}, body
    assert len(mailbox) == before + 1, mailbox
    match = LINK.search(mailbox[-1]["body"])
    assert match, mailbox[-1]["body"]
    return match.group(1)


def field_of(body: dict) -> str | None:
    return body["errors"][0]["extensions"].get("field")


async def state(member_id) -> tuple:
    """What a refused call must leave as it was: the password hash, the sessions, the reset tokens."""
    member = await Member.get(id=member_id)
    sessions = sorted((str(s.id), s.revoked_at is None) for s in await Session.filter(member_id=member_id))
    resets = sorted((str(r.id), r.used_at, r.revoked_at) for r in await PasswordReset.filter(member_id=member_id))
    return member.password_hash, sessions, resets


# ------------------------------------------------------------------ requestPasswordReset


async def test_a_reset_link_is_mailed_with_a_one_hour_token_stored_as_a_hash(api, mailbox):
    owner = await sign_up(api)
    token = await reset_token(api, mailbox)
    mail = mailbox[-1]
    assert mail["recipient"] == "owner@example.com"
    assert "Calm Minds" in mail["subject"]
    assert f"http://test/reset-password#token={token}" in mail["body"]
    assert len(token) >= 43  # 256 bits, url-safe base64
    row = await PasswordReset.get(member_id=owner.row.id)
    assert row.token_hash == hash_secret(token)
    assert row.expires_at - row.created_at == timedelta(hours=1)
    assert (row.used_at, row.revoked_at) == (None, None)
    # The stored mail is encrypted, and emptied once sent: the token rests nowhere in clear.
    message = await OutboxMessage.get(recipient="owner@example.com")
    assert token not in message.body_encrypted
    event = await AuditEvent.get(action="auth.password_reset_requested")
    assert (event.target_id, event.actor_id, event.details) == (owner.id, None, None)


@pytest.mark.parametrize(
    ("slug", "email"),
    [
        ("calm-minds", "nobody@example.com"),
        ("no-such-practice", "owner@example.com"),
        ("calm-minds", "former@example.com"),
        ("calm-minds", "not an email"),
        ("x" * 500, "y" * 500),
    ],
    ids=["unknown email", "unknown practice", "deactivated member", "not an email", "too long"],
)
async def test_the_answer_is_the_same_whether_or_not_the_account_exists(api, mailbox, slug, email):
    owner = await sign_up(api)
    await add_member(api, owner.slug, "former@example.com")
    await Member.filter(email="former@example.com").update(status=MemberStatus.DEACTIVATED)
    known = await request_reset(api)
    assert await request_reset(api, slug, email) == known == {"data": {"requestPasswordReset": {"requested": True}}}
    assert [m["recipient"] for m in mailbox] == ["owner@example.com"]
    assert await PasswordReset.all().count() == 1


async def test_the_request_answers_before_looking_for_the_account(api, mailbox, monkeypatch, caplog):
    """Same time either way: the resolver runs the same statements (none) for an account and for no account; the
    lookup, the token and the mail happen after the response is sent."""
    await sign_up(api)
    during: list[list[str]] = []
    real = accounts.request_reset

    async def watched(ctx, **kwargs):
        with sql_statements(caplog) as statements:
            answer = await real(ctx, **kwargs)
        during.append(statements)
        return answer

    monkeypatch.setattr(accounts, "request_reset", watched)
    await request_reset(api, email="owner@example.com")
    await request_reset(api, email="nobody@example.com")
    assert during == [[], []]
    assert len(mailbox) == 1


async def test_a_newer_reset_link_replaces_the_older_one(api, mailbox):
    await sign_up(api)
    first = await reset_token(api, mailbox)
    second = await reset_token(api, mailbox)
    body = await api.post(RESET, {"i": {"token": first, "newPassword": NEW_PASSWORD}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and field_of(body) == "input.token"
    await api.ok(RESET, {"i": {"token": second, "newPassword": NEW_PASSWORD}})


async def test_reset_requests_are_throttled_per_account_whether_or_not_it_exists(api, mailbox):
    await sign_up(api)
    for email in ("owner@example.com", "nobody@example.com"):
        for _ in range(accounts.RESET_REQUESTS_PER_ACCOUNT.limit):
            assert not (await request_reset(api, email=email)).get("errors")
        code, body = await api.error(REQUEST, {"i": {"practiceSlug": "calm-minds", "email": email}})
        assert code == "RATE_LIMITED"
        assert body["errors"][0]["extensions"]["retryAfter"] > 0
    assert len(mailbox) == accounts.RESET_REQUESTS_PER_ACCOUNT.limit
    # Another account from the same address still may.
    assert not (await request_reset(api, email="third@example.com")).get("errors")


async def test_reset_requests_are_throttled_per_address(api, mailbox):
    await sign_up(api)
    for n in range(accounts.RESET_REQUESTS_PER_ADDRESS.limit):
        assert not (await request_reset(api, email=f"guess{n}@example.com")).get("errors")
    code, _ = await api.error(REQUEST, {"i": {"practiceSlug": "calm-minds", "email": "owner@example.com"}})
    assert code == "RATE_LIMITED"
    assert mailbox == []


async def test_a_reset_link_points_at_the_web_app_not_the_api(settings, mailbox):
    """GROUPS_API_APP_URL is the base of the links people open; GROUPS_API_PUBLIC_URL (pdfUrl) plays no part."""
    from tests.conftest import Api
    from tests.test_security_http import http_client

    async with http_client(settings.with_(app_url="https://app.example", public_url="https://api.example")) as client:
        api = Api(client)
        await sign_up(api)
        assert not (await request_reset(api)).get("errors")
    assert re.search(r"https://app\.example/reset-password#token=[A-Za-z0-9_-]+", mailbox[-1]["body"])
    assert "api.example" not in mailbox[-1]["body"]


# ------------------------------------------------------------------ resetPassword


async def test_a_reset_sets_the_password_ends_every_session_and_signs_in(api, mailbox):
    owner = await sign_up(api)
    other = (await api.log_in(owner.slug, owner.email))["data"]["logIn"]
    partner = await insert_api_token(owner.row, (TokenScope.READ_MEMBERS,))
    token = await reset_token(api, mailbox)

    signed = (await api.ok(RESET, {"i": {"token": token, "newPassword": NEW_PASSWORD}}))["resetPassword"]
    assert signed["member"] == {"id": owner.id, "email": "owner@example.com", "role": "OWNER"}
    # Every earlier session ended: access tokens at their next request, refresh tokens at once.
    for access in (owner.token, other["accessToken"]):
        code, _ = await api.error(VIEWER, token=access)
        assert code == "UNAUTHENTICATED"
    for refresh in (owner.refresh_token, other["refreshToken"]):
        code, _ = await api.error(REFRESH, {"i": {"refreshToken": refresh}})
        assert code == "UNAUTHENTICATED"
    # The new session works; API tokens belong to integrations and stay.
    assert (await api.ok(VIEWER, token=signed["accessToken"]))["viewer"]["id"] == owner.id
    assert (await api.ok(VIEWER, token=partner))["viewer"]["id"] == owner.id
    assert await api.ok(REFRESH, {"i": {"refreshToken": signed["refreshToken"]}})
    # The new password logs in, the old one no longer.
    assert (await api.log_in(owner.slug, owner.email, PASSWORD))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not (await api.log_in(owner.slug, owner.email, NEW_PASSWORD)).get("errors")
    row = await PasswordReset.get(member_id=owner.row.id)
    assert row.used_at is not None
    event = await AuditEvent.get(action="auth.password_reset")
    assert (event.target_id, event.actor_id, event.details) == (owner.id, owner.row.id, None)


async def test_used_expired_revoked_and_unknown_tokens_fail_alike_and_change_nothing(api, mailbox, clock):
    owner = await sign_up(api)
    used = await reset_token(api, mailbox)
    await api.ok(RESET, {"i": {"token": used, "newPassword": NEW_PASSWORD}})
    revoked = await reset_token(api, mailbox)
    expired = await reset_token(api, mailbox)  # revokes the one before it
    clock.advance(timedelta(hours=1, seconds=1))
    before = await state(owner.row.id)
    errors = []
    for token in (used, revoked, expired, "unknown-token", ""):
        body = await api.post(RESET, {"i": {"token": token, "newPassword": "another-plum-fjord"}})
        assert body["data"] == {"resetPassword": None}
        errors.append(body["errors"][0]["message"] + "|" + str(body["errors"][0]["extensions"]))
    assert len(set(errors)) == 1, errors
    assert "'code': 'BAD_USER_INPUT'" in errors[0] and "'field': 'input.token'" in errors[0]
    assert await state(owner.row.id) == before
    assert await AuditEvent.filter(action="auth.password_reset").count() == 1


async def test_a_deactivated_members_token_fails_like_any_other(api, mailbox):
    owner = await sign_up(api)
    await add_member(api, owner.slug, "clin@example.com")
    token = await reset_token(api, mailbox, email="clin@example.com")
    await Member.filter(email="clin@example.com").update(status=MemberStatus.DEACTIVATED)
    body = await api.post(RESET, {"i": {"token": token, "newPassword": NEW_PASSWORD}})
    assert body["errors"][0]["message"] == accounts.INVALID_RESET_TOKEN and field_of(body) == "input.token"


async def test_a_weak_new_password_is_refused_and_the_token_still_works(api, mailbox):
    owner = await sign_up(api)
    token = await reset_token(api, mailbox)
    before = await state(owner.row.id)
    body = await api.post(RESET, {"i": {"token": token, "newPassword": "password1234"}})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and field_of(body) == "input.newPassword"
    assert "This is a very common password" in body["errors"][0]["message"]
    assert await state(owner.row.id) == before
    await api.ok(RESET, {"i": {"token": token, "newPassword": NEW_PASSWORD}})


async def test_reset_token_guesses_are_throttled_per_address(api, mailbox):
    await sign_up(api)
    token = await reset_token(api, mailbox)
    for n in range(50):  # limits.ADDRESS_GUESSES
        body = await api.post(RESET, {"i": {"token": f"guess-{n}", "newPassword": NEW_PASSWORD}})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    code, _ = await api.error(RESET, {"i": {"token": token, "newPassword": NEW_PASSWORD}})
    assert code == "RATE_LIMITED"
    assert (await PasswordReset.get(token_hash=hash_secret(token))).used_at is None


async def test_reset_password_stands_alone_in_its_operation(api, mailbox):
    owner = await sign_up(api)
    token = await reset_token(api, mailbox)
    before = await state(owner.row.id)
    document = "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { accessToken } practice: __typename }"
    code, body = await api.error(document, {"i": {"token": token, "newPassword": NEW_PASSWORD}})
    assert code == "BAD_USER_INPUT" and "resetPassword must be the only field" in body["errors"][0]["message"]
    assert await state(owner.row.id) == before


@postgres_only()
async def test_two_concurrent_resets_with_one_token_set_one_password(api, mailbox):
    owner = await sign_up(api)
    token = await reset_token(api, mailbox)
    passwords = [f"plum-fjord-kiwi-{n}" for n in range(4)]
    bodies = await asyncio.gather(*(api.post(RESET, {"i": {"token": token, "newPassword": p}}) for p in passwords))
    winners = [p for p, b in zip(passwords, bodies, strict=True) if not b.get("errors")]
    assert len(winners) == 1
    assert {b["errors"][0]["extensions"]["field"] for b in bodies if b.get("errors")} == {"input.token"}
    assert verify_password((await Member.get(id=owner.row.id)).password_hash, winners[0])
    assert await Session.filter(member_id=owner.row.id, revoked_at=None).count() == 1


# ------------------------------------------------------------------ changePassword


async def test_changing_the_password_keeps_this_session_and_ends_the_others(api, mailbox):
    owner = await sign_up(api)
    other = (await api.log_in(owner.slug, owner.email))["data"]["logIn"]
    partner = await insert_api_token(owner.row, (TokenScope.READ_MEMBERS,))
    pending = await reset_token(api, mailbox)

    data = await api.ok(CHANGE, {"i": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}, owner.token)
    assert data["changePassword"]["member"] == {"id": owner.id, "email": "owner@example.com"}
    assert (await api.ok(VIEWER, token=owner.token))["viewer"]["id"] == owner.id
    assert await api.ok(REFRESH, {"i": {"refreshToken": owner.refresh_token}})
    code, _ = await api.error(VIEWER, token=other["accessToken"])
    assert code == "UNAUTHENTICATED"
    code, _ = await api.error(REFRESH, {"i": {"refreshToken": other["refreshToken"]}})
    assert code == "UNAUTHENTICATED"
    assert (await api.ok(VIEWER, token=partner))["viewer"]["id"] == owner.id
    # A reset link mailed before the change no longer works.
    body = await api.post(RESET, {"i": {"token": pending, "newPassword": "another-plum-fjord"}})
    assert field_of(body) == "input.token"
    assert not (await api.log_in(owner.slug, owner.email, NEW_PASSWORD)).get("errors")
    event = await AuditEvent.get(action="auth.password_changed")
    assert (event.target_id, event.details) == (owner.id, None)


async def test_a_wrong_current_password_changes_nothing_and_is_throttled_like_log_in(api):
    owner = await sign_up(api)
    before = await state(owner.row.id)
    for _ in range(10):  # limits.ACCOUNT_GUESSES
        body = await api.post(
            CHANGE, {"i": {"currentPassword": "not the password", "newPassword": NEW_PASSWORD}}, owner.token
        )
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert field_of(body) == "input.currentPassword"
        assert body["data"] == {"changePassword": None}
    code, _ = await api.error(CHANGE, {"i": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}, owner.token)
    assert code == "RATE_LIMITED"
    # The same account's log-ins count the same failures.
    assert (await api.log_in(owner.slug, owner.email))["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert await state(owner.row.id) == before
    assert not await AuditEvent.filter(action="auth.password_changed").exists()


async def test_a_weak_new_password_is_refused_by_change_and_nothing_changes(api):
    owner = await sign_up(api)
    before = await state(owner.row.id)
    body = await api.post(CHANGE, {"i": {"currentPassword": PASSWORD, "newPassword": "calmminds2026"}}, owner.token)
    assert field_of(body) == "input.newPassword"
    assert await state(owner.row.id) == before


async def test_partner_tokens_and_anonymous_callers_cannot_change_a_password(api):
    owner = await sign_up(api)
    partner = await insert_api_token(owner.row, tuple(TokenScope))
    before = await state(owner.row.id)
    code, _ = await api.error(CHANGE, {"i": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}, partner)
    assert code == "FORBIDDEN"
    code, _ = await api.error(CHANGE, {"i": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}})
    assert code == "UNAUTHENTICATED"
    assert await state(owner.row.id) == before


# ------------------------------------------------------------------ the password rules, on every path that sets one


SIGN_UP = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }"
ACCEPT = "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { accessToken } }"


async def _sign_up_path(api, mailbox, password):
    return await api.post(
        SIGN_UP,
        {
            "i": {
                "practiceName": "Calm Minds",
                "name": "Olive Owner",
                "email": "owner@example.com",
                "password": password,
                "planCode": "erx-lite",
            }
        },
    ), "input.password"


async def _accept_path(api, mailbox, password):
    owner = await group_practice(api)
    token = (await invite(api, owner, "olive@example.com"))["token"]
    return await api.post(
        ACCEPT, {"i": {"token": token, "name": "Olive Clinician", "password": password}}
    ), "input.password"


async def _reset_path(api, mailbox, password):
    await sign_up(api)
    token = await reset_token(api, mailbox)
    return await api.post(RESET, {"i": {"token": token, "newPassword": password}}), "input.newPassword"


async def _change_path(api, mailbox, password):
    owner = await sign_up(api)
    return await api.post(
        CHANGE, {"i": {"currentPassword": PASSWORD, "newPassword": password}}, owner.token
    ), "input.newPassword"


PATHS = {
    "signUp": _sign_up_path,
    "acceptInvitation": _accept_path,
    "resetPassword": _reset_path,
    "changePassword": _change_path,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Tx7#qPz!4mW", "at least 12 characters"),
        ("Tx7#qPz!4mWk" * 21 + "x" * 5, "at most 256 characters"),
        ("password1234", "This is a very common password"),
        ("qwertyuiopasdf", "too easy to guess"),
        # Strong for a stranger, weak for whoever knows the practice's name: it counts as a guessable word.
        ("calmminds2026", "too easy to guess"),
    ],
    ids=["11 characters", "257 characters", "common", "keyboard pattern", "the practice's name"],
)
async def test_every_path_that_sets_a_password_applies_the_rules(api, mailbox, path, password, message):
    body, field = await PATHS[path](api, mailbox, password)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert field_of(body) == field
    assert message in body["errors"][0]["message"]
    for member in await Member.all():
        assert not verify_password(member.password_hash, password)


@pytest.mark.parametrize("path", PATHS)
async def test_a_strong_password_of_256_characters_is_accepted_everywhere(api, mailbox, path):
    password = ("Tx7#qPz!4mWk-" * 20)[:256]
    body, _ = await PATHS[path](api, mailbox, password)
    assert not body.get("errors"), body
    assert any(verify_password(m.password_hash, password) for m in await Member.all())


async def test_no_password_or_token_is_ever_written_to_the_audit_log(api, mailbox):
    owner = await sign_up(api)
    token = await reset_token(api, mailbox)
    signed = (await api.ok(RESET, {"i": {"token": token, "newPassword": NEW_PASSWORD}}))["resetPassword"]
    await api.ok(
        CHANGE, {"i": {"currentPassword": NEW_PASSWORD, "newPassword": "another-plum-fjord"}}, signed["accessToken"]
    )
    await api.post(
        CHANGE, {"i": {"currentPassword": "wrong password!!", "newPassword": NEW_PASSWORD}}, signed["accessToken"]
    )
    text = " ".join(f"{e.action} {e.target_id} {e.details}" for e in await AuditEvent.all())
    for secret in (token, hash_secret(token), PASSWORD, NEW_PASSWORD, "another-plum-fjord", "wrong password!!"):
        assert secret not in text
    assert ids.encode("Member", owner.row.id) in text
