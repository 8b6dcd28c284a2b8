"""Sign-up, log-in, refresh-token rotation with theft detection, and log-out."""

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
from models import Member, Practice, RotatedRefreshToken, Session
from models.enums import MemberStatus, PracticeKind, Role
from resolvers import audit, limits, validation
from resolvers.context import Context
from resolvers.errors import BadInput, Unauthenticated
from resolvers.ids import encode as _gid
from resolvers.plans import require_plan

INVALID_CREDENTIALS = "invalid credentials"
SLUG_MAX = 60


@dataclass(frozen=True)
class SignedIn:
    member: Member
    access_token: str
    refresh_token: str
    access_token_expires_at: datetime


async def start_session(ctx: Context, member: Member, *, connection: BaseDBAsyncClient | None = None) -> SignedIn:
    now = ctx.clock.now()
    refresh = new_secret()
    session = await Session.create(
        id=uuid.uuid4(),
        member=member,
        refresh_token_hash=hash_secret(refresh),
        created_at=now,
        last_refreshed_at=now,
        expires_at=now + ctx.settings.refresh_token_ttl,
        using_db=connection,
    )
    return _signed_in(ctx, member, session, refresh, now)


def _signed_in(ctx: Context, member: Member, session: Session, refresh: str, now: datetime) -> SignedIn:
    expires = now + ctx.settings.access_token_ttl
    access = ctx.codec.issue(
        member_id=member.id, practice_id=member.practice_id, session_id=session.id, now=now, expires_at=expires
    )
    return SignedIn(member, access, refresh, expires)


def _slug_base(name: str) -> str:
    return slugify(name, max_length=SLUG_MAX, word_boundary=True) or "practice"


async def sign_up(ctx: Context, *, practice_name: str, name: str, email: str, password: str, plan_code: str) -> SignedIn:
    practice_name = validation.text(practice_name, field="input.practiceName")
    name = validation.text(name, field="input.name")
    email = validation.email(email)
    await validation.new_password(password, about=(name, email, practice_name))
    plan = require_plan(plan_code)
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

    Failures are throttled per account and per client address (RATE_LIMITED before any check once too many).
    """
    slug = (practice_slug or "").strip().lower()
    normalized = _login_email(email)
    account = f"login:{slug}:{normalized}"
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
    await audit.record_many(ctx, [audit.PendingEvent("auth.logged_in", _gid("Member", member.id))],
                            practice_id=member.practice_id, actor_id=member.id)
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
    """Rotate: the presented token dies, a new one is issued. A token presented twice revokes the whole session."""
    if not refresh_token:
        raise Unauthenticated("refresh token required")
    now = ctx.clock.now()
    old_hash = hash_secret(refresh_token)
    session = await Session.filter(refresh_token_hash=old_hash).select_related("member__practice").first()
    if session is None:
        rotated = await RotatedRefreshToken.filter(token_hash=old_hash).first()
        if rotated is not None:
            # Token theft detection: an already-rotated token came back. Kill the session for everyone.
            await Session.filter(id=rotated.session_id, revoked_at=None).update(revoked_at=now)
            member_row = await Session.filter(id=rotated.session_id).values("member_id", "member__practice_id")
            if member_row:
                await audit.record_many(
                    ctx, [audit.PendingEvent("auth.refresh_token_reused", _gid("Member", member_row[0]["member_id"]))],
                    practice_id=member_row[0]["member__practice_id"], actor_id=member_row[0]["member_id"],
                )
        raise Unauthenticated("invalid refresh token")
    member = session.member
    if session.revoked_at is not None or session.expires_at <= now or member.status != MemberStatus.ACTIVE:
        raise Unauthenticated("invalid refresh token")
    new_refresh = new_secret()
    async with in_transaction() as conn:
        # Compare-and-set: of two concurrent refreshes with the same token, exactly one wins.
        updated = await Session.filter(id=session.id, refresh_token_hash=old_hash, revoked_at=None).using_db(conn).update(
            refresh_token_hash=hash_secret(new_refresh), last_refreshed_at=now
        )
        if updated:
            await RotatedRefreshToken.create(token_hash=old_hash, session_id=session.id, rotated_at=now, using_db=conn)
    if not updated:
        await Session.filter(id=session.id).update(revoked_at=now)
        raise Unauthenticated("invalid refresh token")
    return _signed_in(ctx, member, session, new_refresh, now)


async def log_out(ctx: Context, refresh_token: str | None) -> bool:
    """Revoke the session named by the refresh token, or else the caller's current session."""
    now = ctx.clock.now()
    if refresh_token:
        # Tortoise types a flat values_list as a tuple; it is the id, or None.
        by_token = Session.filter(refresh_token_hash=hash_secret(refresh_token)).first()
        session_id = cast(uuid.UUID | None, await by_token.values_list("id", flat=True))
        if session_id is None:
            raise Unauthenticated("invalid refresh token")
    elif ctx.viewer is not None and ctx.viewer.session_id is not None:
        session_id = uuid.UUID(ctx.viewer.session_id)
    else:
        raise Unauthenticated("log out needs a session: a refresh token or a session access token")
    await Session.filter(id=session_id, revoked_at=None).update(revoked_at=now)
    return True


async def revoke_member_sessions(member_id: uuid.UUID, now: datetime, *, connection: BaseDBAsyncClient | None = None) -> None:
    await Session.filter(member_id=member_id, revoked_at=None).using_db(connection).update(revoked_at=now)
