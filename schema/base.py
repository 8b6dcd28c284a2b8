"""Shared schema pieces: the Node interface, PageInfo, Money, the enums, and connection building."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import strawberry

from models import enums
from resolvers.money import Money as MoneyValue
from resolvers.pagination import Page

# strawberry.enum registers an enum class in place and returns it: each GraphQL enum is the models' class itself, named
# here as a plain alias so that type checkers see a type.
PracticeKind = enums.PracticeKind
strawberry.enum(PracticeKind)
Role = enums.Role
strawberry.enum(Role)
MemberStatus = enums.MemberStatus
strawberry.enum(MemberStatus)
TraineeStatus = enums.TraineeStatus
strawberry.enum(TraineeStatus)
TokenScope = enums.TokenScope
strawberry.enum(TokenScope)
PlanCategory = enums.PlanCategory
strawberry.enum(PlanCategory)
Permission = enums.Permission
strawberry.enum(
    Permission,
    description="What a member may do beyond their role's baseline. The owner always holds all of them.",
)
PERMISSION_DESCRIPTIONS = {
    enums.Permission.VIEW_ALL_CHARTS: "Read every chart of the practice, not only the charts assigned to you.",
    enums.Permission.ASSIGN_CHARTS: (
        "Find every chart of the practice (not its notes), edit and archive charts, assign them to clinicians and take "
        "them off."
    ),
    enums.Permission.VIEW_BILLING: "See the balance and billing history of every clinician of the practice.",
    enums.Permission.MANAGE_BILLING: (
        "Find every chart of the practice (not its notes); record payments, generate statements, create and void "
        "invoices for any clinician."
    ),
    enums.Permission.MANAGE_MEMBERS: (
        "Invite members, change roles and plans, deactivate members. Only the owner grants permissions."
    ),
    enums.Permission.MANAGE_SUBSCRIPTION: "See and manage the practice's licenses, trial and charges.",
    enums.Permission.VIEW_AUDIT_LOG: "Read the audit log.",
    enums.Permission.MANAGE_API_TOKENS: "Create, list and revoke partner API tokens.",
}
# strawberry.enum takes value descriptions only from strawberry.enum_value in the enum's own class; the models' enum
# stays plain, so the contract's descriptions are set on the definition here.
for _value in Permission.__strawberry_definition__.values:  # type: ignore[attr-defined]
    _value.description = PERMISSION_DESCRIPTIONS[enums.Permission(_value.value)]


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Money:
    amount: Decimal
    currency: str = strawberry.field(description="ISO 4217 code, e.g. USD.")

    @classmethod
    def of(cls, value: MoneyValue) -> Money:
        return cls(amount=value.amount, currency=value.currency)


T = TypeVar("T")


def page_info(page: Page) -> PageInfo:
    return PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=page.start_cursor,
        end_cursor=page.end_cursor,
    )


def connection(connection_type: Callable[..., T], edge_type: type, page: Page, convert: Callable[[Any], Any]) -> T:
    """Build a Relay connection object from a page of rows."""
    return connection_type(
        edges=[
            edge_type(node=convert(row), cursor=cursor) for row, cursor in zip(page.items, page.cursors, strict=True)
        ],
        page_info=page_info(page),
        total_count=page.total_count,
    )
