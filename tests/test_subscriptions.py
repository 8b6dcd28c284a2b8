"""The shared free trial, monthly periods, renewals, pro-rated seats, licenses and the billing run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from models import AuditEvent, Practice, SubscriptionCharge, SubscriptionPeriod
from resolvers.subscriptions import run_billing
from tests.conftest import postgres_only
from tests.factories_subscriptions import (
    ACTIVATE,
    OWNER_EMAIL,
    START,
    START_SUBSCRIPTION,
    TRIAL_END,
    amount,
    frozen_clock,
    group_practice,
    invite,
    iso,
    join,
    log_in,
    quote,
    subscription,
    update_member,
)


@pytest.fixture
def clock():
    return frozen_clock()


async def paid_period_started(api, clock, **signup) -> str:
    """A group whose trial ended at TRIAL_END and whose first period the billing run opened. Owner's token."""
    await group_practice(api, **signup)
    clock.at = TRIAL_END
    assert await run_billing(clock.now()) == 1
    return await log_in(api, signup.get("email", OWNER_EMAIL))


# ------------------------------------------------------------------ the trial


async def test_the_trial_starts_at_sign_up_and_covers_every_member(api):
    owner = await group_practice(api)
    await join(api, owner, "clin@example.com")
    await join(api, owner, "admin@example.com", role="ADMINISTRATOR", plan=None)
    sub = await subscription(api, owner)
    assert sub["status"] == "TRIALING"
    assert sub["trial"] == {"startedAt": iso(START), "endsAt": iso(TRIAL_END), "isActive": True}
    assert (sub["currentPeriodStart"], sub["currentPeriodEnd"]) == (iso(START), iso(TRIAL_END))
    assert sub["charges"]["totalCount"] == 0  # no charge during the trial
    assert len(sub["licenses"]) == 3


async def test_two_clinicians_on_erx_lite_make_a_monthly_total_of_178(api):
    owner = await group_practice(api, plan="erx-lite")
    await join(api, owner, "clin@example.com", plan="erx-lite")
    await join(api, owner, "admin@example.com", role="ADMINISTRATOR", plan=None)
    sub = await subscription(api, owner)
    assert sub["monthlyTotal"] == {"amount": "178.00", "currency": "USD"}
    reasons = sorted((lic["reason"], lic["monthlyPrice"]["amount"]) for lic in sub["licenses"])
    assert reasons == [("ADMINISTRATOR_FREE", "0.00"), ("FULL_PRICE", "89.00"), ("FULL_PRICE", "89.00")]


async def test_activating_the_group_keeps_the_same_trial(api, clock):
    signed = await api.sign_up()
    clock.advance(timedelta(days=5))
    owner = await log_in(api, OWNER_EMAIL)
    await api.ok(ACTIVATE, token=owner)
    trial = (await subscription(api, owner))["trial"]
    assert trial == {"startedAt": iso(START), "endsAt": iso(TRIAL_END), "isActive": True}
    assert signed["accessToken"]


async def test_start_subscription_ends_the_trial_now_and_charges_the_first_period(api, clock):
    owner = await group_practice(api)
    await join(api, owner, "clin@example.com")
    clock.advance(timedelta(days=3))
    now = clock.now()
    owner = await log_in(api, OWNER_EMAIL)
    started = (await api.ok(START_SUBSCRIPTION, token=owner))["startSubscription"]
    sub, charge = started["subscription"], started["charge"]
    assert sub["status"] == "ACTIVE"
    assert sub["trial"] == {"startedAt": iso(START), "endsAt": iso(now), "isActive": False}
    assert (sub["currentPeriodStart"], sub["currentPeriodEnd"]) == (iso(now), iso(now.replace(month=now.month + 1)))
    assert charge["kind"] == "RENEWAL" and charge["member"] is None
    assert charge["amount"] == {"amount": "178.00", "currency": "USD"}
    assert (charge["periodStart"], charge["periodEnd"]) == (sub["currentPeriodStart"], sub["currentPeriodEnd"])


async def test_no_action_creates_a_second_trial(api, clock):
    owner = await group_practice(api)
    await api.ok(START_SUBSCRIPTION, token=owner)
    code, _ = await api.error(START_SUBSCRIPTION, token=owner)
    assert code == "CONFLICT"
    code, _ = await api.error(ACTIVATE, token=owner)  # already a group: nothing to re-activate
    assert code == "CONFLICT"
    clock.advance(timedelta(days=40))
    assert await run_billing(clock.now()) == 1  # the second period, not a trial
    owner = await log_in(api, OWNER_EMAIL)
    sub = await subscription(api, owner)
    assert sub["status"] == "ACTIVE" and sub["trial"]["isActive"] is False
    assert [e["node"]["kind"] for e in sub["charges"]["edges"]] == ["RENEWAL", "RENEWAL"]
    practice = await Practice.get(slug="calm-minds")
    assert (practice.trial_started_at, practice.trial_ends_at) == (START, START)


async def test_start_subscription_after_the_trial_ran_out_is_a_conflict(api, clock):
    await group_practice(api)
    clock.at = TRIAL_END + timedelta(hours=1)
    owner = await log_in(api, OWNER_EMAIL)
    code, _ = await api.error(START_SUBSCRIPTION, token=owner)
    assert code == "CONFLICT"
    assert await SubscriptionCharge.all().count() == 0


async def test_only_the_owner_starts_the_subscription(api):
    owner = await group_practice(api)
    clinician = (await join(api, owner, "clin@example.com", permissions=["MANAGE_SUBSCRIPTION"]))["accessToken"]
    code, _ = await api.error(START_SUBSCRIPTION, token=clinician)
    assert code == "FORBIDDEN"
    assert await SubscriptionCharge.all().count() == 0
