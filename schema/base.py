"""Shared schema pieces: the Node interface, PageInfo, Money, the enums, and connection building."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import strawberry

from models import enums
from resolvers.money import Money as MoneyValue
from resolvers.pagination import Page

PracticeKind = strawberry.enum(enums.PracticeKind)
Role = strawberry.enum(enums.Role)
MemberStatus = strawberry.enum(enums.MemberStatus)
TraineeStatus = strawberry.enum(enums.TraineeStatus)
TokenScope = strawberry.enum(enums.TokenScope)
PlanCategory = strawberry.enum(enums.PlanCategory)
Permission = strawberry.enum(
    enums.Permission,
    description="What a member may do beyond their role's baseline. The owner always holds all of them.",
)


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


def connection(connection_type: type[T], edge_type: type, page: Page, convert: Callable[[Any], Any]) -> T:
    """Build a Relay connection object from a page of rows."""
    return connection_type(
        edges=[edge_type(node=convert(row), cursor=cursor) for row, cursor in zip(page.items, page.cursors, strict=True)],
        page_info=page_info(page),
        total_count=page.total_count,
    )
