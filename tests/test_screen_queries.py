"""The screens the benchmark replays (bench/screens.py) run the same number of SQL statements at any page size.

Each screen's document runs at two page sizes (or, for the per-clinician balances, two numbers of aliased
clinicians) against the same data, with more rows than the larger size so that both pages are full; the
statements counted must be equal. A list that loaded its rows' related data one row at a time, or an aliased
field that queried once per alias, fails here.
"""

from __future__ import annotations

import uuid

import pytest

from bench import screens
from models import Chart, ChartAssignment
from models.enums import Role, TokenScope
from resolvers.ids import encode
from tests import factories
from tests.factories import Account, sql_statements
from tests.factories_billing import charge, now

ROWS = 8
SMALL, LARGE = 2, 6


@pytest.fixture
async def practice(api) -> dict:
    """A group of an owner and ROWS clinicians, ROWS charts each assigned to two of them, and ROWS charges."""
    owner = await factories.sign_up(api)
    await api.ok("mutation { activateGroupPractice { practice { kind } } }", token=owner.token)
    clinicians: list[Account] = [
        await factories.add_member(api, owner.slug, f"clinician{i}@example.com", role=Role.CLINICIAN)
        for i in range(ROWS)
    ]
    charts = []
    for i in range(ROWS):
        chart = await Chart.create(
            id=uuid.uuid4(),
            practice_id=owner.row.practice_id,
            patient_name=f"Patient {i}",
            patient_name_search=f"patient {i}",
            created_by_id=owner.row.id,
            created_at=now(),
        )
        for clinician in (clinicians[i], clinicians[(i + 1) % ROWS]):
            await ChartAssignment.create(id=uuid.uuid4(), chart=chart, clinician_id=clinician.row.id, created_at=now())
        charts.append(encode("Chart", chart.id))
    for i, chart in enumerate(charts):
        await charge(api, owner, chart, clinicians[i], "120.00", description=f"Session {i}")
    token = await factories.insert_api_token(owner.row, (TokenScope.READ_BILLING,))
    return {"owner": owner, "clinicians": clinicians, "charts": charts, "token": token}


async def statements_for(api, caplog, query: str, variables: dict, token: str) -> tuple[int, dict]:
    with sql_statements(caplog) as statements:
        data = await api.ok(query, variables, token)
    return len(statements), data


def edges(data: dict, *path: str) -> list:
    for key in path:
        data = data[key]
    return data["edges"]


SCREENS = {
    "dashboard": (screens.DASHBOARD, ("practice", "members")),
    "chart list": (screens.CHART_LIST, ("practice", "charts")),
    "billing history": (screens.BILLING_HISTORY, ("practice", "billing", "history")),
}


@pytest.mark.parametrize("screen", list(SCREENS))
async def test_a_screen_runs_as_many_statements_at_any_page_size(api, caplog, practice, screen):
    query, path = SCREENS[screen]
    token = practice["owner"].token
    small, small_data = await statements_for(api, caplog, query, {"first": SMALL}, token)
    large, large_data = await statements_for(api, caplog, query, {"first": LARGE}, token)
    assert (len(edges(small_data, *path)), len(edges(large_data, *path))) == (SMALL, LARGE)
    assert small == large, f"{screen}: {small} statements for {SMALL} rows, {large} for {LARGE}"


async def test_the_history_through_a_partner_token_runs_as_many_statements_at_any_page_size(api, caplog, practice):
    token = practice["token"]
    await api.ok(screens.BILLING_HISTORY, {"first": 1}, token)  # the token's lastUsedAt write, once a minute
    small, small_data = await statements_for(api, caplog, screens.BILLING_HISTORY, {"first": SMALL}, token)
    large, large_data = await statements_for(api, caplog, screens.BILLING_HISTORY, {"first": LARGE}, token)
    path = ("practice", "billing", "history")
    assert (len(edges(small_data, *path)), len(edges(large_data, *path))) == (SMALL, LARGE)
    assert small == large


async def test_per_clinician_balances_run_as_many_statements_for_any_number_of_clinicians(api, caplog, practice):
    ids = [c.id for c in practice["clinicians"]]
    token = practice["owner"].token
    counts, answers = [], []
    for count in (SMALL, LARGE):
        n, data = await statements_for(
            api, caplog, screens.clinician_balances(count), screens.clinician_balance_variables(ids[:count]), token
        )
        counts.append(n)
        answers.append(data["practice"]["billing"])
    assert [len(a) for a in answers] == [SMALL, LARGE]
    # Each clinician's balance is their own charge (clinician i was charged 120.00 on chart i).
    assert {a["amount"] for a in answers[1].values()} == {"120.00"}
    assert counts[0] == counts[1], f"{counts[0]} statements for {SMALL} clinicians, {counts[1]} for {LARGE}"
