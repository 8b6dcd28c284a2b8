"""The published plan catalog, loaded once from the data file shipped with the package."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources

from errors import BadInput
from models.enums import PlanCategory
from resolvers.money import Money

_PLAN_NAMESPACE = uuid.UUID("7d7f2a38-8f0e-4ad4-9a45-5b8c8a6a0f11")


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    category: PlanCategory
    monthly_price: Money

    @property
    def id(self) -> uuid.UUID:
        """Stable id derived from the code (plans are not database rows)."""
        return uuid.uuid5(_PLAN_NAMESPACE, self.code)


@cache
def catalog() -> dict[str, Plan]:
    data = json.loads(resources.files("models").joinpath("data/plans.json").read_text())
    currency = data["currency"]
    return {
        p["code"]: Plan(p["code"], p["name"], PlanCategory(p["category"]), Money(Decimal(p["monthlyPrice"]), currency))
        for p in data["plans"]
    }


def all_plans() -> list[Plan]:
    return list(catalog().values())


def find_plan(code: str | None) -> Plan | None:
    return catalog().get(code) if code else None


def plan_by_id(plan_id: uuid.UUID) -> Plan | None:
    return next((p for p in catalog().values() if p.id == plan_id), None)


def require_plan(code: str | None, *, field: str = "input.planCode") -> Plan:
    plan = find_plan(code)
    if plan is None:
        raise BadInput(f"unknown plan {code!r}", field=field)
    return plan
