"""Pricing as pure functions: a seat and a moment in, a price, a billing period and a charge out.

Nothing here reads the database or the clock, so ``seatQuote`` and the real charges are the same arithmetic and
tests call it directly. Prices stay exact; only ``charge`` rounds (half-up to the cent, in resolvers.money).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from dateutil.relativedelta import relativedelta

from errors import BadInput
from models.enums import PlanCategory, Role, TraineeStatus
from resolvers.money import CENT, DEFAULT_CURRENCY, Money, round_cents
from resolvers.plans import Plan, find_plan, require_plan

if TYPE_CHECKING:
    from models import Invitation, Member

HALF = Decimal("0.5")
SECOND = timedelta(seconds=1)


class PriceReason(str, Enum):
    FULL_PRICE = "FULL_PRICE"
    ADMINISTRATOR_FREE = "ADMINISTRATOR_FREE"
    TRAINEE_FREE = "TRAINEE_FREE"
    PRESCRIBER_TRAINEE_HALF_PRICE = "PRESCRIBER_TRAINEE_HALF_PRICE"


@dataclass(frozen=True)
class Seat:
    """Everything a license's price depends on."""

    role: Role
    plan_code: str | None
    trainee_status: TraineeStatus = TraineeStatus.NONE
    proof_valid_until: date | None = None

    @classmethod
    def of(cls, member: Member | Invitation) -> Seat:
        """The seat of a Member (or Invitation) row."""
        return cls(member.role, member.plan_code, member.trainee_status, member.training_proof_valid_until)

    @property
    def plan(self) -> Plan | None:
        return None if self.role == Role.ADMINISTRATOR else find_plan(self.plan_code)


@dataclass(frozen=True)
class Price:
    plan: Plan | None
    list_price: Money
    monthly_price: Money
    reason: PriceReason


@dataclass(frozen=True)
class Period:
    """Billing period ``index`` (0 is the first): [start, end)."""

    index: int
    start: datetime
    end: datetime


def exact(amount: Decimal) -> Decimal:
    """An exact amount shown with at least two decimals (44.5 -> 44.50; 24.995 stays 24.995)."""
    cents = amount.quantize(CENT)
    return cents if cents == amount else amount.normalize()


def zero() -> Money:
    return Money.zero(DEFAULT_CURRENCY)


def check_seat(
    role: Role, plan_code: str | None, trainee_status: TraineeStatus, *, prefix: str = "input."
) -> Plan | None:
    """The one validation of a seat being given: OWNER is never given; clinicians need a known plan; administrators
    have none; a non-prescriber trainee cannot be put on a prescriber plan. Returns the plan. BAD_USER_INPUT
    otherwise."""
    if role == Role.OWNER:
        raise BadInput("the OWNER role cannot be given", field=f"{prefix}role")
    if role == Role.ADMINISTRATOR:
        if plan_code:
            raise BadInput("administrators have no plan", field=f"{prefix}planCode")
        return None
    if not plan_code:
        raise BadInput("a clinician needs a plan: give planCode", field=f"{prefix}planCode")
    plan = require_plan(plan_code, field=f"{prefix}planCode")
    if trainee_status == TraineeStatus.NON_PRESCRIBER_TRAINEE and plan.category == PlanCategory.PRESCRIBER:
        raise BadInput("a non-prescriber trainee cannot be put on a prescriber plan", field=f"{prefix}planCode")
    return plan


def proof_valid(seat: Seat, on: date) -> bool:
    """Proof of training counts through its last valid day."""
    return seat.proof_valid_until is not None and seat.proof_valid_until >= on


def price(seat: Seat, on: date) -> Price:
    """The monthly price of ``seat`` on day ``on``.

    ADMINISTRATOR: free, whatever the person's job. OWNER and CLINICIAN: the plan's list price, except a
    NON_PRESCRIBER_TRAINEE with valid proof (free) and a PRESCRIBER_TRAINEE with valid proof on a PRESCRIBER plan
    (half price). Renewals price a period on its first day, so a proof that lapses mid-period costs full price
    from the next period on.
    """
    if seat.role == Role.ADMINISTRATOR:
        return Price(None, zero(), zero(), PriceReason.ADMINISTRATOR_FREE)
    plan = seat.plan
    if plan is None:
        raise ValueError(f"a {seat.role.value} seat has no plan ({seat.plan_code!r})")
    listed = plan.monthly_price
    if proof_valid(seat, on):
        if seat.trainee_status == TraineeStatus.NON_PRESCRIBER_TRAINEE:
            return Price(plan, listed, Money(exact(Decimal(0)), listed.currency), PriceReason.TRAINEE_FREE)
        if seat.trainee_status == TraineeStatus.PRESCRIBER_TRAINEE and plan.category == PlanCategory.PRESCRIBER:
            half = Money(exact(listed.amount * HALF), listed.currency)
            return Price(plan, listed, half, PriceReason.PRESCRIBER_TRAINEE_HALF_PRICE)
    return Price(plan, listed, listed, PriceReason.FULL_PRICE)


def total(prices: list[Money]) -> Money:
    """The exact sum of monthly prices (the practice's monthly total)."""
    result = zero()
    for amount in prices:
        result += amount
    return Money(exact(result.amount), result.currency)


# ------------------------------------------------------------------ periods


def period(anchor: datetime, index: int) -> Period:
    """Periods are monthly from ``anchor``, each computed from the anchor (Jan 31 -> Feb 28 -> Mar 31: no drift)."""
    return Period(index, anchor + relativedelta(months=index), anchor + relativedelta(months=index + 1))


def period_at(anchor: datetime, moment: datetime) -> Period:
    """The period holding ``moment`` (the first one for a moment before the anchor)."""
    index = max((moment.year - anchor.year) * 12 + moment.month - anchor.month - 1, 0)
    current = period(anchor, index)
    while current.end <= moment:
        current = period(anchor, current.index + 1)
    return current


def prorated(monthly: Decimal, current: Period, moment: datetime) -> Decimal:
    """The exact share of ``monthly`` for the rest of ``current`` from ``moment``."""
    left = max((current.end - moment) // SECOND, 0)
    length = (current.end - current.start) // SECOND
    return monthly * Decimal(min(left, length)) / Decimal(length)


def charge_now(new_monthly: Money, paid_monthly: Money, current: Period | None, moment: datetime) -> Money:
    """What a seat change costs now: the dearer part of the new price for the rest of the paid period, rounded
    half-up to the cent. Nothing outside a paid period (the trial), for a free seat, or for a cheaper one."""
    difference = new_monthly.amount - paid_monthly.amount
    if current is None or difference <= 0:
        return Money(Decimal("0.00"), new_monthly.currency)
    return Money(round_cents(prorated(difference, current, moment)), new_monthly.currency)
