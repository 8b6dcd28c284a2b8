"""The practice's subscription: the shared trial, monthly periods, renewals and pro-rated seats.

The trial is the practice's own (Practice.trial_started_at / trial_ends_at, set once by signUp): while it runs
every member is covered and nothing is charged. When it ends, or when the owner starts the subscription (which
ends it at once), monthly periods start from that moment, each opened with a RENEWAL charge covering every
license held at its start. A seat that becomes dearer during a paid period (a member joins, an administrator
becomes a clinician, a move to a dearer plan) is charged the difference for the rest of the period.

Concurrency: every write that can change what a practice owes runs under the practice's row lock
(``lock_practice``), and first opens every period that has begun (``open_due_periods``), so a seat change never
lands in a period whose renewal is still to be computed. SubscriptionPeriod is unique per (practice, index): a
period, and so its renewal, exists once however many billing runs race.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from errors import Conflict
from models import Member, PeriodSeat, Practice, Subscription, SubscriptionCharge, SubscriptionPeriod
from models.enums import MemberStatus, Role, TraineeStatus
from models.subscriptions import SubscriptionChargeKind, SubscriptionStatus
from resolvers import audit
from resolvers.clock import FrozenClock
from resolvers.context import Context
from resolvers.ids import encode
from resolvers.members import require_member
from resolvers.money import Money, round_cents
from resolvers.pagination import Page, paginate
from resolvers.pricing import Period, Price, Seat, charge_now, check_seat, period, period_at, price, total, zero

log = logging.getLogger("groups_api.subscriptions")

CHARGE_ORDER = ["-created_at", "-id"]


# ------------------------------------------------------------------ the trial and the periods


def trial_active(practice: Practice, now: datetime) -> bool:
    return (
        practice.trial_started_at is not None
        and practice.trial_ends_at is not None
        and practice.trial_started_at <= now < practice.trial_ends_at
    )


def first_anchor(practice: Practice) -> datetime:
    """Where paid periods start: the end of the trial (for a practice created without one, its creation)."""
    return practice.trial_ends_at or practice.created_at


def paid_period(practice: Practice, subscription: Subscription | None, now: datetime) -> Period | None:
    """The paid period holding ``now``, whether opened yet or not; None while the trial runs."""
    if subscription is None and trial_active(practice, now):
        return None
    anchor = subscription.anchor if subscription else first_anchor(practice)
    return period_at(anchor, now) if anchor <= now else None


def licensed_at(member: Member, moment: datetime) -> bool:
    """A member holds a license in a period that starts at ``moment`` if they joined by then and were not yet
    deactivated (a deactivated member holds none from the next period on)."""
    if member.created_at > moment:
        return False
    return member.status == MemberStatus.ACTIVE or (
        member.deactivated_at is not None and member.deactivated_at > moment
    )


def renewal_price(member: Member, start: datetime) -> Money | None:
    """A member's monthly price in the period starting at ``start`` (priced on its first day), or None."""
    return price(Seat.of(member), start.date()).monthly_price if licensed_at(member, start) else None


async def lock_practice(practice_id: uuid.UUID, connection: BaseDBAsyncClient) -> Practice:
    """Lock the practice row for the rest of the transaction (PostgreSQL; SQLite serialises writes anyway).

    FOR NO KEY UPDATE: it serialises the practice's seat changes as FOR UPDATE would, but leaves the KEY SHARE lock
    that every insert of a row referencing the practice takes (an audit event, a ledger entry) free. With FOR UPDATE,
    a writer holding this lock and waiting for the audit chain head deadlocked with an audit append holding the head
    and inserting its event."""
    return await Practice.select_for_update(no_key=True).using_db(connection).get(id=practice_id)


