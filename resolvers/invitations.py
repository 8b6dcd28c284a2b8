"""Invitations: a GROUP practice invites clinicians and staff; a one-time token creates the account.

Tokens carry 256 bits of randomness and are stored only as their SHA-256 hash; they work for
``settings.invitation_ttl`` (7 days) and once. Resending issues a new token (the old one dies); inviting an email
that has a pending invitation replaces it. Expired, revoked, replaced and unknown tokens all fail alike.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth import passwords
from auth.tokens import hash_secret, new_secret
from errors import BadInput, Conflict, Forbidden, NotFound
from models import Invitation, Member
from models.enums import MemberStatus, Permission, Role, TraineeStatus
from models.invitations import InvitationStatus
from resolvers import audit, limits, outbox, subscriptions, validation
from resolvers.context import Context
from resolvers.ids import decode, encode
from resolvers.pagination import Page, paginate
from resolvers.practices import require_group
from resolvers.pricing import check_seat
from resolvers.sessions import SignedIn, start_session

ORDER = ["-created_at", "-id"]
INVALID_TOKEN = "this invitation is invalid, expired or already used: ask for a new one"


@dataclass(frozen=True)
class Issued:
    """An invitation and its token, which is shown this once."""

    invitation: Invitation
    token: str


# ------------------------------------------------------------------ access


def practice_invitations(ctx: Context) -> QuerySet[Invitation]:
    """The one access query for invitations: the viewer's practice."""
    return Invitation.filter(practice_id=ctx.require_viewer().practice.id)


def status_of(invitation: Invitation, now: datetime) -> InvitationStatus:
    """EXPIRED is a PENDING invitation past its expiry (never stored)."""
    if invitation.status == InvitationStatus.PENDING and invitation.expires_at <= now:
        return InvitationStatus.EXPIRED
    return invitation.status


async def list_invitations(
    ctx: Context, *, status: InvitationStatus | None, first: int | None, after: str | None
) -> Page[Invitation]:
    qs = practice_invitations(ctx)
    now = ctx.clock.now()
    if status == InvitationStatus.PENDING:
        qs = qs.filter(status=InvitationStatus.PENDING, expires_at__gt=now)
    elif status == InvitationStatus.EXPIRED:
        qs = qs.filter(status=InvitationStatus.PENDING, expires_at__lte=now)
    elif status is not None:
        qs = qs.filter(status=status)
    return await paginate(qs, order=ORDER, first=first, after=after)


async def get_invitation(ctx: Context, invitation_id: uuid.UUID) -> Invitation | None:
    return ctx.own(await practice_invitations(ctx).filter(id=invitation_id).first())


async def require_invitation(ctx: Context, global_id: str, *, field: str = "input.invitationId") -> Invitation:
    invitation = await get_invitation(ctx, decode(global_id, "Invitation", field=field))
    if invitation is None:
        raise NotFound("no such invitation")
    return invitation


# ------------------------------------------------------------------ the mail


def _message(ctx: Context, invitation: Invitation, token: str) -> dict:
    viewer = ctx.require_viewer()
    practice = viewer.practice
    # The token travels in the fragment, which browsers never send to a server (so it stays out of access logs).
    link = f"{ctx.settings.app_base_url}/accept-invitation#token={token}"
    return {
        "recipient": invitation.email,
        "subject": f"You are invited to join {practice.name}",
        "body": (
            f"{viewer.member.name} invites you to join {practice.name} as {invitation.role.value.lower()}.\n\nAccept "
            f"the invitation here: {link}\n\nOr give this token to acceptInvitation: {token}\n\nThe invitation expires "
            f"at {invitation.expires_at:%Y-%m-%d %H:%M} UTC and works once."
        ),
        "practice_id": practice.id,
    }


# ------------------------------------------------------------------ changes


