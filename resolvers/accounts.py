"""Accounts: a forgotten password (requestPasswordReset, resetPassword) and a password changed (changePassword).

Reset tokens carry 256 bits of randomness and are stored only as their SHA-256 hash (models.PasswordReset); each
works once and for ``RESET_TTL``. A newer reset mailed, a reset used and a password changed revoke every other
outstanding token of the account. Used, expired, revoked and unknown tokens all fail alike.

What a password change ends: a reset ends every session of the account (refresh tokens at once; access tokens at
their next request, since auth/credentials.py loads the session on every request and refuses a revoked one), then
signs in anew; changePassword ends every session but the caller's. API tokens stay: they belong to integrations,
not to the person's log-ins (deactivating the member ends them).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from auth import passwords
from auth.tokens import hash_secret, new_secret
from errors import BadInput, Forbidden, RateLimited
from models import Member, PasswordReset, Practice, Session
from models.enums import MemberStatus
from resolvers import audit, limits, outbox, sessions, validation
from resolvers.context import Context
from resolvers.ids import encode

log = logging.getLogger("groups_api.accounts")

RESET_TTL = timedelta(hours=1)
RESET_TOKEN_BYTES = 32  # 256 bits
INVALID_RESET_TOKEN = "this password reset link is invalid, expired or already used: ask for a new one"
WRONG_PASSWORD = "the password is wrong"

# Reset mails asked for, per account (practice slug and email, whether or not they name an account) and per client
# address: every request counts, since each one may send a mail.
RESET_REQUESTS_PER_ACCOUNT = limits.Policy(limit=5, window=timedelta(hours=1))
RESET_REQUESTS_PER_ADDRESS = limits.Policy(limit=50, window=timedelta(hours=1))


async def check_password(ctx: Context, member: Member, password: str | None, *, field: str) -> None:
    """The password of ``member`` (asked again of a signed-in member), throttled like log-in: RATE_LIMITED once the
    account or the address has failed too often lately; a wrong one is BAD_USER_INPUT naming ``field``."""
    # The key log-in throttles: wrong passwords given here count with wrong log-ins.
    key = limits.login_key(ctx.require_viewer().practice.slug, member.email)
    await limits.check_guessing(ctx, key)
    if not await passwords.verify_password_async(member.password_hash, password or ""):
        await limits.record_failure(ctx, key)
        raise BadInput(WRONG_PASSWORD, field=field)
    await limits.record_success(ctx, key)


# ------------------------------------------------------------------ requestPasswordReset


async def request_reset(ctx: Context, *, practice_slug: str, email: str) -> bool:
    """Mail a reset link to the account, if there is one: the answer is True whatever happens.

    The answer cannot tell whether the account exists, by its content or by its time: the request only checks its
    throttle (keyed by what was typed, account or not) and answers; finding the account, writing the token, the mail
    and the audit event happen after the response is sent (``_issue_reset``, a background task of the response).
    """
    ctx = replace(ctx, viewer=None)  # nobody's session plays a part in this
    slug = (practice_slug or "").strip().lower()
    normalized = _normalized_email(email)
    await _charge_reset_request(ctx, slug, normalized)
    if not ctx.defer(lambda: _issue_reset_safely(ctx, slug, normalized)):
        await _issue_reset_safely(ctx, slug, normalized)
    return True


def _normalized_email(email: str | None) -> str:
    try:
        return validation.email(email or "")
    except BadInput:
        return (email or "").strip().lower()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


async def _charge_reset_request(ctx: Context, slug: str, email: str) -> None:
    now = ctx.clock.now()
    keys = [(f"reset:account:{_digest(f'{slug}:{email}')}", RESET_REQUESTS_PER_ACCOUNT)]
    if ctx.client_address:
        keys.append((f"reset:address:{_digest(ctx.client_address)}", RESET_REQUESTS_PER_ADDRESS))
    for key, policy in keys:
        usage = await limits.store(ctx).charge(key, 1, limit=policy.limit, window=policy.window, now=now)
        if not usage.allowed:
            raise RateLimited("too many password reset requests: try again later", retry_after=usage.retry_after(now))


async def _issue_reset_safely(ctx: Context, slug: str, email: str) -> None:
    try:
        if await _issue_reset(ctx, slug, email):
            await outbox.deliver_pending_safely(ctx.settings, ctx.clock.now)
    except Exception:
        log.exception("password reset of request %s not issued", ctx.request_id)


async def _issue_reset(ctx: Context, slug: str, email: str) -> bool:
    """The same work up to the write whether or not the account exists (one lookup, one token drawn and hashed);
    then, for an active account only, the token, its mail and its audit event in one transaction."""
    member = None
    if validation.fits_column(slug, Practice, "slug") and validation.fits_column(email, Member, "email"):
        member = await Member.filter(practice__slug=slug, email=email).select_related("practice").first()
    token = new_secret(RESET_TOKEN_BYTES)
    token_hash = hash_secret(token)
    if member is None or member.status != MemberStatus.ACTIVE:
        return False
    now = ctx.clock.now()
    async with in_transaction() as conn:
        # The newest link is the one that works.
        await (
            PasswordReset.filter(member_id=member.id, used_at=None, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=now)
        )
        reset = await PasswordReset.create(
            id=uuid.uuid4(),
            practice_id=member.practice_id,
            member_id=member.id,
            token_hash=token_hash,
            created_at=now,
            expires_at=now + RESET_TTL,
            using_db=conn,
        )
        # The mail goes out right after this commit (the caller's delivery pass), not through the response's.
        await outbox.enqueue(replace(ctx, after_response=None), connection=conn, **_message(ctx, member, token, reset))
        await audit.record_many(
            ctx,
            [audit.PendingEvent("auth.password_reset_requested", encode("Member", member.id))],
            practice_id=member.practice_id,
            actor_id=None,
        )
    return True


def _message(ctx: Context, member: Member, token: str, reset: PasswordReset) -> dict:
    # The token travels in the fragment, which browsers never send to a server (so it stays out of access logs).
    link = f"{ctx.settings.app_base_url}/reset-password#token={token}"
    return {
        "recipient": member.email,
        "subject": f"Reset your password for {member.practice.name}",
        "body": (
            f"Someone asked to reset the password of your account at {member.practice.name}.\n\nChoose a new password "
            f"here: {link}\n\nOr give this token to resetPassword: {token}\n\nThe link expires at "
            f"{reset.expires_at:%Y-%m-%d %H:%M} UTC and works once. If you did not ask for it, ignore this mail: your "
            "password stays as it is."
        ),
        "practice_id": member.practice_id,
    }


# ------------------------------------------------------------------ resetPassword


async def reset_password(ctx: Context, *, token: str, new_password: str) -> sessions.SignedIn:
    """Set the account's password with a reset token, end every session of the account, and sign in.

    Guesses are throttled per token and per client address (only failures count). The token is claimed with a
    conditional update, so of two resets with one token exactly one sets a password."""
    ctx = replace(ctx, viewer=None)  # nobody is signed in until the account is
    token_hash = hash_secret(token or "")
    key = f"password-reset:{token_hash}"
    await limits.check_guessing(ctx, key)
    now = ctx.clock.now()
    reset = await PasswordReset.filter(token_hash=token_hash).select_related("member__practice").first()
    if reset is None or not _usable(reset, now) or reset.member.status != MemberStatus.ACTIVE:
        await limits.record_failure(ctx, key)
        raise BadInput(INVALID_RESET_TOKEN, field="input.token")
    member = reset.member
    await validation.new_password(
        new_password, field="input.newPassword", about=(member.name, member.email, member.practice.name)
    )
    password_hash = await passwords.hash_password_async(new_password)
    async with in_transaction() as conn:
        claimed = (
            await PasswordReset.filter(id=reset.id, used_at=None, revoked_at=None, expires_at__gt=now)
            .using_db(conn)
            .update(used_at=now)
        )
        updated = claimed and await Member.filter(
            id=member.id, practice_id=member.practice_id, status=MemberStatus.ACTIVE
        ).using_db(conn).update(password_hash=password_hash)
        if not updated:
            raise BadInput(INVALID_RESET_TOKEN, field="input.token")
        await (
            PasswordReset.filter(member_id=member.id, used_at=None, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=now)
        )
        await sessions.revoke_member_sessions(member.id, now, connection=conn)
        member.password_hash = password_hash
        signed_in = await sessions.start_session(ctx, member, connection=conn)
        await audit.record_many(
            ctx,
            [audit.PendingEvent("auth.password_reset", encode("Member", member.id))],
            practice_id=member.practice_id,
            actor_id=member.id,
        )
    return signed_in


def _usable(reset: PasswordReset, now: datetime) -> bool:
    return reset.used_at is None and reset.revoked_at is None and reset.expires_at > now


# ------------------------------------------------------------------ changePassword


async def change_password(ctx: Context, *, current_password: str, new_password: str) -> Member:
    """The caller's own password, the current one asked again (throttled like log-in). Sessions only: every other
    session of the account ends; the caller's goes on; API tokens stay."""
    viewer = ctx.require_viewer()
    if viewer.session_id is None:
        raise Forbidden("changePassword is not available to partner API tokens")
    member = viewer.member
    await check_password(ctx, member, current_password, field="input.currentPassword")
    await validation.new_password(
        new_password, field="input.newPassword", about=(member.name, member.email, viewer.practice.name)
    )
    password_hash = await passwords.hash_password_async(new_password)
    now = ctx.clock.now()
    async with in_transaction() as conn:
        await (
            Member.filter(id=member.id, practice_id=viewer.practice.id)
            .using_db(conn)
            .update(password_hash=password_hash)
        )
        await (
            Session.filter(member_id=member.id, revoked_at=None)
            .exclude(id=uuid.UUID(viewer.session_id))
            .using_db(conn)
            .update(revoked_at=now)
        )
        await (
            PasswordReset.filter(member_id=member.id, used_at=None, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=now)
        )
        await audit.record_many(ctx, [audit.PendingEvent("auth.password_changed", encode("Member", member.id))])
    member.password_hash = password_hash
    return member