async def open_due_periods(
    ctx: Context, practice: Practice, now: datetime, connection: BaseDBAsyncClient
) -> list[SubscriptionCharge]:
    """Open every period that has begun by ``now``, each with its RENEWAL charge. Call under ``lock_practice``.

    Idempotent: a period already opened is never opened again. Returns the renewal charges created.
    """
    subscription = await Subscription.filter(practice_id=practice.id).using_db(connection).first()
    if subscription is None:
        if trial_active(practice, now) or first_anchor(practice) > now:
            return []
        anchor, index = first_anchor(practice), 0
    else:
        if subscription.current_period_end > now:
            return []
        anchor, index = subscription.anchor, subscription.current_period_index + 1
    members = await Member.filter(practice_id=practice.id).using_db(connection).order_by("created_at", "id")
    charges, events = [], []
    current = period(anchor, index)
    while current.start <= now:
        charge = await _open_period(practice, current, members, now, connection)
        charges.append(charge)
        events.append(
            audit.PendingEvent(
                "subscription.renewed",
                encode("SubscriptionCharge", charge.id),
                {"period": current.index, "periodStart": current.start.isoformat(), "amount": str(charge.amount)},
            )
        )
        last, current = current, period(anchor, current.index + 1)
    fields = {"current_period_index": last.index, "current_period_start": last.start, "current_period_end": last.end}
    if subscription is None:
        await Subscription.create(
            id=uuid.uuid4(), practice_id=practice.id, anchor=anchor, created_at=now, using_db=connection, **fields
        )
    else:
        await Subscription.filter(id=subscription.id, practice_id=practice.id).using_db(connection).update(**fields)
    await audit.record_many(ctx, events, practice_id=practice.id)
    return charges


async def _open_period(
    practice: Practice, current: Period, members: list[Member], now: datetime, connection: BaseDBAsyncClient
) -> SubscriptionCharge:
    row = await SubscriptionPeriod.create(
        id=uuid.uuid4(),
        practice_id=practice.id,
        index=current.index,
        starts_at=current.start,
        ends_at=current.end,
        created_at=now,
        using_db=connection,
    )
    seats = [(m, p) for m in members if (p := renewal_price(m, current.start)) is not None]
    await PeriodSeat.bulk_create(
        [PeriodSeat(id=uuid.uuid4(), period_id=row.id, member_id=m.id, monthly_price=p.amount) for m, p in seats],
        using_db=connection,
    )
    amount = total([p for _, p in seats])
    charge = await SubscriptionCharge.create(
        id=uuid.uuid4(),
        practice_id=practice.id,
        period_id=row.id,
        member_id=None,
        kind=SubscriptionChargeKind.RENEWAL,
        amount=round_cents(amount.amount),
        currency=amount.currency,
        description=f"Renewal {current.start:%Y-%m-%d} to {current.end:%Y-%m-%d}: {len(seats)} license(s)",
        created_at=now,
        using_db=connection,
    )
    charge.period = row
    return charge