async def invite(
    ctx: Context,
    *,
    email: str,
    role: Role,
    plan_code: str | None,
    trainee_status: TraineeStatus | None,
    training_proof_valid_until: date | None,
    permissions: list[Permission] | None,
) -> Issued:
    """Invite ``email`` into the viewer's GROUP practice (MANAGE_MEMBERS; permissions only by the owner)."""
    viewer = ctx.require_viewer()
    require_group(viewer.practice)
    if permissions and viewer.role != Role.OWNER:
        raise Forbidden("only the owner may grant permissions with an invitation")
    email = validation.email(email)
    trainee_status = trainee_status or TraineeStatus.NONE
    plan = check_seat(role, plan_code, trainee_status)
    grants = sorted({Permission(p).value for p in permissions or ()})
    now = ctx.clock.now()
    token = new_secret()
    async with in_transaction() as conn:
        await subscriptions.lock_practice(viewer.practice.id, conn)
        _refuse_existing_account(
            await Member.filter(practice_id=viewer.practice.id, email=email).using_db(conn).first()
        )
        replaced = await practice_invitations(ctx).filter(email=email, status=InvitationStatus.PENDING).using_db(conn)
        if replaced:
            await (
                Invitation.filter(id__in=[r.id for r in replaced], practice_id=viewer.practice.id)
                .using_db(conn)
                .update(status=InvitationStatus.REVOKED, revoked_at=now)
            )
        invitation = await Invitation.create(
            id=uuid.uuid4(),
            practice_id=viewer.practice.id,
            email=email,
            role=role,
            plan_code=plan.code if plan else None,
            trainee_status=trainee_status,
            training_proof_valid_until=training_proof_valid_until,
            permissions=grants,
            token_hash=hash_secret(token),
            invited_by_id=viewer.member.id,
            created_at=now,
            expires_at=now + ctx.settings.invitation_ttl,
            using_db=conn,
        )
        await outbox.enqueue(ctx, connection=conn, **_message(ctx, invitation, token))
        gid = encode("Invitation", invitation.id)
        events = [
            audit.PendingEvent("invitation.revoked", encode("Invitation", r.id), {"replacedBy": gid}) for r in replaced
        ]
        events.append(
            audit.PendingEvent(
                "invitation.created", gid, {"role": role.value, "plan": invitation.plan_code, "permissions": grants}
            )
        )
        await audit.record_many(ctx, events)
    return Issued(invitation, token)


async def resend(ctx: Context, invitation_id: str) -> Issued:
    """A new token and a new expiry for a pending (or expired) invitation; the old token stops working.

    The new token is the invitation's whole value, permissions included: an invitation that carries permissions is
    resent by the owner alone (as only the owner may put them on one), and a refusal leaves the old token working."""
    invitation = await require_invitation(ctx, invitation_id)
    if invitation.permissions and ctx.require_viewer().role != Role.OWNER:
        raise Forbidden("only the owner may resend an invitation that grants permissions")
    now = ctx.clock.now()
    token = new_secret()
    async with in_transaction() as conn:
        updated = (
            await Invitation.filter(
                id=invitation.id, practice_id=invitation.practice_id, status=InvitationStatus.PENDING
            )
            .using_db(conn)
            .update(token_hash=hash_secret(token), expires_at=now + ctx.settings.invitation_ttl)
        )
        if not updated:
            raise Conflict(f"this invitation is {invitation.status.value.lower()}: invite again instead")
        invitation.token_hash, invitation.expires_at = hash_secret(token), now + ctx.settings.invitation_ttl
        await outbox.enqueue(ctx, connection=conn, **_message(ctx, invitation, token))
        await audit.record(ctx, "invitation.resent", encode("Invitation", invitation.id))
    return Issued(invitation, token)


async def revoke(ctx: Context, invitation_id: str) -> Invitation:
    """Kill a pending (or expired) invitation for good."""
    invitation = await require_invitation(ctx, invitation_id)
    now = ctx.clock.now()
    async with in_transaction() as conn:
        updated = (
            await Invitation.filter(
                id=invitation.id, practice_id=invitation.practice_id, status=InvitationStatus.PENDING
            )
            .using_db(conn)
            .update(status=InvitationStatus.REVOKED, revoked_at=now)
        )
        if not updated:
            raise Conflict(f"this invitation is already {invitation.status.value.lower()}")
        await audit.record(ctx, "invitation.revoked", encode("Invitation", invitation.id))
    invitation.status, invitation.revoked_at = InvitationStatus.REVOKED, now
    return invitation


