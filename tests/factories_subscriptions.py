"""Helpers for the invitation and subscription tests: a frozen clock, a group practice, joining members."""

from __future__ import annotations

from datetime import UTC, datetime

from resolvers.clock import FrozenClock

# Sign-up moment of the tests: the 30-day trial ends 2026-04-01 09:00 UTC, and April has 30 days, so the first
# period is exactly 30 days long. In the past, so access tokens issued "now" are never dated in the future.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TRIAL_END = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
SLUG = "calm-minds"
OWNER_EMAIL = "owner@example.com"
PASSWORD = "correct horse battery"

INVITE = """mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token invitation {
  id email role status createdAt expiresAt plan { code } permissions traineeStatus trainingProofValidUntil invitedBy {
  id } } } }"""
ACCEPT = """mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) {
  accessToken refreshToken member { id name role status } } }"""
ACTIVATE = "mutation { activateGroupPractice { practice { kind } } }"
START_SUBSCRIPTION = """mutation { startSubscription {
  subscription { status trial { startedAt endsAt isActive } currentPeriodStart currentPeriodEnd monthlyTotal { amount }
  }
  charge { id kind amount { amount currency } member { id } periodStart periodEnd description } } }"""
SUBSCRIPTION = """{ practice { subscription {
  status trial { startedAt endsAt isActive } currentPeriodStart currentPeriodEnd monthlyTotal { amount currency }
  licenses { member { id name } plan { code } listPrice { amount } monthlyPrice { amount } reason }
  charges { totalCount edges { node { id kind amount { amount } member { id } periodStart periodEnd description } } } }
  } }"""
UPDATE_MEMBER = """mutation($i: UpdateMemberInput!) { updateMember(input: $i) {
  member { id role plan { code } traineeStatus trainingProofValidUntil }
  charge { id kind amount { amount } member { id } periodStart periodEnd } } }"""
QUOTE = """query($role: Role!, $plan: String, $trainee: TraineeStatus, $proof: Date, $member: ID) { practice {
subscription {
  seatQuote(role: $role, planCode: $plan, traineeStatus: $trainee, trainingProofValidUntil: $proof, memberId: $member) {
    listPrice { amount currency } monthlyPrice { amount } reason chargeNow { amount } } } } }"""


def frozen_clock() -> FrozenClock:
    return FrozenClock(START)


def iso(moment: datetime) -> str:
    """How the API prints a DateTime."""
    return moment.isoformat()


async def group_practice(api, *, practice: str = "Calm Minds", email: str = OWNER_EMAIL, plan: str = "erx-lite") -> str:
    """Sign up and turn the practice into a group. Returns the owner's access token."""
    token = (await api.sign_up(practice=practice, email=email, plan=plan))["accessToken"]
    await api.ok(ACTIVATE, token=token)
    return token


async def log_in(api, email: str, slug: str = SLUG) -> str:
    """A fresh access token (after the clock moved past the last one's 15 minutes)."""
    body = await api.log_in(slug, email)
    assert not body.get("errors"), body
    return body["data"]["logIn"]["accessToken"]


async def invite(
    api, token: str, email: str, *, role: str = "CLINICIAN", plan: str | None = "erx-lite", **extra
) -> dict:
    variables = {"email": email, "role": role, **extra}
    if plan is not None:
        variables["planCode"] = plan
    return (await api.ok(INVITE, {"i": variables}, token))["inviteMember"]


async def accept(api, invitation_token: str, name: str = "New Member") -> dict:
    return (await api.ok(ACCEPT, {"i": {"token": invitation_token, "name": name, "password": PASSWORD}}))[
        "acceptInvitation"
    ]


async def join(
    api,
    owner: str,
    email: str,
    *,
    role: str = "CLINICIAN",
    plan: str | None = "erx-lite",
    name: str = "New Member",
    **extra,
) -> dict:
    """Invite and accept: the new member's AuthPayload."""
    issued = await invite(api, owner, email, role=role, plan=plan, **extra)
    return await accept(api, issued["token"], name)


async def subscription(api, token: str) -> dict:
    return (await api.ok(SUBSCRIPTION, token=token))["practice"]["subscription"]


async def update_member(api, token: str, member_id: str, **changes) -> dict:
    return (await api.ok(UPDATE_MEMBER, {"i": {"memberId": member_id, **changes}}, token))["updateMember"]


async def quote(api, token: str, role: str, plan: str | None = None, **extra) -> dict:
    variables = {"role": role, "plan": plan, **extra}
    return (await api.ok(QUOTE, variables, token))["practice"]["subscription"]["seatQuote"]