async def charge_seat(
    ctx: Context,
    practice: Practice,
    member: Member,
    now: datetime,
    connection: BaseDBAsyncClient,
    *,
    actor_id: uuid.UUID | None = None,
) -> SubscriptionCharge | None:
    """Charge ``member``'s seat, as it now stands, for what it costs above what was paid for the current period.

    Call under ``lock_practice`` after ``open_due_periods``. Nothing during the trial, for a free seat or for a
    cheaper one (which takes effect at the next period, with no refund).
    """
    subscription = await Subscription.filter(practice_id=practice.id).using_db(connection).first()
    if subscription is None or member.status != MemberStatus.ACTIVE:
        return None
    row = await SubscriptionPeriod.get(
        practice_id=practice.id, index=subscription.current_period_index, using_db=connection
    )
    current = Period(row.index, row.starts_at, row.ends_at)
    seat = await PeriodSeat.filter(period_id=row.id, member_id=member.id).using_db(connection).first()
    quoted = price(Seat.of(member), now.date())
    paid = Money(seat.monthly_price, quoted.monthly_price.currency) if seat else zero()
    if quoted.monthly_price.amount <= paid.amount:
        return None
    if seat is None:
        await PeriodSeat.create(
            id=uuid.uuid4(),
            period_id=row.id,
            member_id=member.id,
            monthly_price=quoted.monthly_price.amount,
            using_db=connection,
        )
    else:
        await PeriodSeat.filter(id=seat.id).using_db(connection).update(monthly_price=quoted.monthly_price.amount)
    amount = charge_now(quoted.monthly_price, paid, current, now)
    if amount.amount <= 0:
        return None
    plan = quoted.plan.name if quoted.plan else "seat"
    charge = await SubscriptionCharge.create(
        id=uuid.uuid4(),
        practice_id=practice.id,
        period_id=row.id,
        member_id=member.id,
        kind=SubscriptionChargeKind.PRORATED_SEAT,
        amount=amount.amount,
        currency=amount.currency,
        description=(
            f"{plan} for {member.name}, pro-rated from {now:%Y-%m-%d %H:%M} to {row.ends_at:%Y-%m-%d %H:%M} UTC"
        ),
        created_at=now,
        using_db=connection,
    )
    charge.period = row
    await audit.record_many(
        ctx,
        [
            audit.PendingEvent(
                "subscription.seat_charged",
                encode("SubscriptionCharge", charge.id),
                {
                    "member": encode("Member", member.id),
                    "amount": str(charge.amount),
                    "monthlyPrice": str(quoted.monthly_price.amount),
                },
            )
        ],
        practice_id=practice.id,
        actor_id=actor_id,
    )
    return charge


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Trial:
    started_at: datetime
    ends_at: datetime
    is_active: bool


@dataclass(frozen=True)
class License:
    member: Member
    price: Price


@dataclass(frozen=True)
class Overview:
    practice: Practice
    status: SubscriptionStatus
    trial: Trial | None
    period_start: datetime
    period_end: datetime
    licenses: list[License]

    @property
    def monthly_total(self) -> Money:
        return total([lic.price.monthly_price for lic in self.licenses])


def license_of(ctx: Context, member: Member) -> License | None:
    """The license an active member holds today; None for a deactivated one."""
    if member.status != MemberStatus.ACTIVE:
        return None
    return License(member, price(Seat.of(member), ctx.clock.today()))


async def overview(ctx: Context) -> Overview:
    practice = ctx.require_viewer().practice
    now = ctx.clock.now()
    subscription = await Subscription.filter(practice_id=practice.id).first()
    trial = None
    if practice.trial_started_at is not None and practice.trial_ends_at is not None:
        trial = Trial(practice.trial_started_at, practice.trial_ends_at, trial_active(practice, now))
    current = paid_period(practice, subscription, now)
    if current is None:
        status = SubscriptionStatus.TRIALING
        start, end = (trial.started_at, trial.ends_at) if trial else (practice.created_at, first_anchor(practice))
    else:
        status, start, end = SubscriptionStatus.ACTIVE, current.start, current.end
    members = await Member.filter(practice_id=practice.id, status=MemberStatus.ACTIVE).order_by("created_at", "id")
    licenses = [lic for m in members if (lic := license_of(ctx, m)) is not None]
    return Overview(practice, status, trial, start, end, licenses)


def practice_charges(ctx: Context) -> QuerySet[SubscriptionCharge]:
    """The one access query for subscription charges: the viewer's practice."""
    return SubscriptionCharge.filter(practice_id=ctx.require_viewer().practice.id).select_related("period")


async def list_charges(ctx: Context, *, first: int | None, after: str | None) -> Page[SubscriptionCharge]:
    return await paginate(practice_charges(ctx), order=CHARGE_ORDER, first=first, after=after)


async def get_charge(ctx: Context, charge_id: uuid.UUID) -> SubscriptionCharge | None:
    return ctx.own(await practice_charges(ctx).filter(id=charge_id).first())


@dataclass(frozen=True)
class Quote:
    price: Price
    charge_now: Money


