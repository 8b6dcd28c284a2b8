"""The published plan catalog."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.types import Info

from resolvers import ids, plans
from schema.base import Money, Node, PlanCategory
from schema.node import node_type


@strawberry.type
class Plan(Node):
    code: str = strawberry.field(description="Stable identifier, e.g. erx-lite.")
    name: str
    category: PlanCategory
    monthly_price: Money

    @classmethod
    def of(cls, plan: plans.Plan) -> Plan:
        return cls(
            id=strawberry.ID(ids.encode("Plan", plan.id)),
            code=plan.code,
            name=plan.name,
            category=plan.category,
            monthly_price=Money.of(plan.monthly_price),
        )

    @classmethod
    def of_code(cls, code: str | None) -> Plan | None:
        plan = plans.find_plan(code)
        return cls.of(plan) if plan else None


@node_type("Plan")
async def _plan_node(info: Info, pk: uuid.UUID) -> Plan | None:
    plan = plans.plan_by_id(pk)
    return Plan.of(plan) if plan else None


@strawberry.type
class Query:
    @strawberry.field(description="The published plans, for sign-up and pricing pages.")
    def plans(self) -> list[Plan]:
        return [Plan.of(p) for p in plans.all_plans()]
