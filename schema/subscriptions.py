"""The practice's subscription: licenses, trial, periods, seat quotes and charges."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import SubscriptionCharge as SubscriptionChargeRow
from models.enums import Permission as P
from models.enums import Role as R
from models.subscriptions import SubscriptionChargeKind as SubscriptionChargeKindEnum
from models.subscriptions import SubscriptionStatus as SubscriptionStatusEnum
from resolvers import ids, members, pricing, subscriptions
from resolvers.money import Money as MoneyValue
from schema.base import Money, Node, PageInfo, Role, TraineeStatus, connection
from schema.directives import guard
from schema.node import node_type
from schema.plans import Plan

if TYPE_CHECKING:
    from auth.viewer import Viewer
    from models import Member as MemberRow
    from schema.members import Member

MemberType = Annotated["Member", strawberry.lazy("schema.members")]

SubscriptionStatus = SubscriptionStatusEnum
strawberry.enum(SubscriptionStatus)
SubscriptionChargeKind = SubscriptionChargeKindEnum
strawberry.enum(SubscriptionChargeKind)
PriceReason = pricing.PriceReason
strawberry.enum(PriceReason)


@strawberry.type
class Trial:
    started_at: datetime
    ends_at: datetime
    is_active: bool

    @classmethod
    def of(cls, trial: subscriptions.Trial | None) -> Trial | None:
        return cls(started_at=trial.started_at, ends_at=trial.ends_at, is_active=trial.is_active) if trial else None


@strawberry.type
class License:
    plan: Plan | None
    list_price: Money
    monthly_price: Money
    reason: PriceReason
    row: strawberry.Private[subscriptions.License]

    @classmethod
    def of(cls, value: subscriptions.License) -> License:
        price = value.price
        return cls(
            plan=Plan.of(price.plan) if price.plan else None,
            list_price=Money.of(price.list_price),
            monthly_price=Money.of(price.monthly_price),
            reason=price.reason,
            row=value,
        )

    @strawberry.field
    def member(self) -> MemberType:
        from schema.members import Member

        return Member.of(self.row.member)


@strawberry.type(
    description="What adding a seat would cost, before it is added: the price shown to the owner before confirming."
)
class SeatQuote:
    list_price: Money
    monthly_price: Money
    reason: PriceReason
    charge_now: Money = strawberry.field(
        description="What would be charged now: pro-rated to the rest of the current period; zero during the trial or "
        "for a free seat."
    )


@strawberry.type
class SubscriptionCharge(Node):
    kind: SubscriptionChargeKind
    amount: Money
    period_start: datetime
    period_end: datetime
    description: str
    created_at: datetime
    row: strawberry.Private[SubscriptionChargeRow]

    @classmethod
    def of(cls, row: SubscriptionChargeRow) -> SubscriptionCharge:
        return cls(
            id=strawberry.ID(ids.encode("SubscriptionCharge", row.id)),
            kind=row.kind,
            amount=Money.of(MoneyValue(row.amount, row.currency)),
            period_start=row.period.starts_at,
            period_end=row.period.ends_at,
            description=row.description,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field
    async def member(self, info: Info) -> MemberType | None:
        from schema.members import Member

        if self.row.member_id is None:
            return None
        row = await members.get_member(info.context, self.row.member_id)
        return Member.of(row) if row else None


@strawberry.type
class SubscriptionChargeEdge:
    node: SubscriptionCharge
    cursor: str


@strawberry.type
class SubscriptionChargeConnection:
    edges: list[SubscriptionChargeEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class PracticeSubscription:
    status: SubscriptionStatus
    trial: Trial | None = strawberry.field(
        description="The practice's one lifetime free trial; null if it never had one."
    )
    current_period_start: datetime
    current_period_end: datetime
    monthly_total: Money = strawberry.field(description="What the practice pays a month: the sum of its licenses.")
    licenses: list[License]

    @classmethod
    def of(cls, value: subscriptions.Overview) -> PracticeSubscription:
        return cls(
            status=value.status,
            trial=Trial.of(value.trial),
            current_period_start=value.period_start,
            current_period_end=value.period_end,
            monthly_total=Money.of(value.monthly_total),
            licenses=[License.of(lic) for lic in value.licenses],
        )

    @strawberry.field
    async def charges(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> SubscriptionChargeConnection:
        page = await subscriptions.list_charges(info.context, first=first, after=after)
        return connection(SubscriptionChargeConnection, SubscriptionChargeEdge, page, SubscriptionCharge.of)

    @strawberry.field(
        description="Quote a new seat, or with memberId a change to an existing member's seat (the difference is "
        "charged now)."
    )
    async def seat_quote(
        self,
        info: Info,
        role: Role,
        plan_code: str | None = None,
        trainee_status: TraineeStatus | None = TraineeStatus.NONE,
        training_proof_valid_until: date | None = None,
        member_id: strawberry.ID | None = None,
    ) -> SeatQuote | None:
        quote = await subscriptions.seat_quote(
            info.context,
            role=role,
            plan_code=plan_code,
            trainee_status=trainee_status,
            training_proof_valid_until=training_proof_valid_until,
            member_id=member_id,
        )
        return SeatQuote(
            list_price=Money.of(quote.price.list_price),
            monthly_price=Money.of(quote.price.monthly_price),
            reason=quote.price.reason,
            charge_now=Money.of(quote.charge_now),
        )


@node_type("SubscriptionCharge", permission=P.MANAGE_SUBSCRIPTION)
async def _charge_node(info: Info, pk: uuid.UUID) -> SubscriptionCharge | None:
    row = await subscriptions.get_charge(info.context, pk)
    return SubscriptionCharge.of(row) if row else None


@strawberry.type
class PracticeSubscriptionFields:
    """Mixed into Practice: ``subscription``."""

    @strawberry.field(extensions=guard(permission=P.MANAGE_SUBSCRIPTION))
    async def subscription(self, info: Info) -> PracticeSubscription | None:
        return PracticeSubscription.of(await subscriptions.overview(info.context))


@strawberry.type
class MemberLicenseFields:
    """Mixed into Member: ``license``, where resolvers.members.can_see_money allows (null otherwise)."""

    if TYPE_CHECKING:  # provided by Member

        @property
        def row(self) -> MemberRow: ...

        def seen_by(self, info: Info) -> Viewer | None: ...

    @strawberry.field
    def license(self, info: Info) -> License | None:
        row = self.row  # the Member's row
        if not members.can_see_money(self.seen_by(info), row):  # Member.seen_by
            return None
        value = subscriptions.license_of(info.context, row)
        return License.of(value) if value else None


@strawberry.type
class StartSubscriptionPayload:
    subscription: PracticeSubscription
    charge: SubscriptionCharge | None = strawberry.field(description="The first period's charge.")


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Ends the free trial now and starts the first paid period.",
        extensions=guard(roles=[R.OWNER], mutation=True),
    )
    async def start_subscription(self, info: Info) -> StartSubscriptionPayload | None:
        overview, charge = await subscriptions.start_subscription(info.context)
        return StartSubscriptionPayload(
            subscription=PracticeSubscription.of(overview), charge=SubscriptionCharge.of(charge)
        )
