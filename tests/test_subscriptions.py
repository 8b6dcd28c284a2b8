"""The shared free trial, monthly periods, renewals, pro-rated seats, licenses and the billing run."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from tortoise import Tortoise

from models import AuditEvent, Member, Practice, SubscriptionCharge, SubscriptionPeriod
from models.enums import Role
from resolvers.subscriptions import run_billing
from server.cli import main
from server.db import tortoise_config
from tests.conftest import postgres_only
from tests.factories_subscriptions import (
    ACTIVATE,
    OWNER_EMAIL,
    START,
    START_SUBSCRIPTION,
    TRIAL_END,
    frozen_clock,
    group_practice,
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


# ------------------------------------------------------------------ periods and the billing run


async def test_the_billing_run_opens_the_first_period_when_the_trial_ends(api, clock):
    owner = await group_practice(api)
    await join(api, owner, "clin@example.com")
    clock.at = TRIAL_END - timedelta(seconds=1)
    assert await run_billing(clock.now()) == 0  # still trialing
    clock.at = TRIAL_END
    assert await run_billing(clock.now()) == 1
    assert await run_billing(clock.now()) == 0  # idempotent
    owner = await log_in(api, OWNER_EMAIL)
    sub = await subscription(api, owner)
    assert sub["status"] == "ACTIVE"
    assert (sub["currentPeriodStart"], sub["currentPeriodEnd"]) == (iso(TRIAL_END), iso(TRIAL_END.replace(month=5)))
    (renewal,) = [e["node"] for e in sub["charges"]["edges"]]
    assert (renewal["kind"], renewal["amount"]["amount"], renewal["periodStart"]) == (
        "RENEWAL",
        "178.00",
        iso(TRIAL_END),
    )


async def test_periods_are_monthly_anchored_on_the_first_period(api, clock):
    await paid_period_started(api, clock)
    clock.at = TRIAL_END.replace(month=5) - timedelta(seconds=1)
    assert await run_billing(clock.now()) == 0
    clock.at = TRIAL_END.replace(month=7, day=15)  # three periods have begun since: May 1, June 1 and July 1
    assert await run_billing(clock.now()) == 3
    starts = await SubscriptionPeriod.all().order_by("index").values_list("starts_at", flat=True)
    assert starts == [TRIAL_END, TRIAL_END.replace(month=5), TRIAL_END.replace(month=6), TRIAL_END.replace(month=7)]
    assert await SubscriptionCharge.filter(kind="RENEWAL").count() == 4


async def test_no_charge_during_the_trial(api, clock):
    owner = await group_practice(api)
    clock.advance(timedelta(days=29))
    owner = await log_in(api, OWNER_EMAIL)
    await join(api, owner, "clin@example.com")
    assert (await quote(api, owner, "CLINICIAN", "erx-pro"))["chargeNow"]["amount"] == "0.00"
    assert await run_billing(clock.now()) == 0
    assert await SubscriptionCharge.all().count() == 0


@postgres_only()
async def test_two_billing_runs_at_once_never_charge_twice(api, clock):
    for n in range(3):
        await group_practice(api, practice=f"Practice {n}", email=f"owner{n}@example.com")
    clock.at = TRIAL_END + timedelta(days=45)  # two periods due for each practice
    counts = await asyncio.gather(*(run_billing(clock.now()) for _ in range(4)))
    assert sum(counts) == 6
    assert await SubscriptionCharge.filter(kind="RENEWAL").count() == 6
    assert await SubscriptionPeriod.all().count() == 6


async def _practice_in_trial_until(database_url: str, trial_ends_at: datetime) -> None:
    await Tortoise.init(config=tortoise_config(database_url))
    try:
        await Tortoise.generate_schemas()
        created = trial_ends_at - timedelta(days=30)
        practice = await Practice.create(
            id=uuid.uuid4(),
            name="P",
            slug="p",
            created_at=created,
            trial_started_at=created,
            trial_ends_at=trial_ends_at,
        )
        await Member.create(
            id=uuid.uuid4(),
            practice=practice,
            name="O",
            email="o@example.com",
            password_hash="-",
            role=Role.OWNER,
            plan_code="erx-lite",
            created_at=created,
        )
    finally:
        await Tortoise.close_connections()


def test_the_billing_run_command_with_a_rehearsal_clock_offset(tmp_path, monkeypatch, capsys):
    """`groups-api billing run` against its own database; GROUPS_API_CLOCK_OFFSET moves the trial end into the past."""
    url = f"sqlite://{tmp_path}/billing.sqlite3"
    asyncio.run(_practice_in_trial_until(url, datetime.now(UTC) + timedelta(days=5)))
    monkeypatch.setenv("GROUPS_API_JWT_SECRET", "z" * 40)
    assert main(["billing", "run", "--database-url", url]) == 0
    monkeypatch.setenv("GROUPS_API_CLOCK_OFFSET", "6d")
    assert main(["billing", "run", "--database-url", url]) == 0
    assert main(["billing", "run", "--database-url", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "billing run: 0 renewal charge(s) created",
        "billing run: 1 renewal charge(s) created",
        "billing run: 0 renewal charge(s) created",
    ]


# ------------------------------------------------------------------ pro-rated seats


async def test_a_seat_added_with_20_of_30_days_left_is_charged_59_33(api, clock):
    owner = await paid_period_started(api, clock)
    clock.at = TRIAL_END + timedelta(days=10)
    owner = await log_in(api, OWNER_EMAIL)
    quoted = await quote(api, owner, "CLINICIAN", "erx-lite")
    assert quoted == {
        "listPrice": {"amount": "89.00", "currency": "USD"},
        "monthlyPrice": {"amount": "89.00"},
        "reason": "FULL_PRICE",
        "chargeNow": {"amount": "59.33"},
    }
    member = (await join(api, owner, "clin@example.com"))["member"]
    sub = await subscription(api, owner)
    seat = sub["charges"]["edges"][0]["node"]
    assert (seat["kind"], seat["amount"]["amount"], seat["member"]["id"]) == ("PRORATED_SEAT", "59.33", member["id"])
    assert (seat["periodStart"], seat["periodEnd"]) == (iso(TRIAL_END), iso(TRIAL_END.replace(month=5)))
    # The next renewal covers the new member in full.
    clock.at = TRIAL_END.replace(month=5)
    assert await run_billing(clock.now()) == 1
    renewal = await SubscriptionCharge.filter(kind="RENEWAL").order_by("-created_at").first()
    assert renewal.amount == Decimal("178.00")


async def test_a_free_seat_added_in_a_paid_period_is_not_charged(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    await join(api, owner, "admin@example.com", role="ADMINISTRATOR", plan=None)
    proof = (clock.now() + timedelta(days=90)).date().isoformat()
    await join(
        api,
        owner,
        "intern@example.com",
        plan="therapist-plus",
        traineeStatus="NON_PRESCRIBER_TRAINEE",
        trainingProofValidUntil=proof,
    )
    assert await SubscriptionCharge.filter(kind="PRORATED_SEAT").count() == 0


async def test_a_prescriber_trainee_seat_is_charged_half_pro_rata(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    proof = (clock.now() + timedelta(days=90)).date().isoformat()
    await join(
        api,
        owner,
        "resident@example.com",
        plan="erx-lite",
        traineeStatus="PRESCRIBER_TRAINEE",
        trainingProofValidUntil=proof,
    )
    charge = await SubscriptionCharge.get(kind="PRORATED_SEAT")
    assert charge.amount == Decimal("29.67")  # 44.50 x 20/30 = 29.666...


async def test_a_coach_costs_nothing_as_administrator_and_full_price_as_clinician(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    coach = (await join(api, owner, "coach@example.com", role="ADMINISTRATOR", plan=None, name="Casey Coach"))["member"]
    sub = await subscription(api, owner)
    license = next(lic for lic in sub["licenses"] if lic["member"]["id"] == coach["id"])
    assert (license["monthlyPrice"]["amount"], license["reason"], license["plan"]) == (
        "0.00",
        "ADMINISTRATOR_FREE",
        None,
    )
    assert (await quote(api, owner, "CLINICIAN", "therapist-essential", member=coach["id"]))["chargeNow"][
        "amount"
    ] == "32.67"
    changed = await update_member(api, owner, coach["id"], role="CLINICIAN", planCode="therapist-essential")
    assert changed["charge"]["kind"] == "PRORATED_SEAT"
    assert changed["charge"]["amount"]["amount"] == "32.67"  # 49.00 x 20/30
    assert changed["charge"]["member"]["id"] == coach["id"]
    sub = await subscription(api, owner)
    license = next(lic for lic in sub["licenses"] if lic["member"]["id"] == coach["id"])
    assert (license["monthlyPrice"]["amount"], license["reason"]) == ("49.00", "FULL_PRICE")


async def test_a_move_to_a_dearer_plan_is_charged_the_difference(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    member = (await join(api, owner, "clin@example.com", plan="therapist-essential"))["member"]
    quoted = await quote(api, owner, "CLINICIAN", "erx-pro", member=member["id"])
    assert (quoted["monthlyPrice"]["amount"], quoted["chargeNow"]["amount"]) == (
        "129.00",
        "53.33",
    )  # (129 - 49) x 20/30
    changed = await update_member(api, owner, member["id"], planCode="erx-pro")
    assert changed["charge"]["amount"]["amount"] == "53.33"
    assert changed["member"]["plan"]["code"] == "erx-pro"


async def test_a_move_to_a_cheaper_plan_takes_effect_next_period_without_refund(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    member = (await join(api, owner, "clin@example.com", plan="erx-pro"))["member"]
    down = await update_member(api, owner, member["id"], planCode="therapist-essential")
    assert down["charge"] is None
    # Moving back up within the same period costs nothing: this period is paid at the dearer price already.
    assert (await quote(api, owner, "CLINICIAN", "erx-pro", member=member["id"]))["chargeNow"]["amount"] == "0.00"
    up = await update_member(api, owner, member["id"], planCode="erx-pro")
    assert up["charge"] is None
    await update_member(api, owner, member["id"], planCode="therapist-essential")
    charges = await SubscriptionCharge.all().order_by("created_at").values_list("kind", "amount")
    assert charges == [("RENEWAL", Decimal("89.00")), ("PRORATED_SEAT", Decimal("86.00"))]  # 129 x 20/30; no refunds
    clock.at = TRIAL_END.replace(month=5)
    assert await run_billing(clock.now()) == 1
    renewal = await SubscriptionCharge.filter(kind="RENEWAL").order_by("-created_at").first()
    assert renewal.amount == Decimal("138.00")  # 89 + 49


async def test_a_move_to_a_free_seat_takes_effect_next_period(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    member = (await join(api, owner, "clin@example.com"))["member"]
    changed = await update_member(api, owner, member["id"], role="ADMINISTRATOR")
    assert changed["charge"] is None
    clock.at = TRIAL_END.replace(month=5)
    assert await run_billing(clock.now()) == 1
    renewal = await SubscriptionCharge.filter(kind="RENEWAL").order_by("-created_at").first()
    assert renewal.amount == Decimal("89.00")  # the owner alone


async def test_no_charge_for_a_change_during_the_trial(api):
    owner = await group_practice(api)
    member = (await join(api, owner, "coach@example.com", role="ADMINISTRATOR", plan=None))["member"]
    changed = await update_member(api, owner, member["id"], role="CLINICIAN", planCode="erx-pro")
    assert changed["charge"] is None
    assert await SubscriptionCharge.all().count() == 0


async def test_a_non_prescriber_trainee_cannot_be_put_on_a_prescriber_plan(api):
    owner = await group_practice(api)
    member = (await join(api, owner, "intern@example.com", plan="therapist-plus"))["member"]
    for changes in ({"traineeStatus": "NON_PRESCRIBER_TRAINEE", "planCode": "erx-lite"}, {"planCode": "erx-lite"}):
        if "traineeStatus" not in changes:
            await update_member(api, owner, member["id"], traineeStatus="NON_PRESCRIBER_TRAINEE")
        code, body = await api.error(
            "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id } } }",
            {"i": {"memberId": member["id"], **changes}},
            owner,
        )
        assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.planCode")
    row = await Member.get(email="intern@example.com")
    assert (row.plan_code, row.trainee_status.value) == ("therapist-plus", "NON_PRESCRIBER_TRAINEE")
    code, _ = await api.error(
        'query { practice { subscription { seatQuote(role: CLINICIAN, planCode: "erx-pro", traineeStatus: '
        "NON_PRESCRIBER_TRAINEE) "
        "{ chargeNow { amount } } } } }",
        token=owner,
    )
    assert code == "BAD_USER_INPUT"


# ------------------------------------------------------------------ renewals: proofs and deactivation


async def test_a_lapsed_proof_is_full_price_from_the_next_period_on(api, clock):
    owner = await group_practice(api)
    proof = (TRIAL_END + timedelta(days=10)).date().isoformat()  # valid at the first period's start, not the second's
    member = (
        await join(
            api, owner, "resident@example.com", traineeStatus="PRESCRIBER_TRAINEE", trainingProofValidUntil=proof
        )
    )["member"]
    clock.at = TRIAL_END
    await run_billing(clock.now())
    clock.at = TRIAL_END + timedelta(days=20)  # the proof has lapsed mid-period: nothing more this period
    owner = await log_in(api, OWNER_EMAIL)
    sub = await subscription(api, owner)
    license = next(lic for lic in sub["licenses"] if lic["member"]["id"] == member["id"])
    assert (license["monthlyPrice"]["amount"], license["reason"]) == ("89.00", "FULL_PRICE")
    clock.at = TRIAL_END.replace(month=5)
    await run_billing(clock.now())
    renewals = await SubscriptionCharge.filter(kind="RENEWAL").order_by("created_at").values_list("amount", flat=True)
    assert renewals == [Decimal("133.50"), Decimal("178.00")]  # 89 + 44.50, then 89 + 89
    assert await SubscriptionCharge.filter(kind="PRORATED_SEAT").count() == 0


async def test_deactivated_members_hold_no_license_from_the_next_period_on(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=1))
    owner = await log_in(api, OWNER_EMAIL)
    member = (await join(api, owner, "clin@example.com"))["member"]
    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { status } } }",
        {"i": {"memberId": member["id"]}},
        owner,
    )
    sub = await subscription(api, owner)
    assert [lic["reason"] for lic in sub["licenses"]] == ["FULL_PRICE"]  # the owner's alone
    assert sub["monthlyTotal"]["amount"] == "89.00"
    clock.at = TRIAL_END.replace(month=5)
    await run_billing(clock.now())
    renewal = await SubscriptionCharge.filter(kind="RENEWAL").order_by("-created_at").first()
    assert renewal.amount == Decimal("89.00")


async def test_a_late_billing_run_still_renews_members_who_left_after_the_period_began(api, clock):
    owner = await paid_period_started(api, clock)
    clock.advance(timedelta(days=1))
    owner = await log_in(api, OWNER_EMAIL)
    member = (await join(api, owner, "clin@example.com"))["member"]
    clock.at = TRIAL_END.replace(month=5) + timedelta(days=2)  # the May period began; the run has not happened yet
    owner = await log_in(api, OWNER_EMAIL)
    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { status } } }",
        {"i": {"memberId": member["id"]}},
        owner,
    )
    assert await run_billing(clock.now()) == 1
    renewal = await SubscriptionCharge.filter(kind="RENEWAL").order_by("-created_at").first()
    assert renewal.amount == Decimal("178.00")  # they held the license when May began


# ------------------------------------------------------------------ who sees what


LICENSES = (
    "{ practice { members { edges { node { id email license { reason monthlyPrice { amount } member { id } } } } } } }"
)


async def test_a_license_is_shown_to_the_member_and_to_managers_only(api, clock):
    owner = await group_practice(api)
    first = await join(api, owner, "first@example.com")
    second = await join(api, owner, "second@example.com", permissions=["MANAGE_SUBSCRIPTION"])
    seen_by_first = {
        e["node"]["id"]: e["node"]["license"]
        for e in (await api.ok(LICENSES, token=first["accessToken"]))["practice"]["members"]["edges"]
    }
    assert seen_by_first[first["member"]["id"]] == {
        "reason": "FULL_PRICE",
        "monthlyPrice": {"amount": "89.00"},
        "member": {"id": first["member"]["id"]},
    }
    assert seen_by_first[second["member"]["id"]] is None
    seen_by_second = (await api.ok(LICENSES, token=second["accessToken"]))["practice"]["members"]["edges"]
    assert all(e["node"]["license"] is not None for e in seen_by_second)  # MANAGE_SUBSCRIPTION sees every license


async def test_the_subscription_needs_manage_subscription(api):
    owner = await group_practice(api)
    clinician = (await join(api, owner, "clin@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    code, body = await api.error("{ practice { name subscription { status } } }", token=clinician)
    assert code == "FORBIDDEN"
    assert body["data"]["practice"] == {"name": "Calm Minds", "subscription": None}


async def test_a_charge_reached_by_node_keeps_the_subscription_guard(api):
    owner = await group_practice(api)
    clinician = (await join(api, owner, "clin@example.com", permissions=["MANAGE_MEMBERS"]))["accessToken"]
    charge_id = (await api.ok(START_SUBSCRIPTION, token=owner))["startSubscription"]["charge"]["id"]
    node = "query($id: ID!) { node(id: $id) { ... on SubscriptionCharge { id kind amount { amount } } } }"
    assert (await api.ok(node, {"id": charge_id}, owner))["node"] == {
        "id": charge_id,
        "kind": "RENEWAL",
        "amount": {"amount": "178.00"},
    }
    assert (await api.ok(node, {"id": charge_id}, clinician))["node"] is None
    other = await group_practice(api, practice="Other Practice", email="other@example.com")
    assert (await api.ok(node, {"id": charge_id}, other))["node"] is None


async def test_subscription_changes_are_audited_in_their_transaction(api, clock):
    owner = await group_practice(api)
    await api.ok(START_SUBSCRIPTION, token=owner)
    clock.advance(timedelta(days=10))
    owner = await log_in(api, OWNER_EMAIL)
    await join(api, owner, "clin@example.com")
    clock.advance(timedelta(days=30))
    await run_billing(clock.now())
    actions = (
        await AuditEvent.filter(action__startswith="subscription.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "subscription.started",
        "subscription.renewed",
        "subscription.seat_charged",
        "subscription.renewed",
    ]


async def test_a_seat_change_before_a_late_billing_run_renews_first_then_charges_the_difference(api, clock):
    owner = await group_practice(api)
    member = (await join(api, owner, "clin@example.com", plan="therapist-essential"))["member"]
    clock.at = TRIAL_END + timedelta(days=10)  # the first period began; no billing run yet
    owner = await log_in(api, OWNER_EMAIL)
    assert (await quote(api, owner, "CLINICIAN", "erx-lite"))["chargeNow"]["amount"] == "59.33"
    assert (await quote(api, owner, "CLINICIAN", "erx-pro", member=member["id"]))["chargeNow"]["amount"] == "53.33"
    assert await SubscriptionCharge.all().count() == 0  # quotes commit nothing
    changed = await update_member(api, owner, member["id"], planCode="erx-pro")
    assert changed["charge"]["amount"]["amount"] == "53.33"
    await join(api, owner, "new@example.com")
    charges = await SubscriptionCharge.all().order_by("created_at", "kind").values_list("kind", "amount")
    assert sorted(charges) == [
        ("PRORATED_SEAT", Decimal("53.33")),
        ("PRORATED_SEAT", Decimal("59.33")),
        ("RENEWAL", Decimal("138.00")),
    ]
    assert await run_billing(clock.now()) == 0


async def test_a_seat_quote_for_another_practices_member_is_not_found(api):
    owner = await group_practice(api)
    member = (await join(api, owner, "clin@example.com"))["member"]
    other = await group_practice(api, practice="Other Practice", email="other@example.com")
    code, _ = await api.error(
        'query($m: ID!) { practice { subscription { seatQuote(role: CLINICIAN, planCode: "erx-pro", memberId: $m) { '
        "reason } } } }",
        {"m": member["id"]},
        other,
    )
    assert code == "NOT_FOUND"
