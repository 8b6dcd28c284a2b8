"""The price rules as pure functions: the same arithmetic serves seatQuote and the real charges."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from errors import BadInput
from models.enums import Role, TraineeStatus
from resolvers.money import Money
from resolvers.pricing import (
    Period,
    PriceReason,
    Seat,
    charge_now,
    check_seat,
    period,
    period_at,
    price,
    prorated,
    total,
)

TODAY = date(2026, 4, 11)
APRIL = Period(0, datetime(2026, 4, 1, 9, tzinfo=UTC), datetime(2026, 5, 1, 9, tzinfo=UTC))  # 30 days


def clinician(plan: str, trainee: TraineeStatus = TraineeStatus.NONE, proof: date | None = None) -> Seat:
    return Seat(Role.CLINICIAN, plan, trainee, proof)


def test_two_clinicians_on_erx_lite_pay_178():
    prices = [price(clinician("erx-lite"), TODAY).monthly_price for _ in range(2)]
    assert total(prices) == Money(Decimal("178.00"), "USD")
    assert str(total(prices).amount) == "178.00"


def test_owner_and_clinician_pay_the_list_price():
    for role in (Role.OWNER, Role.CLINICIAN):
        quoted = price(Seat(role, "therapist-plus"), TODAY)
        assert (quoted.list_price.amount, quoted.monthly_price.amount, quoted.reason) == (
            Decimal("69.00"),
            Decimal("69.00"),
            PriceReason.FULL_PRICE,
        )


def test_prescriber_trainee_on_erx_lite_pays_half_44_50():
    quoted = price(clinician("erx-lite", TraineeStatus.PRESCRIBER_TRAINEE, TODAY), TODAY)
    assert quoted.reason == PriceReason.PRESCRIBER_TRAINEE_HALF_PRICE
    assert str(quoted.monthly_price.amount) == "44.50"
    assert quoted.list_price.amount == Decimal("89.00")


def test_prescriber_trainee_discount_is_for_prescriber_plans_only():
    quoted = price(clinician("therapist-plus", TraineeStatus.PRESCRIBER_TRAINEE, TODAY), TODAY)
    assert (quoted.monthly_price.amount, quoted.reason) == (Decimal("69.00"), PriceReason.FULL_PRICE)


def test_non_prescriber_trainee_with_valid_proof_is_free_through_the_last_day():
    seat = clinician("therapist-essential", TraineeStatus.NON_PRESCRIBER_TRAINEE, TODAY)
    on_last_day = price(seat, TODAY)
    assert (str(on_last_day.monthly_price.amount), on_last_day.reason) == ("0.00", PriceReason.TRAINEE_FREE)
    assert on_last_day.list_price.amount == Decimal("49.00")
    day_after = price(seat, TODAY + timedelta(days=1))
    assert (day_after.monthly_price.amount, day_after.reason) == (Decimal("49.00"), PriceReason.FULL_PRICE)


@pytest.mark.parametrize("trainee", [TraineeStatus.PRESCRIBER_TRAINEE, TraineeStatus.NON_PRESCRIBER_TRAINEE])
def test_an_expired_or_missing_proof_is_full_price(trainee):
    plan = "erx-lite" if trainee == TraineeStatus.PRESCRIBER_TRAINEE else "therapist-plus"
    for proof in (TODAY - timedelta(days=1), None):
        quoted = price(clinician(plan, trainee, proof), TODAY)
        assert quoted.reason == PriceReason.FULL_PRICE
        assert quoted.monthly_price == quoted.list_price


def test_a_coach_is_free_as_administrator_and_full_price_as_clinician():
    as_admin = price(Seat(Role.ADMINISTRATOR, None), TODAY)
    assert (str(as_admin.monthly_price.amount), as_admin.reason, as_admin.plan) == (
        "0.00",
        PriceReason.ADMINISTRATOR_FREE,
        None,
    )
    as_clinician = price(clinician("therapist-essential"), TODAY)
    assert (as_clinician.monthly_price.amount, as_clinician.reason) == (Decimal("49.00"), PriceReason.FULL_PRICE)


def test_administrators_are_free_whatever_their_trainee_fields():
    quoted = price(Seat(Role.ADMINISTRATOR, None, TraineeStatus.PRESCRIBER_TRAINEE, TODAY), TODAY)
    assert quoted.reason == PriceReason.ADMINISTRATOR_FREE


def test_check_seat_rules():
    assert check_seat(Role.CLINICIAN, "erx-pro", TraineeStatus.PRESCRIBER_TRAINEE).code == "erx-pro"
    assert check_seat(Role.ADMINISTRATOR, None, TraineeStatus.NONE) is None
    refused = [
        (Role.CLINICIAN, "erx-lite", TraineeStatus.NON_PRESCRIBER_TRAINEE, "input.planCode"),
        (Role.CLINICIAN, None, TraineeStatus.NONE, "input.planCode"),
        (Role.CLINICIAN, "no-such-plan", TraineeStatus.NONE, "input.planCode"),
        (Role.ADMINISTRATOR, "erx-lite", TraineeStatus.NONE, "input.planCode"),
        (Role.OWNER, "erx-lite", TraineeStatus.NONE, "input.role"),
    ]
    for role, plan, trainee, field in refused:
        with pytest.raises(BadInput) as caught:
            check_seat(role, plan, trainee)
        assert caught.value.extensions["field"] == field, (role, plan, trainee)


def test_a_seat_added_with_20_of_30_days_left_costs_59_33():
    moment = APRIL.start + timedelta(days=10)
    charged = charge_now(Money(Decimal("89.00")), Money.zero(), APRIL, moment)
    assert str(charged.amount) == "59.33"
    assert prorated(Decimal("89.00"), APRIL, moment) == Decimal("89.00") * 20 / 30  # exact until charged


def test_proration_rounds_half_up_to_the_cent():
    eight_seconds = Period(0, APRIL.start, APRIL.start + timedelta(seconds=8))
    # 1.00 x 1/8 = 0.125: half-up gives 0.13 (banker's rounding would give 0.12).
    charged = charge_now(Money(Decimal("1.00")), Money.zero(), eight_seconds, APRIL.start + timedelta(seconds=7))
    assert charged.amount == Decimal("0.13")


def test_proration_counts_whole_seconds():
    tiny = Period(0, APRIL.start, APRIL.start + timedelta(seconds=4))
    # 3.9 s left count as 3 of 4 seconds.
    assert prorated(Decimal(100), tiny, APRIL.start + timedelta(microseconds=100_000)) == Decimal(75)


def test_nothing_is_charged_during_the_trial_for_a_free_or_a_cheaper_seat():
    moment = APRIL.start + timedelta(days=10)
    assert charge_now(Money(Decimal("89.00")), Money.zero(), None, moment).amount == 0  # trial: no paid period
    assert charge_now(Money(Decimal("0.00")), Money.zero(), APRIL, moment).amount == 0  # free seat
    assert (
        charge_now(Money(Decimal("49.00")), Money(Decimal("129.00")), APRIL, moment).amount == 0
    )  # cheaper: no refund


def test_a_dearer_seat_is_charged_the_difference():
    moment = APRIL.start + timedelta(days=10)
    charged = charge_now(Money(Decimal("129.00")), Money(Decimal("49.00")), APRIL, moment)
    assert charged.amount == Decimal("53.33")  # 80 x 20/30


def test_periods_are_monthly_from_the_anchor_without_drift():
    anchor = datetime(2026, 1, 31, 12, tzinfo=UTC)
    starts = [period(anchor, i).start.date() for i in range(4)]
    assert starts == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    assert period(anchor, 1).end == period(anchor, 2).start


def test_period_at_finds_the_period_holding_a_moment():
    anchor = APRIL.start
    assert period_at(anchor, anchor) == period(anchor, 0)
    assert period_at(anchor, APRIL.end - timedelta(microseconds=1)).index == 0
    assert period_at(anchor, APRIL.end).index == 1  # a period ends where the next begins
    assert period_at(anchor, anchor + timedelta(days=400)).index == 13


def test_exact_amounts_keep_sub_cent_digits_until_charged():
    half = price(Seat(Role.CLINICIAN, "erx-lite", TraineeStatus.PRESCRIBER_TRAINEE, TODAY), TODAY).monthly_price
    assert total([half, half, half]).amount == Decimal("133.50")
    assert total([Money(Decimal("24.995")), Money(Decimal("24.995"))]).amount == Decimal("49.99")
