"""Sign-up, log-in, refresh-token rotation with theft detection, and log-out.

Sessions end ``settings.refresh_token_ttl`` (30 days) after their last refresh and at the latest
``settings.session_max_age`` (90 days) after log-in. Each refresh exchanges the refresh token for a new one; a token
presented again within REUSE_GRACE of its exchange (two tabs refreshing at once, a retry after a lost answer) gets
a fresh pair for the same session, while later reuse means theft and revokes the session.

In a browser on a listed origin the refresh token travels in an httpOnly cookie: the rules read it from
``ctx.browser`` and hand the new one back there (``BrowserSession.hand_over``); server/graphql.py sets the cookie.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from slugify import slugify
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth import passwords
from auth.tokens import hash_secret, new_secret
from errors import BadInput, Forbidden, Unauthenticated
from models import Member, Practice, RotatedRefreshToken, Session
from models.enums import MemberStatus, PracticeKind, Role
from resolvers import audit, limits, validation
from resolvers.context import Context
from resolvers.ids import encode as _gid
from resolvers.plans import require_plan

INVALID_CREDENTIALS = "invalid credentials"
SLUG_MAX = 60
# A refresh token presented again this soon after its exchange answers a fresh pair for the same session.
REUSE_GRACE = timedelta(seconds=30)
COOKIE_REFUSED = (
    "the session cookie is read only for requests from the web app's origins (GROUPS_API_CORS_ORIGINS): "
    "send refreshToken in the input"
)


@dataclass(frozen=True)
class SignedIn:
    member: Member
    access_token: str
    refresh_token: str
    access_token_expires_at: datetime
    # When the session ends unless refreshed again (idle limit, capped by the absolute one): the cookie's Max-Age.
    session_expires_at: datetime | None = None


async def start_session(ctx: Context, member: Member, *, connection: BaseDBAsyncClient | None = None) -> SignedIn:
    now = ctx.clock.now()
    refresh = new_secret()
    session = await Session.create(
        id=uuid.uuid4(),
        member=member,
        refresh_token_hash=hash_secret(refresh),
        created_at=now,
        last_refreshed_at=now,
        expires_at=now + min(ctx.settings.refresh_token_ttl, ctx.settings.session_max_age),
        using_db=connection,
    )
    return _signed_in(ctx, member, session, refresh, now)


def _signed_in(ctx: Context, member: Member, session: Session, refresh: str, now: datetime) -> SignedIn:
    expires = now + ctx.settings.access_token_ttl
    access = ctx.codec.issue(
        member_id=member.id, practice_id=member.practice_id, session_id=session.id, now=now, expires_at=expires
    )
    return SignedIn(member, access, refresh, expires, session.expires_at)


def _slug_base(name: str) -> str:
    return slugify(name, max_length=SLUG_MAX, word_boundary=True) or "practice"


async def sign_up(
    ctx: Context, *, practice_name: str, name: str, email: str, password: str, plan_code: str
) -> SignedIn:
    form = validation.Form()
    practice_name = form.check(validation.text, practice_name, field="input.practiceName")
    name = form.check(validation.text, name, field="input.name")
    email = form.check(validation.email, email)
    await form.check_async(validation.new_password, password, about=(name, email, practice_name))
    plan = form.check(require_plan, plan_code)
    form.done()
    # Counted once the input is valid, before the hash: the 11th sign-up of the hour from one address is refused
    # before it costs a hash or creates anything.
    await limits.charge_sign_up(ctx)
    password_hash = await passwords.hash_password_async(password)
    now = ctx.clock.now()
    base = _slug_base(practice_name)
    for attempt in range(50):
        slug = base if attempt == 0 else f"{base}-{attempt + 1}"
        if attempt == 0 or not await Practice.filter(slug=slug).exists():
            try:
                async with in_transaction() as conn:
                    practice = await Practice.create(
                        id=uuid.uuid4(),
                        name=practice_name,
                        slug=slug,
                        kind=PracticeKind.SOLO,
                        trial_started_at=now,
                        trial_ends_at=now + timedelta(days=ctx.settings.trial_days),
                        created_at=now,
                        using_db=conn,
                    )
                    owner = await Member.create(
                        id=uuid.uuid4(),
                        practice=practice,
                        name=name,
                        email=email,
                        password_hash=password_hash,
                        role=Role.OWNER,
                        plan_code=plan.code,
                        created_at=now,
                        using_db=conn,
                    )
                    signed_in = await start_session(ctx, owner, connection=conn)
                    await audit.record_many(
                        ctx,
                        [audit.PendingEvent("practice.signed_up", _gid("Practice", practice.id))],
                        practice_id=practice.id,
                        actor_id=owner.id,
                    )
                return signed_in
            except IntegrityError:
                if not await Practice.filter(slug=slug).exists():
                    raise
    raise BadInput("could not find a free slug for this practice name", field="input.practiceName")


async def log_in(ctx: Context, *, practice_slug: str, email: str, password: str) -> SignedIn:
    """Every failure is the same UNAUTHENTICATED "invalid credentials", and costs the same password check.

    Failures are throttled per (account, client address) and per client address (RATE_LIMITED, before any check,
    once too many): someone failing on purpose elsewhere never locks the right password out of a new address.
    """
    slug = (practice_slug or "").strip().lower()
    normalized = _login_email(email)
    account = limits.login_key(slug, normalized)
    await limits.check_guessing(ctx, account)
    member = None
    if validation.fits_column(slug, Practice, "slug") and validation.fits_column(normalized, Member, "email"):
        member = await Member.filter(practice__slug=slug, email=normalized).select_related("practice").first()
    ok = await passwords.verify_password_async(member.password_hash if member else None, password)
    if member is None or not ok or member.status != MemberStatus.ACTIVE:
        await limits.record_failure(ctx, account)
        await ctx_failed_login(ctx, member, slug)
        raise Unauthenticated(INVALID_CREDENTIALS)
    await limits.record_success(ctx, account)
    if passwords.needs_rehash(member.password_hash):
        member.password_hash = await passwords.hash_password_async(password)
        await member.save(update_fields=["password_hash"])
    signed_in = await start_session(ctx, member)
    await audit.record_many(
        ctx,
        [audit.PendingEvent("auth.logged_in", _gid("Member", member.id))],
        practice_id=member.practice_id,
        actor_id=member.id,
    )
    return signed_in


def _login_email(email: str | None) -> str:
    """The email in the form sign-up stored it (validated, Unicode-normalised, lower-cased); anything else as typed."""
    try:
        return validation.email(email or "")
    except BadInput:
        return (email or "").strip().lower()


async def ctx_failed_login(ctx: Context, member: Member | None, slug: str) -> None:
    practice_id: uuid.UUID | None = None
    if member is not None:
        practice_id = member.practice_id
    elif validation.fits_column(slug, Practice, "slug"):
        # Tortoise types a flat values_list as a tuple; it is the id, or None.
        practice_id = cast(uuid.UUID | None, await Practice.filter(slug=slug).first().values_list("id", flat=True))
    if practice_id is None:
        return  # no practice to file it under; the rate limiter still counts it
    await audit.record_many(
        ctx,
        [audit.PendingEvent("auth.login_failed", _gid("Member", member.id) if member else None)],
        practice_id=practice_id,
        actor_id=None,
    )


async def refresh_session(ctx: Context, refresh_token: str | None) -> SignedIn:
    """Exchange a refresh token for a new pair (see the module's docstring). Without a token in the input, a browser
    on a listed origin sends its cookie's; anything else that would read the cookie is FORBIDDEN."""
    from_cookie = not refresh_token
    token = refresh_token or _cookie_token(ctx)
    try:
        return await _refresh(ctx, token)
    except Unauthenticated:
        if from_cookie:
            ctx.browser.clear()  # the cookie's session is gone: do not keep sending it
        raise


def _cookie_token(ctx: Context) -> str:
    browser = ctx.browser
    if browser.cookie_refused:
        raise Forbidden(COOKIE_REFUSED)
    if not browser.cookie_mode:
        raise Unauthenticated("refresh token required")
    if not browser.cookie_token:
        raise Unauthenticated("no session cookie: log in again")
    return browser.cookie_token


async def _refresh(ctx: Context, refresh_token: str) -> SignedIn:
    now = ctx.clock.now()
    new_refresh = new_secret()
    outcome, session = await _exchange(ctx, hash_secret(refresh_token), hash_secret(new_refresh), now)
    if outcome == _REUSED:
        member_id = session.member_id
        practice_id = cast(uuid.UUID, await Member.filter(id=member_id).first().values_list("practice_id", flat=True))
        await audit.record_many(
            ctx,
            [audit.PendingEvent("auth.refresh_token_reused", _gid("Member", member_id))],
            practice_id=practice_id,
            actor_id=member_id,
        )
    if outcome != _EXCHANGED:
        raise Unauthenticated("invalid refresh token")
    return _signed_in(ctx, session.member, session, new_refresh, now)


_EXCHANGED, _REUSED, _INVALID = "exchanged", "reused", "invalid"


async def _exchange(ctx: Context, token_hash: str, new_hash: str, now: datetime) -> tuple[str, Session]:
    """Under the session's row lock: the outcome of presenting ``token_hash``, and the session (updated when
    exchanged, revoked when reused). Of concurrent refreshes with one token the first exchanges it and the others,
    once it has committed, find it just rotated: each gets a pair of its own (REUSE_GRACE)."""
    async with in_transaction() as conn:
        session = await Session.filter(refresh_token_hash=token_hash).select_for_update().using_db(conn).first()
        rotated = None
        if session is None:
            rotated = await RotatedRefreshToken.filter(token_hash=token_hash).using_db(conn).first()
            if rotated is not None:
                session = await Session.filter(id=rotated.session_id).select_for_update().using_db(conn).first()
        if session is None:
            return _INVALID, Session()
        if session.revoked_at is not None or session.expires_at <= now:
            return _INVALID, session
        if rotated is not None and not rotated.unused and now - rotated.rotated_at > REUSE_GRACE:
            # Theft detection: a token exchanged a while ago came back. Kill the session for everyone.
            await Session.filter(id=session.id).using_db(conn).update(revoked_at=now)
            return _REUSED, session
        member = await Member.filter(id=session.member_id).select_related("practice").using_db(conn).first()
        if member is None or member.status != MemberStatus.ACTIVE:
            return _INVALID, session
        # The session's newest token steps back: exchanged now when it is the one presented; otherwise (a grace
        # refresh with an older one) its holder, e.g. the other tab, has not used it yet and may, once.
        await RotatedRefreshToken.create(
            token_hash=session.refresh_token_hash,
            session_id=session.id,
            rotated_at=now,
            unused=rotated is not None,
            using_db=conn,
        )
        if rotated is not None and rotated.unused:
            await RotatedRefreshToken.filter(token_hash=token_hash).using_db(conn).update(unused=False, rotated_at=now)
        session.refresh_token_hash = new_hash
        session.last_refreshed_at = now
        session.expires_at = min(
            now + ctx.settings.refresh_token_ttl, session.created_at + ctx.settings.session_max_age
        )
        await session.save(update_fields=["refresh_token_hash", "last_refreshed_at", "expires_at"], using_db=conn)
        session.member = member
    return _EXCHANGED, session


async def log_out(ctx: Context, refresh_token: str | None) -> bool:
    """Revoke the session named by the refresh token (the input's, or a listed browser's cookie), or else the
    caller's current session. A browser's cookie is cleared."""
    now = ctx.clock.now()
    browser = ctx.browser
    if not refresh_token and browser.cookie_refused:
        raise Forbidden(COOKIE_REFUSED)
    browser.clear()
    session_id: uuid.UUID | None = None
    token = refresh_token or browser.cookie_token
    if token:
        session_id = await _session_of(hash_secret(token))
        if session_id is None and refresh_token:
            raise Unauthenticated("invalid refresh token")
    if session_id is None and ctx.viewer is not None and ctx.viewer.session_id is not None:
        session_id = uuid.UUID(ctx.viewer.session_id)
    if session_id is None:
        raise Unauthenticated("log out needs a session: a refresh token or a session access token")
    await Session.filter(id=session_id, revoked_at=None).update(revoked_at=now)
    return True


async def _session_of(token_hash: str) -> uuid.UUID | None:
    """The session a refresh token belongs to: its newest token, or one it replaced."""
    # Tortoise types a flat values_list as a tuple; it is the id, or None.
    current = await Session.filter(refresh_token_hash=token_hash).first().values_list("id", flat=True)
    if current is None:
        current = await RotatedRefreshToken.filter(token_hash=token_hash).first().values_list("session_id", flat=True)
    return cast(uuid.UUID | None, current)


async def revoke_member_sessions(
    member_id: uuid.UUID, now: datetime, *, connection: BaseDBAsyncClient | None = None
) -> None:
    await Session.filter(member_id=member_id, revoked_at=None).using_db(connection).update(revoked_at=now)