async def accept(ctx: Context, *, token: str, name: str, password: str) -> SignedIn:
    """Create the invitee's account in the inviting practice as the invitation says, sign it in, and charge a
    pro-rated seat where one is due. The token works once: the invitation is claimed with a conditional update
    under the practice's lock, so of two concurrent accepts exactly one creates a member."""
    # Nobody is signed in until the new member is: a caller's own session plays no part here.
    ctx = replace(ctx, viewer=None)
    name = validation.text(name, field="input.name")
    validation.password_length(password)
    token_hash = hash_secret(token or "")
    # Guessing tokens is throttled per client address (and per token); only failures count.
    await limits.check_guessing(ctx, f"invitation:{token_hash}")
    invitation = await Invitation.filter(token_hash=token_hash).select_related("practice").first()
    now = ctx.clock.now()
    if invitation is None or status_of(invitation, now) != InvitationStatus.PENDING:
        await limits.record_failure(ctx, f"invitation:{token_hash}")
        raise BadInput(INVALID_TOKEN, field="input.token")
    await validation.new_password(password, about=(name, invitation.email, invitation.practice.name))
    password_hash = await passwords.hash_password_async(password)
    async with in_transaction() as conn:
        practice = await subscriptions.lock_practice(invitation.practice_id, conn)
        claimed = (
            await Invitation.filter(
                id=invitation.id, token_hash=token_hash, status=InvitationStatus.PENDING, expires_at__gt=now
            )
            .using_db(conn)
            .update(status=InvitationStatus.ACCEPTED, accepted_at=now)
        )
        if not claimed:
            raise BadInput(INVALID_TOKEN, field="input.token")
        # Periods that began before this member joined are renewed without them.
        await subscriptions.open_due_periods(ctx, practice, now, conn)
        member, events = await _account(invitation, name, password_hash, now, conn)
        await (
            Invitation.filter(id=invitation.id, practice_id=invitation.practice_id)
            .using_db(conn)
            .update(member_id=member.id)
        )
        member.practice = practice
        events.append(
            audit.PendingEvent(
                "invitation.accepted", encode("Invitation", invitation.id), {"member": encode("Member", member.id)}
            )
        )
        await audit.record_many(ctx, events, practice_id=practice.id, actor_id=member.id)
        await subscriptions.charge_seat(ctx, practice, member, now, conn, actor_id=member.id)
        signed_in = await start_session(ctx, member, connection=conn)
    return signed_in


FORMER_MEMBER = (
    "this email belongs to a former member of the practice: bring them back on their own account with reactivateMember"
)


def _refuse_existing_account(existing: Member | None) -> None:
    """An invitation only ever creates an account. An email is unique in a practice, so an invitation for the email of
    a former (deactivated) member would hand their account, with its history, to whoever holds the token: a former
    member comes back only through reactivateMember, on their own password."""
    if existing is None:
        return
    if existing.status == MemberStatus.ACTIVE:
        raise Conflict("this email already belongs to an active member of the practice")
    raise Conflict(FORMER_MEMBER)


async def _account(
    invitation: Invitation, name: str, password_hash: str, now: datetime, conn: BaseDBAsyncClient
) -> tuple[Member, list[audit.PendingEvent]]:
    """The member the invitation creates: always a new account. An email that has one in the practice (active, or
    deactivated: an invitation made before inviting such an email was refused) is CONFLICT, and the accept changes
    nothing."""
    _refuse_existing_account(
        await Member.filter(practice_id=invitation.practice_id, email=invitation.email).using_db(conn).first()
    )
    member = await Member.create(
        id=uuid.uuid4(),
        practice_id=invitation.practice_id,
        email=invitation.email,
        created_at=now,
        using_db=conn,
        name=name,
        password_hash=password_hash,
        role=invitation.role,
        permissions=list(invitation.permissions),
        plan_code=invitation.plan_code,
        trainee_status=invitation.trainee_status,
        training_proof_valid_until=invitation.training_proof_valid_until,
    )
    return member, [audit.PendingEvent("member.created", encode("Member", member.id), {"role": member.role.value})]
