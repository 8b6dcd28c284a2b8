"""The floor: hand-written Starlette endpoints for the three 50-row screens, without GraphQL.

Each does what the GraphQL request does for the same screen (bench/screens.py), and nothing else: the same
authentication (``auth.credentials.authenticate``), the same access queries (``members.practice_members``,
``charts.visible_charts``, ``billing.visible``), the same SQL statements in the same order (counts, pages, the
chart reads recorded in the audit log, the assigned clinicians), and the same JSON, ``{"data": ...}``. Rows come
back as plain values (``.values()``) and the JSON is built in plain loops: the best this stack can do for
the screen. bench/__main__.py checks that both answers are equal before it measures them.

They live here, in the bench, never in the product.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise.functions import Sum

from auth.credentials import authenticate
from auth.viewer import Viewer
from models import BillingBalance, BillingEntry, ChartAssignment
from models.billing import BillingEntryKind
from models.enums import MemberStatus, Permission, TokenScope
from resolvers import audit, billing, charts, members, plans
from resolvers.context import Context
from resolvers.ids import encode
from resolvers.money import DEFAULT_CURRENCY
from resolvers.pagination import DEFAULT_PAGE_SIZE, encode_cursor

PAGE = DEFAULT_PAGE_SIZE


def _money(cents: int) -> dict[str, str]:
    return {"amount": str(Decimal(int(cents)).scaleb(-2)), "currency": DEFAULT_CURRENCY}


def _plan(code: str | None) -> dict | None:
    plan = plans.find_plan(code)
    if plan is None:
        return None
    price = plan.monthly_price
    return {
        "code": plan.code,
        "name": plan.name,
        "monthlyPrice": {"amount": str(price.amount), "currency": price.currency},
    }


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _refused(message: str) -> Response:
    return _json({"data": None, "errors": [{"message": message}]}, status=403)


Handler = Callable[[Request, Viewer], Awaitable[Response]]


def endpoint(handler: Handler, scope: TokenScope | None = None) -> Callable[[Request], Awaitable[Response]]:
    """The same authentication as the GraphQL endpoint, then ``handler`` (which never sees an anonymous caller)."""

    async def run(request: Request) -> Response:
        state = request.app.state
        credentials = await authenticate(request.headers.get("authorization"), codec=state.codec, now=state.clock.now())
        viewer = credentials.viewer
        if viewer is None:
            return _refused(credentials.error or "authentication required")
        if scope is not None and not viewer.has_scope(scope):
            return _refused(f"needs the token scope {scope.value}")
        return await handler(request, viewer)

    return run


async def dashboard(request: Request, viewer: Viewer) -> Response:
    """Practice, its first 50 active members (private fields by the members rule) and the group balance."""
    practice = viewer.practice
    active = members.practice_members(viewer).filter(status=MemberStatus.ACTIVE)
    total = await active.count()
    rows = (
        await active.order_by("created_at", "id")
        .limit(PAGE + 1)
        .values("id", "practice_id", "name", "role", "status", "email", "plan_code", "created_at")
    )
    has_next, rows = len(rows) > PAGE, rows[:PAGE]
    sees_private = viewer.has(Permission.MANAGE_MEMBERS)
    sees_money = sees_private or viewer.has(Permission.MANAGE_SUBSCRIPTION)
    edges = []
    for row in rows:
        own = row["id"] == viewer.member.id
        edges.append(
            {
                "node": {
                    "id": encode("Member", row["id"]),
                    "name": row["name"],
                    "role": row["role"].value,
                    "status": row["status"].value,
                    "email": row["email"] if own or sees_private else None,
                    "plan": _plan(row["plan_code"]) if own or sees_money else None,
                }
            }
        )
    balance = None
    if viewer.has_scope(TokenScope.READ_BILLING):
        balances = billing.visible(BillingBalance, viewer)
        totals = await balances.annotate(total=Sum("balance_cents")).values_list("total", flat=True)
        balance = {"currentBalance": _money(totals[0] or 0 if totals else 0)}
    end = encode_cursor([rows[-1]["created_at"], rows[-1]["id"]]) if rows else None
    return _json(
        {
            "data": {
                "practice": {
                    "id": encode("Practice", practice.id),
                    "name": practice.name,
                    "slug": practice.slug,
                    "kind": practice.kind.value,
                    "members": {
                        "totalCount": total,
                        "pageInfo": {"hasNextPage": has_next, "endCursor": end},
                        "edges": edges,
                    },
                    "billing": balance,
                }
            }
        }
    )


async def chart_list(request: Request, viewer: Viewer) -> Response:
    """The 50 newest charts the viewer may read, recorded as read, with their assigned clinicians."""
    visible = charts.visible_charts(viewer)
    async with charts.planned_for_its_values() as conn:
        total = await visible.using_db(conn).count()
        rows = (
            await visible.using_db(conn)
            .order_by("-created_at", "-id")
            .limit(PAGE + 1)
            .values("id", "patient_name", "date_of_birth", "status", "created_at")
        )
    has_next, rows = len(rows) > PAGE, rows[:PAGE]
    chart_ids = [row["id"] for row in rows]
    ctx = Context(
        settings=None, clock=request.app.state.clock, codec=None, request_id=request.state.request_id, viewer=viewer
    )
    await audit.record_many(
        ctx, [audit.PendingEvent("chart.read", encode("Chart", c), {"via": "Practice.charts"}) for c in chart_ids]
    )
    assigned: dict[uuid.UUID, list[dict]] = defaultdict(list)
    if chart_ids:
        assignments = (
            await ChartAssignment.filter(chart_id__in=chart_ids, clinician__practice_id=viewer.practice.id)
            .order_by("created_at", "clinician__name", "clinician_id")
            .values("chart_id", "clinician_id", "clinician__name")
        )
        for a in assignments:
            assigned[a["chart_id"]].append({"id": encode("Member", a["clinician_id"]), "name": a["clinician__name"]})
    edges = []
    for row in rows:
        born = row["date_of_birth"]
        edges.append(
            {
                "cursor": encode_cursor([row["created_at"], row["id"]]),
                "node": {
                    "id": encode("Chart", row["id"]),
                    "patientName": row["patient_name"],
                    "dateOfBirth": born.isoformat() if born else None,
                    "status": row["status"].value,
                    "createdAt": row["created_at"].isoformat(),
                    "assignedClinicians": assigned[row["id"]],
                },
            }
        )
    return _json(
        {
            "data": {
                "practice": {
                    "charts": {
                        "totalCount": total,
                        "pageInfo": {"hasNextPage": has_next, "endCursor": edges[-1]["cursor"] if edges else None},
                        "edges": edges,
                    }
                }
            }
        }
    )


async def billing_history(request: Request, viewer: Viewer) -> Response:
    """The 50 newest ledger entries the viewer may see, with the patient's and the clinician's names."""
    rows = (
        await billing.visible(BillingEntry, viewer)
        .order_by("-occurred_on", "-created_at", "-id")
        .limit(PAGE + 1)
        .values(
            "id",
            "kind",
            "delta_cents",
            "occurred_on",
            "description",
            "created_at",
            "chart__patient_name",
            "clinician_id",
            "clinician__name",
        )
    )
    has_next, rows = len(rows) > PAGE, rows[:PAGE]
    edges = []
    for row in rows:
        kind, delta = row["kind"], row["delta_cents"]
        edges.append(
            {
                "cursor": encode_cursor([row["occurred_on"], row["created_at"], row["id"]]),
                "node": {
                    "id": encode("BillingEntry", row["id"]),
                    "kind": kind.value,
                    "occurredOn": row["occurred_on"].isoformat(),
                    "description": row["description"],
                    "amount": _money(delta if kind == BillingEntryKind.ADJUSTMENT else abs(delta)),
                    "patientName": row["chart__patient_name"],
                    "clinician": {"id": encode("Member", row["clinician_id"]), "name": row["clinician__name"]},
                    "createdAt": row["created_at"].isoformat(),
                },
            }
        )
    # As Billing.history: a total only when it costs nothing (not asked for by this screen).
    return _json(
        {
            "data": {
                "practice": {
                    "billing": {
                        "history": {
                            "pageInfo": {"hasNextPage": has_next, "endCursor": edges[-1]["cursor"] if edges else None},
                            "edges": edges,
                        }
                    }
                }
            }
        }
    )


def routes() -> list[Route]:
    """The floor's routes: POST, like the GraphQL requests they are compared with (the body is not read)."""
    return [
        Route("/floor/dashboard", endpoint(dashboard), methods=["POST"]),
        Route("/floor/charts", endpoint(chart_list, TokenScope.READ_CHARTS), methods=["POST"]),
        Route("/floor/history", endpoint(billing_history, TokenScope.READ_BILLING), methods=["POST"]),
    ]