async def seat_quote(
    ctx: Context,
    *,
    role: Role,
    plan_code: str | None,
    trainee_status: TraineeStatus | None,
    training_proof_valid_until: date | None,
    member_id: str | None,
) -> Quote:
    """What a seat would cost a month and what would be charged now, before anything is committed. With
    ``member_id``, a change to that member's seat: only the part above what was paid for this period."""
    trainee_status = trainee_status or TraineeStatus.NONE
    check_seat(role, plan_code, trainee_status, prefix="")
    now = ctx.clock.now()
    quoted = price(Seat(role, plan_code, trainee_status, training_proof_valid_until), now.date())
    member = await require_member(ctx, member_id, field="memberId") if member_id is not None else None
    practice = ctx.require_viewer().practice
    subscription = await Subscription.filter(practice_id=practice.id).first()
    current = paid_period(practice, subscription, now)
    paid = zero()
    if member is not None and current is not None:
        paid = await _paid_for(practice, subscription, member, current) or paid
    return Quote(quoted, charge_now(quoted.monthly_price, paid, current, now))


async def _paid_for(
    practice: Practice, subscription: Subscription | None, member: Member, current: Period
) -> Money | None:
    """What ``member``'s seat is paid at for ``current``; for a period the billing run has not opened yet, what its
    renewal will charge."""
    if subscription is not None and subscription.current_period_index >= current.index:
        seat = await PeriodSeat.filter(
            period__practice_id=practice.id, period__index=current.index, member_id=member.id
        ).first()
        return Money(seat.monthly_price) if seat else None
    return renewal_price(member, current.start)


# ------------------------------------------------------------------ writing


async def start_subscription(ctx: Context) -> tuple[Overview, SubscriptionCharge]:
    """End the trial now and open the first period with its renewal (owner only; once per practice, ever)."""
    viewer = ctx.require_viewer()
    practice_id = viewer.practice.id
    now = ctx.clock.now()
    async with in_transaction() as conn:
        practice = await lock_practice(practice_id, conn)
        if await Subscription.filter(practice_id=practice_id).using_db(conn).exists() or not trial_active(
            practice, now
        ):
            raise Conflict("the subscription has already started")
        await Practice.filter(id=practice_id).using_db(conn).update(trial_ends_at=now)
        practice.trial_ends_at = now
        await audit.record(ctx, "subscription.started", encode("Practice", practice_id), trialEndedAt=now.isoformat())
        (charge,) = await open_due_periods(ctx, practice, now, conn)
    viewer.practice.trial_ends_at = now
    return await overview(ctx), charge


async def run_billing(now: datetime) -> int:
    """The scheduler's job (``groups-api billing run``): open every period that has begun, with its renewal.

    Each practice in its own transaction under its row lock, so two runs at once never charge twice. Returns the
    number of RENEWAL charges created. A practice that fails is logged and left for the next run; the run then
    raises once the others are done.
    """
    # A job has no request: no viewer, settings or codec; its audit events carry no actor and a run id.
    # Nothing a billing run calls reads settings or the codec, which only requests carry.
    run = f"billing-run-{uuid.uuid4().hex[:12]}"
    ctx = Context(settings=None, clock=FrozenClock(now), codec=None, request_id=run)  # type: ignore[arg-type]
    # Tortoise types a flat values_list as tuples; these are lists of ids.
    ended = cast(
        list[uuid.UUID], await Subscription.filter(current_period_end__lte=now).values_list("practice_id", flat=True)
    )
    trial_over = cast(
        list[uuid.UUID],
        await Practice.filter(
            Q(trial_ends_at__lte=now) | Q(trial_ends_at__isnull=True), subscription__id__isnull=True
        ).values_list("id", flat=True),
    )
    created, failed = 0, []
    for practice_id in sorted(set(ended) | set(trial_over)):
        try:
            async with in_transaction() as conn:
                practice = await lock_practice(practice_id, conn)
                created += len(await open_due_periods(ctx, practice, now, conn))
        except Exception:
            log.exception("billing run: practice %s failed", practice_id)
            failed.append(practice_id)
    if failed:
        raise RuntimeError(f"billing run: {len(failed)} practice(s) failed, {created} renewal charge(s) created")
    return created
