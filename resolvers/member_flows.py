"""The flows that change members: role, plan and trainee changes, permissions, deactivation (moving the member's
charts to a successor) and reactivation, and the transfer of ownership.

Above ``members`` (the lookups and row rules), ``charts`` and ``subscriptions``: a flow moves charts and seats, so it
imports those areas, and none of them imports it (as Dispatch keeps ``flows.py`` above each area's ``service.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import BadInput, Conflict, Forbidden
from models import ApiToken, Member, Practice, SubscriptionCharge
from models.enums import MemberStatus, Permission, Role, TraineeStatus
from resolvers import accounts, audit, charts, sessions, subscriptions
from resolvers.context import Context
from resolvers.ids import decode, encode
from resolvers.members import require_member
from resolvers.plans import require_plan
from resolvers.pricing import Seat, check_seat


def _not_self_or_owner(viewer: Viewer, member: Member, action: str) -> None:
    """One guard for every member change: nobody changes themself this way, and nobody touches the owner."""
    if member.id == viewer.member.id:
        raise Forbidden(f"you cannot {action} yourself")
    if member.role == Role.OWNER:
        passive = (
            action.replace("change", "changed")
            .replace("deactivate", "deactivated")
            .replace("reactivate", "reactivated")
        )
        raise Forbidden(f"the owner cannot be {passive}")


async def change_role(
    ctx: Context, member: Member, role: Role, *, plan_code: str | None, connection: BaseDBAsyncClient
) -> list[audit.PendingEvent]:
    """Validate and apply a role change on ``member`` (not yet saved). Returns its audit events."""
    if role == Role.OWNER:
        raise BadInput("the OWNER role can be neither given nor taken", field="input.role")
    if role == member.role:
        return []
    if role == Role.CLINICIAN and not (plan_code or member.plan_code):
        raise BadInput("a clinician needs a plan: give planCode", field="input.planCode")
    if role == Role.ADMINISTRATOR and plan_code:
        raise BadInput("administrators have no plan", field="input.planCode")
    previous = member.role
    member.role = role
    if role == Role.ADMINISTRATOR:
        member.plan_code = None
        # A former clinician's charts stay assigned to them only while they are a clinician.
        await charts.unassign_all(member.id, connection=connection)
    return [
        audit.PendingEvent(
            "member.role_changed", encode("Member", member.id), {"from": previous.value, "to": role.value}
        )
    ]


async def set_permissions(ctx: Context, member_id: str, permissions: list[Permission]) -> Member:
    viewer = ctx.require_viewer()
    member = await require_member(ctx, member_id)
    _not_self_or_owner(viewer, member, "change the permissions of")
    grants = sorted({Permission(p).value for p in permissions})
    async with in_transaction() as conn:
        # Not on the owner, even one who became the owner since it was read (transferOwnership).
        updated = (
            await Member.filter(id=member.id, practice_id=viewer.practice.id)
            .exclude(role=Role.OWNER)
            .using_db(conn)
            .update(permissions=grants)
        )
        if not updated:
            raise Forbidden("the owner cannot be changed")
        await audit.record(ctx, "member.permissions_changed", encode("Member", member.id), permissions=grants)
    member.permissions = grants
    return member


async def deactivate(ctx: Context, member_id: str, reassign_charts_to: str | None) -> Member:
    """Deactivate now: sessions and API tokens stop on the next request; charts move when a successor is named.

    Moving charts hands their notes to the successor, so it needs ASSIGN_CHARTS besides MANAGE_MEMBERS (as
    assignChart does), whoever the successor is: the caller can name themself only when they hold it. Each chart
    moved is audited as unassignChart and assignChart would record it."""
    viewer = ctx.require_viewer()
    if reassign_charts_to is not None and not viewer.has(Permission.ASSIGN_CHARTS):
        raise Forbidden("moving a member's charts (reassignChartsTo) needs the permission ASSIGN_CHARTS")
    member = await require_member(ctx, member_id)
    _not_self_or_owner(viewer, member, "deactivate")
    if member.status == MemberStatus.DEACTIVATED:
        raise Conflict("this member is already deactivated")
    successor = None
    if reassign_charts_to is not None:
        successor = await require_member(ctx, reassign_charts_to, field="input.reassignChartsTo")
        if (
            successor.id == member.id
            or successor.status != MemberStatus.ACTIVE
            or successor.role not in (Role.OWNER, Role.CLINICIAN)
        ):
            raise BadInput(
                "reassignChartsTo must be another active clinician or the owner", field="input.reassignChartsTo"
            )
    now = ctx.clock.now()
    async with in_transaction() as conn:
        # Never the owner, even one who became the owner since it was read (transferOwnership).
        updated = (
            await Member.filter(id=member.id, practice_id=viewer.practice.id, status=MemberStatus.ACTIVE)
            .exclude(role=Role.OWNER)
            .using_db(conn)
            .update(status=MemberStatus.DEACTIVATED, deactivated_at=now)
        )
        if not updated:
            if await Member.filter(id=member.id, role=Role.OWNER).using_db(conn).exists():
                raise Forbidden("the owner cannot be deactivated")
            raise Conflict("this member is already deactivated")
        await sessions.revoke_member_sessions(member.id, now, connection=conn)
        await (
            ApiToken.filter(created_by_id=member.id, practice_id=viewer.practice.id, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=now)
        )
        events = [audit.PendingEvent("member.deactivated", encode("Member", member.id))]
        if successor is not None:
            moved = await charts.reassign_all(member.id, successor.id, now=now, connection=conn)
            events.append(
                audit.PendingEvent(
                    "chart.reassigned",
                    encode("Member", successor.id),
                    {"from": encode("Member", member.id), "charts": len(moved.chart_ids)},
                )
            )
            events += moved.events(via="deactivateMember")
        await audit.record_many(ctx, events)
    member.status, member.deactivated_at = MemberStatus.DEACTIVATED, now
    return member


@dataclass(frozen=True)
class Updated:
    member: Member
    # The pro-rated charge the change caused, if any.
    charge: SubscriptionCharge | None


async def update(
    ctx: Context,
    *,
    member_id: str,
    role: Role | None,
    plan_code: str | None,
    trainee_status: TraineeStatus | None,
    training_proof_valid_until: date | None,
    clear_training_proof: bool,
) -> Updated:
    """Change a member's role, plan or trainee fields (MANAGE_MEMBERS).

    The seat must stay valid (pricing.check_seat: a non-prescriber trainee cannot be on a prescriber plan). A seat
    that becomes dearer during a paid period is charged the difference for the rest of it; a cheaper or free one
    takes effect at the next period, with no refund.
    """
    viewer = ctx.require_viewer()
    member = await require_member(ctx, member_id)
    _not_self_or_owner(viewer, member, "change")
    if plan_code is not None:
        require_plan(plan_code)
    now = ctx.clock.now()
    in_practice = {"id": member.id, "practice_id": viewer.practice.id}
    async with in_transaction() as conn:
        practice = await subscriptions.lock_practice(viewer.practice.id, conn)
        # The member as committed now, locked: the change applies to the row as it is (not as read before the
        # practice lock, which a concurrent change could have overwritten), and an assignChart waits for it.
        member = await Member.select_for_update(no_key=True).using_db(conn).get(**in_practice)
        if member.status != MemberStatus.ACTIVE:
            raise Conflict("a deactivated member cannot be changed")
        _not_self_or_owner(viewer, member, "change")  # again: ownership may have moved to them meanwhile
        before = Seat.of(member)
        # Periods that began before this change are renewed with the seat as it was.
        await subscriptions.open_due_periods(ctx, practice, now, conn)
        events = []
        if role is not None:
            events += await change_role(ctx, member, role, plan_code=plan_code, connection=conn)
        if plan_code is not None:
            if member.role == Role.ADMINISTRATOR:
                raise BadInput("administrators have no plan", field="input.planCode")
            if plan_code != member.plan_code:
                events.append(
                    audit.PendingEvent(
                        "member.plan_changed", encode("Member", member.id), {"from": member.plan_code, "to": plan_code}
                    )
                )
                member.plan_code = plan_code
        if trainee_status is not None:
            member.trainee_status = trainee_status
        if clear_training_proof:
            if training_proof_valid_until is not None:
                raise BadInput(
                    "give trainingProofValidUntil or clearTrainingProof, not both", field="input.clearTrainingProof"
                )
            member.training_proof_valid_until = None
        elif training_proof_valid_until is not None:
            member.training_proof_valid_until = training_proof_valid_until
        if trainee_status is not None or training_proof_valid_until is not None or clear_training_proof:
            events.append(audit.PendingEvent("member.trainee_status_changed", encode("Member", member.id)))
        check_seat(member.role, member.plan_code, member.trainee_status)
        await (
            Member.filter(**in_practice)
            .using_db(conn)
            .update(
                role=member.role,
                plan_code=member.plan_code,
                trainee_status=member.trainee_status,
                training_proof_valid_until=member.training_proof_valid_until,
            )
        )
        await audit.record_many(ctx, events)
        charge = (
            await subscriptions.charge_seat(ctx, practice, member, now, conn) if Seat.of(member) != before else None
        )
    return Updated(member, charge)


async def reactivate(ctx: Context, member_id: str) -> Updated:
    """Bring a deactivated member back on their former account (MANAGE_MEMBERS): the same id, their own password,
    their former role, plan, trainee fields and grants. Nothing else comes back: deactivation ended their sessions and
    API tokens for good. The only way back for a former member (an invitation never reactivates an account).

    Grants come back only through the owner, who alone gives them (setMemberPermissions, inviteMember with
    permissions): a member who holds any is reactivated by the owner alone (FORBIDDEN for anyone else). The seat is
    charged as a join's is (subscriptions.charge_seat under the practice lock, after the periods that began while they
    were away are opened without them): the part of its price not yet paid for the current period, pro rata."""
    viewer = ctx.require_viewer()
    member = await require_member(ctx, member_id)
    _not_self_or_owner(viewer, member, "reactivate")
    now = ctx.clock.now()
    async with in_transaction() as conn:
        practice = await subscriptions.lock_practice(member.practice_id, conn)
        # The row as committed now, locked: two reactivations at once bring the member back (and charge) once.
        member = await Member.select_for_update(no_key=True).using_db(conn).get(id=member.id, practice_id=practice.id)
        if member.status != MemberStatus.DEACTIVATED:
            raise Conflict("this member is active: only a deactivated member can be reactivated")
        if member.permissions and viewer.role != Role.OWNER:
            raise Forbidden("only the owner may reactivate a member who holds permissions")
        await subscriptions.open_due_periods(ctx, practice, now, conn)
        await (
            Member.filter(id=member.id, practice_id=practice.id)
            .using_db(conn)
            .update(status=MemberStatus.ACTIVE, deactivated_at=None)
        )
        member.status, member.deactivated_at = MemberStatus.ACTIVE, None
        await audit.record_many(
            ctx,
            [
                audit.PendingEvent(
                    "member.reactivated",
                    encode("Member", member.id),
                    {"role": member.role.value, "plan": member.plan_code, "permissions": sorted(member.permissions)},
                )
            ],
        )
        charge = await subscriptions.charge_seat(ctx, practice, member, now, conn)
    return Updated(member, charge)


# ------------------------------------------------------------------ ownership


def _successor_check(successor: Member | None, owner: Member) -> Member:
    if (
        successor is None
        or successor.id == owner.id
        or successor.role != Role.CLINICIAN
        or successor.status != MemberStatus.ACTIVE
    ):
        raise BadInput("the new owner must be an active clinician of the practice", field="input.memberId")
    return successor


async def transfer_ownership(ctx: Context, *, member_id: str, password: str) -> Practice:
    """Hand the practice to an active clinician (the owner alone, their password asked again, throttled like log-in).

    The new owner holds every permission (their explicit grants are cleared, as an owner's are); the old owner becomes
    a clinician on the plan they had, with no grants, and keeps their chart assignments. Pricing does not change: an
    owner's seat and a clinician's are priced alike (pricing.price). Exactly one owner at all times: both rows change
    in one transaction under the practice's lock, after checking again, inside it, that the caller is still the owner
    and the successor still an active clinician (of two transfers at once, the second finds the caller no owner)."""
    viewer = ctx.require_viewer()
    owner = viewer.member
    await accounts.check_password(ctx, owner, password, field="input.password")
    _successor_check(await require_member(ctx, member_id), owner)
    successor_id = decode(member_id, "Member", field="input.memberId")
    async with in_transaction() as conn:
        practice = await subscriptions.lock_practice(viewer.practice.id, conn)
        rows = {
            m.id: m
            for m in await Member.select_for_update(no_key=True)
            .using_db(conn)
            .filter(id__in=[owner.id, successor_id], practice_id=practice.id)
        }
        current = rows.get(owner.id)
        if current is None or current.role != Role.OWNER or current.status != MemberStatus.ACTIVE:
            raise Forbidden("you are no longer the owner of this practice")
        successor = _successor_check(rows.get(successor_id), current)
        await (
            Member.filter(id=current.id, practice_id=practice.id)
            .using_db(conn)
            .update(role=Role.CLINICIAN, permissions=[])
        )
        await (
            Member.filter(id=successor.id, practice_id=practice.id)
            .using_db(conn)
            .update(role=Role.OWNER, permissions=[])
        )
        old, new = encode("Member", current.id), encode("Member", successor.id)
        await audit.record_many(
            ctx,
            [
                audit.PendingEvent(
                    "practice.ownership_transferred", encode("Practice", practice.id), {"from": old, "to": new}
                ),
                audit.PendingEvent("member.role_changed", old, {"from": Role.OWNER.value, "to": Role.CLINICIAN.value}),
                audit.PendingEvent("member.role_changed", new, {"from": Role.CLINICIAN.value, "to": Role.OWNER.value}),
            ],
        )
    return practice
