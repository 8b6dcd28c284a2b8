"""Charts: who sees which chart, assignment, clinical notes, search, the audit trail and data safety.

Every rule is exercised through the HTTP API; the database is read directly only to check what was (not) written.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from tortoise import fields as tortoise_fields
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from models import AuditEvent, Chart, ChartAssignment, ChartNote, Member, Practice
from models.charts import ChartStatus
from models.enums import MemberStatus, Permission, Role, TokenScope
from resolvers import audit, charts, ids
from tests import factories_charts as factories
from tests.conftest import postgres_only
from tests.factories_charts import CREATE_CHART, Actor

ASSIGN = (
    "mutation($input: ChartAssignmentInput!) { assignChart(input: $input) { chart { id assignedClinicians { id } } } }"
)
UNASSIGN = (
    "mutation($input: ChartAssignmentInput!) { unassignChart(input: $input) { chart { id assignedClinicians { "
    "id } } } }"
)
CHARTS = """query($first: Int, $after: String, $clinicianId: ID, $search: String, $status: ChartStatus) { practice {
    charts(first: $first, after: $after, clinicianId: $clinicianId, search: $search, status: $status) {
      totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } edges { cursor node { id patientName } }
      } } }"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Chart { patientName } ... on ChartNote { body } } }"
CHART_NOTES = """query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Chart { patientName
    notes(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id body author {
    id } } } } } } }"""
ASSIGNED_CHARTS = """query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Member {
    assignedCharts(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } }
    } } }"""
DEACTIVATE = """mutation($input: DeactivateMemberInput!) { deactivateMember(input: $input) { member { id status } } }"""

SEEN, ABSENT, ALLOWED = "seen", "absent", "allowed"
FORBIDDEN, NOT_FOUND, BAD_INPUT = "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT"


def edge_ids(conn: dict) -> list[str]:
    return [edge["node"]["id"] for edge in conn["edges"]]


async def audit_events(action: str) -> list[AuditEvent]:
    return await AuditEvent.filter(action=action).order_by("sequence")


# ------------------------------------------------------------------ the role table


# Members of the practice besides its owner: role and explicit grants.
MEMBERS = {
    "assigned": (Role.CLINICIAN, ()),
    "unassigned": (Role.CLINICIAN, ()),
    "clinician_view_all": (Role.CLINICIAN, (Permission.VIEW_ALL_CHARTS,)),
    "admin_view_all": (Role.ADMINISTRATOR, (Permission.VIEW_ALL_CHARTS,)),
    "admin": (Role.ADMINISTRATOR, ()),
    "admin_assign": (Role.ADMINISTRATOR, (Permission.ASSIGN_CHARTS,)),
    "clinician_assign": (Role.CLINICIAN, (Permission.ASSIGN_CHARTS,)),
    "admin_billing": (Role.ADMINISTRATOR, (Permission.MANAGE_BILLING,)),
}
# "outsider" is the owner of another practice: every permission, in the wrong practice.
ROLES = ("owner", *MEMBERS, "outsider")


@dataclass
class World:
    actors: dict[str, Actor]
    colleague: Actor  # a clinician of the practice, the one mutations assign
    chart: str  # assigned to "assigned" only
    note: str  # on that chart

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]


@pytest.fixture
async def world(api) -> World:
    owner = await factories.owner(api)
    actors = {"owner": owner}
    for name, (role, permissions) in MEMBERS.items():
        actors[name] = await factories.add_member(api, owner, f"{name}@example.com", role=role, permissions=permissions)
    actors["outsider"] = await factories.owner(api, practice="Elsewhere Clinic", email="outsider@example.com")
    colleague = await factories.add_member(api, owner, "colleague@example.com", log_in=False)
    chart = await factories.create_chart(api, owner.token, "Pat Patient", clinicianIds=[actors["assigned"].id])
    note = await factories.add_note(api, owner.token, chart["id"], "First session.")
    return World(actors, colleague, chart["id"], note["id"])


async def read_list(api, w: World, actor: Actor) -> str:
    data = await api.ok("{ practice { charts { totalCount edges { node { id } } } } }", token=actor.token)
    return SEEN if w.chart in edge_ids(data["practice"]["charts"]) else ABSENT


async def read_node(api, w: World, actor: Actor) -> str:
    data = await api.ok(NODE, {"id": w.chart}, actor.token)
    return SEEN if data["node"] else ABSENT


async def read_assigned_charts(api, w: World, actor: Actor) -> str:
    """The assigned clinician's assignedCharts, as the actor sees them (a member of another practice is null)."""
    data = await api.ok(ASSIGNED_CHARTS, {"id": w["assigned"].id}, actor.token)
    member = data["node"]
    return SEEN if member and w.chart in edge_ids(member["assignedCharts"]) else ABSENT


async def read_assigned_clinicians(api, w: World, actor: Actor) -> str:
    data = await api.ok(
        "query($id: ID!) { node(id: $id) { ... on Chart { assignedClinicians { id } } } }", {"id": w.chart}, actor.token
    )
    chart = data["node"]
    return SEEN if chart and [m["id"] for m in chart["assignedClinicians"]] == [w["assigned"].id] else ABSENT


async def read_notes(api, w: World, actor: Actor) -> str:
    body = await api.post(CHART_NOTES, {"id": w.chart}, actor.token)
    chart = body["data"]["node"]
    if chart is None:
        return ABSENT
    if body.get("errors"):
        # Denied notes are null with an error; the rest of the chart is still returned.
        assert chart == {"patientName": "Pat Patient", "notes": None}, body
        assert body["errors"][0]["path"] == ["node", "notes"]
        return body["errors"][0]["extensions"]["code"]
    return SEEN if edge_ids(chart["notes"]) == [w.note] else ABSENT


async def read_note_node(api, w: World, actor: Actor) -> str:
    data = await api.ok(NODE, {"id": w.note}, actor.token)
    return SEEN if data["node"] == {"id": w.note, "body": "First session."} else ABSENT


async def _mutation(api, query: str, variables: dict, actor: Actor, written: Callable[[], Awaitable[object]]) -> str:
    """ALLOWED when the mutation succeeded and wrote; else its error code, having written nothing."""
    before = await written()
    body = await api.post(query, variables, actor.token)
    after = await written()
    if body.get("errors"):
        assert after == before, f"a refused mutation changed something: {body}"
        return body["errors"][0]["extensions"]["code"]
    assert after != before, f"an allowed mutation wrote nothing: {body}"
    return ALLOWED


async def create(api, w: World, actor: Actor) -> str:
    return await _mutation(
        api,
        CREATE_CHART,
        {"input": {"patientName": "New Patient"}},
        actor,
        lambda: Chart.filter(practice_id=actor.member.practice_id).count(),
    )


async def create_assigning(api, w: World, actor: Actor) -> str:
    """createChart(clinicianIds: [a colleague in the first practice])."""

    async def written():
        return await Chart.all().count(), await ChartAssignment.filter(clinician_id=w.colleague.member.id).count()

    variables = {"input": {"patientName": "New Patient", "clinicianIds": [w.colleague.id]}}
    return await _mutation(api, CREATE_CHART, variables, actor, written)


async def assign(api, w: World, actor: Actor) -> str:
    variables = {"input": {"chartId": w.chart, "clinicianId": w.colleague.id}}
    return await _mutation(
        api, ASSIGN, variables, actor, lambda: ChartAssignment.filter(clinician_id=w.colleague.member.id).count()
    )


async def unassign(api, w: World, actor: Actor) -> str:
    variables = {"input": {"chartId": w.chart, "clinicianId": w["assigned"].id}}
    return await _mutation(
        api, UNASSIGN, variables, actor, lambda: ChartAssignment.filter(clinician_id=w["assigned"].member.id).count()
    )


async def add_note(api, w: World, actor: Actor) -> str:
    variables = {"input": {"chartId": w.chart, "body": "Another note."}}
    return await _mutation(api, factories.ADD_NOTE, variables, actor, lambda: ChartNote.all().count())


OPERATIONS = {
    "Practice.charts": read_list,
    "node(Chart)": read_node,
    "Member.assignedCharts": read_assigned_charts,
    "Chart.assignedClinicians": read_assigned_clinicians,
    "Chart.notes": read_notes,
    "node(ChartNote)": read_note_node,
    "createChart": create,
    "createChart(clinicianIds)": create_assigning,
    "assignChart": assign,
    "unassignChart": unassign,
    "addChartNote": add_note,
}

# fmt: off
# ASSIGN_CHARTS and MANAGE_BILLING find every chart (not its notes); notes: the owner, the assigned clinicians and
# clinicians holding VIEW_ALL_CHARTS, never an administrator.
EXPECTED = {  # owner      assigned   unassigned cl_view_all adm_view_all admin    admin_assign cl_assign adm_billing outsider  # noqa: E501
    "Practice.charts":           (SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      SEEN,      ABSENT),  # noqa: E501
    "node(Chart)":               (SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      SEEN,      ABSENT),  # noqa: E501
    "Member.assignedCharts":     (SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      SEEN,      ABSENT),  # noqa: E501
    "Chart.assignedClinicians":  (SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      ABSENT,    SEEN,      SEEN,      SEEN,      ABSENT),  # noqa: E501
    "Chart.notes":               (SEEN,      SEEN,      ABSENT,    SEEN,      FORBIDDEN, ABSENT,    FORBIDDEN, FORBIDDEN, FORBIDDEN, ABSENT),  # noqa: E501
    "node(ChartNote)":           (SEEN,      SEEN,      ABSENT,    SEEN,      ABSENT,    ABSENT,    ABSENT,    ABSENT,    ABSENT,    ABSENT),  # noqa: E501
    "createChart":               (ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED,   ALLOWED),  # noqa: E501
    "createChart(clinicianIds)": (ALLOWED,   FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, ALLOWED,   ALLOWED,   FORBIDDEN, NOT_FOUND),  # noqa: E501
    "assignChart":               (ALLOWED,   FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, ALLOWED,   ALLOWED,   FORBIDDEN, NOT_FOUND),  # noqa: E501
    "unassignChart":             (ALLOWED,   FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, ALLOWED,   ALLOWED,   FORBIDDEN, NOT_FOUND),  # noqa: E501
    "addChartNote":              (ALLOWED,   ALLOWED,   NOT_FOUND, ALLOWED,   FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, NOT_FOUND),  # noqa: E501
}
# fmt: on


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_access_by_role(api, world, operation, role):
    """Each role against each chart operation and field: allowed, denied with a code, or as if the chart did not
    exist."""
    outcome = await OPERATIONS[operation](api, world, world[role])
    assert outcome == EXPECTED[operation][ROLES.index(role)]


# ------------------------------------------------------------------ creating and assigning


async def test_a_clinician_who_creates_a_chart_is_assigned_to_it(api):
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    admin = await factories.add_member(
        api, owner, "adm@example.com", role=Role.ADMINISTRATOR, permissions=[Permission.ASSIGN_CHARTS]
    )

    by_clinician = await factories.create_chart(api, clinician.token, "Kim Lee")
    assert [m["id"] for m in by_clinician["assignedClinicians"]] == [clinician.id]
    # The owner and administrators are not assigned by creating; they may assign on creation.
    assert (await factories.create_chart(api, owner.token, "Sam Roe"))["assignedClinicians"] == []
    by_owner = await factories.create_chart(
        api, owner.token, "Max Moe", clinicianIds=[owner.id, clinician.id, clinician.id]
    )
    assert [m["id"] for m in by_owner["assignedClinicians"]] == [clinician.id, owner.id]  # same moment: by name
    by_admin = await factories.create_chart(api, admin.token, "Ann Poe", clinicianIds=[clinician.id])
    assert [m["id"] for m in by_admin["assignedClinicians"]] == [clinician.id]
    # A clinician naming only themself needs no ASSIGN_CHARTS.
    mine = await factories.create_chart(api, clinician.token, "Lou Doe", clinicianIds=[clinician.id])
    assert [m["id"] for m in mine["assignedClinicians"]] == [clinician.id]


async def test_create_chart_keeps_the_fields_given(api):
    owner = await factories.owner(api)
    chart = await factories.create_chart(
        api,
        owner.token,
        "  Pat   Patient ",
        dateOfBirth="1984-06-01",
        email=" Pat@Example.COM ",
        phone=" +1 (555)  010-2030 ",
    )
    assert chart["patientName"] == "Pat   Patient"
    assert (chart["dateOfBirth"], chart["email"], chart["phone"], chart["status"]) == (
        "1984-06-01",
        "pat@example.com",
        "+1 (555) 010-2030",
        "ACTIVE",
    )
    blank = await factories.create_chart(api, owner.token, "No Contact", email="  ", phone="")
    assert (blank["email"], blank["phone"], blank["dateOfBirth"]) == (None, None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"patientName": ""}, "input.patientName"),
        ({"patientName": "   "}, "input.patientName"),
        ({"patientName": "x" * 201}, "input.patientName"),
        ({"email": "not-an-email"}, "input.email"),
        ({"phone": "call me"}, "input.phone"),
        ({"phone": "12345"}, "input.phone"),
        ({"phone": "+1 555 010 2030 4050 6070"}, "input.phone"),
        ({"dateOfBirth": "1899-12-31"}, "input.dateOfBirth"),
        ({"dateOfBirth": (date.today() + timedelta(days=2)).isoformat()}, "input.dateOfBirth"),
        ({"clinicianIds": ["not an id"]}, "input.clinicianIds"),
    ],
)
async def test_create_chart_rejects_bad_input_and_writes_nothing(api, fields, field):
    owner = await factories.owner(api)
    code, body = await api.error(CREATE_CHART, {"input": {"patientName": "Pat Patient", **fields}}, owner.token)
    assert (code, body["errors"][0]["extensions"]["field"]) == (BAD_INPUT, field)
    assert await Chart.all().count() == 0
    assert await audit_events("chart.created") == []


async def test_charts_are_assigned_only_to_active_owners_and_clinicians_of_the_practice(api):
    owner = await factories.owner(api)
    admin = await factories.add_member(api, owner, "adm@example.com", role=Role.ADMINISTRATOR)
    gone = await factories.add_member(api, owner, "gone@example.com", status=MemberStatus.DEACTIVATED)
    outsider = await factories.owner(api, practice="Elsewhere", email="out@example.com")
    chart = await factories.create_chart(api, owner.token)

    for member in (admin, gone):
        for query in (ASSIGN, UNASSIGN):
            code, body = await api.error(
                query, {"input": {"chartId": chart["id"], "clinicianId": member.id}}, owner.token
            )
            assert (code, body["errors"][0]["extensions"]["field"]) == (BAD_INPUT, "input.clinicianId")
        code, body = await api.error(
            CREATE_CHART, {"input": {"patientName": "X Y", "clinicianIds": [member.id]}}, owner.token
        )
        assert (code, body["errors"][0]["extensions"]["field"]) == (BAD_INPUT, "input.clinicianIds")
    code, _ = await api.error(ASSIGN, {"input": {"chartId": chart["id"], "clinicianId": outsider.id}}, owner.token)
    assert code == NOT_FOUND
    # An id of another type is NOT_FOUND; a malformed one is BAD_USER_INPUT naming the field.
    code, _ = await api.error(ASSIGN, {"input": {"chartId": owner.id, "clinicianId": owner.id}}, owner.token)
    assert code == NOT_FOUND
    code, body = await api.error(ASSIGN, {"input": {"chartId": "nope", "clinicianId": owner.id}}, owner.token)
    assert (code, body["errors"][0]["extensions"]["field"]) == (BAD_INPUT, "input.chartId")
    assert await ChartAssignment.all().count() == 0
    assert await Chart.all().count() == 1


async def test_assign_and_unassign_are_idempotent(api):
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    chart = await factories.create_chart(api, owner.token)
    variables = {"input": {"chartId": chart["id"], "clinicianId": clinician.id}}

    for _ in range(2):
        data = await api.ok(ASSIGN, variables, owner.token)
        assert data["assignChart"]["chart"]["assignedClinicians"] == [{"id": clinician.id}]
    assert await ChartAssignment.filter(clinician_id=clinician.member.id).count() == 1
    assert len(await audit_events("chart.assigned")) == 1
    for _ in range(2):
        data = await api.ok(UNASSIGN, variables, owner.token)
        assert data["unassignChart"]["chart"]["assignedClinicians"] == []
    assert await ChartAssignment.all().count() == 0
    assert len(await audit_events("chart.unassigned")) == 1


@postgres_only()
async def test_concurrent_assignments_of_the_same_clinician_make_one(api):
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    chart = await factories.create_chart(api, owner.token)
    variables = {"input": {"chartId": chart["id"], "clinicianId": clinician.id}}
    results = await asyncio.gather(*(api.post(ASSIGN, variables, owner.token) for _ in range(6)))
    assert all(not r.get("errors") for r in results), results
    assert await ChartAssignment.filter(clinician_id=clinician.member.id).count() == 1
    assert len(await audit_events("chart.assigned")) == 1


@postgres_only()
async def test_concurrent_reads_are_all_audited(api):
    owner = await factories.owner(api)
    chart = await factories.create_chart(api, owner.token)
    results = await asyncio.gather(*(api.post(NODE, {"id": chart["id"]}, owner.token) for _ in range(8)))
    assert all(not r.get("errors") and r["data"]["node"] for r in results), results
    assert len(await audit_events("chart.read")) == 8
    assert (
        audit.verify_chain(await AuditEvent.filter(practice_id=owner.member.practice_id).order_by("sequence")) is None
    )


async def test_a_clinician_with_assign_charts_finds_every_chart_but_reads_the_notes_of_their_own(api):
    owner = await factories.owner(api)
    lead = await factories.add_member(api, owner, "lead@example.com", permissions=[Permission.ASSIGN_CHARTS])
    colleague = await factories.add_member(api, owner, "col@example.com")
    mine = await factories.create_chart(api, lead.token, "Mine Patient")
    other = await factories.create_chart(api, owner.token, "Other Patient")
    await factories.add_note(api, owner.token, other["id"], "Owner's note.")
    await factories.add_note(api, lead.token, mine["id"], "Lead's note.")

    # Every chart is found, and assigned.
    assert set(edge_ids((await api.ok(CHARTS, token=lead.token))["practice"]["charts"])) == {mine["id"], other["id"]}
    data = await api.ok(ASSIGN, {"input": {"chartId": other["id"], "clinicianId": colleague.id}}, lead.token)
    assert {m["id"] for m in data["assignChart"]["chart"]["assignedClinicians"]} == {colleague.id}

    # Notes only of the charts assigned to them: FORBIDDEN (null, and nothing written) on the others.
    assert (await api.ok(CHART_NOTES, {"id": mine["id"]}, lead.token))["node"]["notes"]["totalCount"] == 1
    body = await api.post(CHART_NOTES, {"id": other["id"]}, lead.token)
    assert body["data"]["node"] == {"patientName": "Other Patient", "notes": None}
    assert body["errors"][0]["extensions"]["code"] == FORBIDDEN
    owners_note = ids.encode("ChartNote", (await ChartNote.get(body="Owner's note.")).id)
    assert (await api.ok(NODE, {"id": owners_note}, lead.token))["node"] is None
    before = await ChartNote.all().count()
    code, _ = await api.error(factories.ADD_NOTE, {"input": {"chartId": other["id"], "body": "x"}}, lead.token)
    assert code == FORBIDDEN and await ChartNote.all().count() == before

    # Taking themself off their own chart: still found, its notes now closed to them.
    await api.ok(UNASSIGN, {"input": {"chartId": mine["id"], "clinicianId": lead.id}}, lead.token)
    assert (await api.ok(NODE, {"id": mine["id"]}, lead.token))["node"] == {
        "id": mine["id"],
        "patientName": "Mine Patient",
    }
    code, _ = await api.error(factories.ADD_NOTE, {"input": {"chartId": mine["id"], "body": "x"}}, lead.token)
    assert code == FORBIDDEN


async def test_notes_of_a_chart_no_longer_visible_are_forbidden_in_a_payload(api):
    owner = await factories.owner(api)
    lead = await factories.add_member(api, owner, "lead@example.com", permissions=[Permission.ASSIGN_CHARTS])
    chart = await factories.create_chart(api, lead.token)
    await factories.add_note(api, lead.token, chart["id"], "secret")
    query = (
        "mutation($input: ChartAssignmentInput!) { unassignChart(input: $input) { chart { id notes { totalCount } } } }"
    )
    body = await api.post(query, {"input": {"chartId": chart["id"], "clinicianId": lead.id}}, lead.token)
    assert body["data"]["unassignChart"]["chart"] == {"id": chart["id"], "notes": None}
    assert body["errors"][0]["extensions"]["code"] == FORBIDDEN


async def test_deactivating_a_clinician_moves_their_charts_to_the_successor(api):
    owner = await factories.owner(api)
    leaving = await factories.add_member(api, owner, "leaving@example.com")
    successor = await factories.add_member(api, owner, "successor@example.com")
    only_leaving = await factories.create_chart(api, owner.token, "Only Leaving", clinicianIds=[leaving.id])
    shared = await factories.create_chart(api, owner.token, "Shared Patient", clinicianIds=[leaving.id, successor.id])
    assert edge_ids((await api.ok(CHARTS, token=successor.token))["practice"]["charts"]) == [shared["id"]]

    # A successor who cannot hold charts is refused, and nothing moves.
    admin = await factories.add_member(api, owner, "adm@example.com", role=Role.ADMINISTRATOR)
    code, _ = await api.error(
        DEACTIVATE, {"input": {"memberId": leaving.id, "reassignChartsTo": admin.id}}, owner.token
    )
    assert code == BAD_INPUT
    assert await ChartAssignment.filter(clinician_id=leaving.member.id).count() == 2

    await api.ok(DEACTIVATE, {"input": {"memberId": leaving.id, "reassignChartsTo": successor.id}}, owner.token)
    assert set(edge_ids((await api.ok(CHARTS, token=successor.token))["practice"]["charts"])) == {
        only_leaving["id"],
        shared["id"],
    }
    data = await api.ok(ASSIGNED_CHARTS, {"id": leaving.id}, owner.token)
    assert data["node"]["assignedCharts"]["totalCount"] == 0
    data = await api.ok(
        "query($id: ID!) { node(id: $id) { ... on Chart { assignedClinicians { id } } } }",
        {"id": only_leaving["id"]},
        owner.token,
    )
    assert data["node"]["assignedClinicians"] == [{"id": successor.id}]
    [moved] = await audit_events("chart.reassigned")
    assert moved.details["charts"] == 2


# ------------------------------------------------------------------ reading


async def test_practice_charts_pages_newest_first(api, clock):
    owner = await factories.owner(api)
    created = []
    for name in ("Ann A", "Ben B", "Cal C", "Dee D", "Eve E"):
        created.append((await factories.create_chart(api, owner.token, name))["id"])
        clock.advance(timedelta(minutes=1))
    newest_first = created[::-1]

    first = (await api.ok(CHARTS, {"first": 2}, owner.token))["practice"]["charts"]
    assert (
        edge_ids(first),
        first["totalCount"],
        first["pageInfo"]["hasNextPage"],
        first["pageInfo"]["hasPreviousPage"],
    ) == (
        newest_first[:2],
        5,
        True,
        False,
    )
    second = (await api.ok(CHARTS, {"first": 2, "after": first["pageInfo"]["endCursor"]}, owner.token))["practice"][
        "charts"
    ]
    assert (edge_ids(second), second["pageInfo"]["hasPreviousPage"]) == (newest_first[2:4], True)
    last = (await api.ok(CHARTS, {"first": 2, "after": second["pageInfo"]["endCursor"]}, owner.token))["practice"][
        "charts"
    ]
    assert (edge_ids(last), last["pageInfo"]["hasNextPage"]) == (newest_first[4:], False)
    code, _ = await api.error(CHARTS, {"first": 101}, owner.token)
    assert code == BAD_INPUT
    code, _ = await api.error(CHARTS, {"after": "garbage"}, owner.token)
    assert code == BAD_INPUT


async def test_search_matches_patient_names_case_insensitively(api):
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    names = ["Anna Smith", "JOHN SMITHERS", "Zoë Ångström", "Percent 100% Real_Name", "Bob Jones"]
    by_name = {}
    for name in names:
        assigned = [clinician.id] if name != "JOHN SMITHERS" else []
        by_name[name] = (await factories.create_chart(api, owner.token, name, clinicianIds=assigned))["id"]

    async def found(search, token=owner.token, **more):
        conn = (await api.ok(CHARTS, {"search": search, **more}, token))["practice"]["charts"]
        assert conn["totalCount"] == len(conn["edges"])
        return {edge["node"]["patientName"] for edge in conn["edges"]}

    assert await found("smith") == {"Anna Smith", "JOHN SMITHERS"}
    assert await found("SMITH") == {"Anna Smith", "JOHN SMITHERS"}
    assert await found("ÅNGSTRÖM") == {"Zoë Ångström"}
    assert await found("zoë") == {"Zoë Ångström"}
    # LIKE wildcards in the term are matched literally.
    assert await found("%") == {"Percent 100% Real_Name"}
    assert await found("_") == {"Percent 100% Real_Name"}
    assert await found("a_n") == set()
    assert await found("   ") == set(names)
    # Search combines with the clinician and status filters, and never widens what the viewer may see.
    assert await found("smith", clinicianId=clinician.id) == {"Anna Smith"}
    assert await found("smith", token=clinician.token) == {"Anna Smith"}
    await Chart.filter(id=ids.parse(by_name["Bob Jones"])[1]).update(status=ChartStatus.ARCHIVED)
    assert await found("", status="ARCHIVED") == {"Bob Jones"}
    assert await found("o", status="ACTIVE") == {"JOHN SMITHERS", "Zoë Ångström"}
    code, body = await api.error(CHARTS, {"search": "x" * 201}, owner.token)
    assert (code, body["errors"][0]["extensions"]["field"]) == (BAD_INPUT, "search")


@postgres_only("the trigram index is PostgreSQL's")
async def test_the_search_lookup_is_served_by_the_trigram_index_on_postgres(api):
    """Tortoise writes the lookup as CAST(patient_name_search AS VARCHAR) LIKE '%term%': the index must still match it.

    (Which plan wins depends on the data: at 100,000 charts the planner picks this index for selective terms.)
    """
    owner = await factories.owner(api)
    await factories.create_chart(api, owner.token, "Anna Smith")
    lookup = Chart.filter(patient_name_search__contains=charts.search_term(" SMITH "))
    async with in_transaction() as conn:
        await conn.execute_script("SET LOCAL enable_seqscan = off")
        plan = await lookup.using_db(conn).explain()
    assert "idx_charts_patient_name_trgm" in str(plan)
    assert (await api.ok(CHARTS, {"search": "SMITH"}, owner.token))["practice"]["charts"]["totalCount"] == 1


async def test_member_assigned_charts_pages_each_member_in_one_request(api, clock):
    owner = await factories.owner(api)
    ada = await factories.add_member(api, owner, "ada@example.com")
    bo = await factories.add_member(api, owner, "bo@example.com")
    ada_charts = []
    for i in range(3):
        ada_charts.append(
            (await factories.create_chart(api, owner.token, f"Ada Patient {i}", clinicianIds=[ada.id]))["id"]
        )
        clock.advance(timedelta(minutes=1))
    bo_chart = (await factories.create_chart(api, owner.token, "Bo Patient", clinicianIds=[bo.id]))["id"]

    query = """{ practice { members { edges { node { id assignedCharts(first: 2) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } } } } }"""
    members = {
        e["node"]["id"]: e["node"]["assignedCharts"]
        for e in (await api.ok(query, token=owner.token))["practice"]["members"]["edges"]
    }
    assert (edge_ids(members[ada.id]), members[ada.id]["totalCount"], members[ada.id]["pageInfo"]["hasNextPage"]) == (
        ada_charts[::-1][:2],
        3,
        True,
    )
    assert (edge_ids(members[bo.id]), members[bo.id]["totalCount"], members[bo.id]["pageInfo"]["hasNextPage"]) == (
        [bo_chart],
        1,
        False,
    )
    assert (edge_ids(members[owner.id]), members[owner.id]["totalCount"]) == ([], 0)
    rest = await api.ok(
        ASSIGNED_CHARTS, {"id": ada.id, "first": 2, "after": members[ada.id]["pageInfo"]["endCursor"]}, owner.token
    )
    assert edge_ids(rest["node"]["assignedCharts"]) == [ada_charts[0]]
    # A clinician sees only the charts they share with a colleague.
    assert (await api.ok(ASSIGNED_CHARTS, {"id": ada.id}, bo.token))["node"]["assignedCharts"]["totalCount"] == 0
    assert edge_ids(
        (await api.ok("{ viewer { assignedCharts { edges { node { id } } } } }", token=bo.token))["viewer"][
            "assignedCharts"
        ]
    ) == [bo_chart]


async def test_notes_are_newest_first_and_paged(api, clock):
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    chart = await factories.create_chart(api, clinician.token)
    written = []
    for body in ("one", "two", "three"):
        written.append(
            await factories.add_note(api, clinician.token if body != "two" else owner.token, chart["id"], body)
        )
        clock.advance(timedelta(minutes=1))
    assert written[1]["author"] == {"id": owner.id}

    page = (await api.ok(CHART_NOTES, {"id": chart["id"], "first": 2}, clinician.token))["node"]["notes"]
    assert ([e["node"]["body"] for e in page["edges"]], page["totalCount"], page["pageInfo"]["hasNextPage"]) == (
        ["three", "two"],
        3,
        True,
    )
    rest = (await api.ok(CHART_NOTES, {"id": chart["id"], "after": page["pageInfo"]["endCursor"]}, clinician.token))[
        "node"
    ]["notes"]
    assert [e["node"]["body"] for e in rest["edges"]] == ["one"]
    code, body = await api.error(factories.ADD_NOTE, {"input": {"chartId": chart["id"], "body": "  "}}, clinician.token)
    assert (code, body["errors"][0]["extensions"]["field"]) == (BAD_INPUT, "input.body")
    assert await ChartNote.all().count() == 3


async def test_an_administrator_with_view_all_charts_gets_forbidden_notes_and_the_rest_of_the_list(api):
    owner = await factories.owner(api)
    admin = await factories.add_member(
        api, owner, "adm@example.com", role=Role.ADMINISTRATOR, permissions=[Permission.VIEW_ALL_CHARTS]
    )
    chart_ids = [(await factories.create_chart(api, owner.token, f"Patient {i}"))["id"] for i in range(2)]
    await factories.add_note(api, owner.token, chart_ids[0])
    body = await api.post(
        "{ practice { name charts { edges { node { id patientName notes { totalCount } } } } } }", token=admin.token
    )
    edges = body["data"]["practice"]["charts"]["edges"]
    assert sorted(e["node"]["id"] for e in edges) == sorted(chart_ids)
    assert all(e["node"]["notes"] is None and e["node"]["patientName"] for e in edges)
    assert body["data"]["practice"]["name"] == "Calm Minds"
    assert {e["extensions"]["code"] for e in body["errors"]} == {FORBIDDEN}
    assert len(body["errors"]) == 2
    # The reads happened and are on record even though the request has errors; no notes were read.
    assert {e.target_id for e in await audit_events("chart.read")} == set(chart_ids)
    assert await audit_events("chart.notes_read") == []


# ------------------------------------------------------------------ partner tokens


async def test_partner_tokens_need_the_chart_scopes(api):
    owner = await factories.owner(api)
    chart = await factories.create_chart(api, owner.token)
    note = await factories.add_note(api, owner.token, chart["id"], "First session.")
    read_charts = await factories.api_token(owner, [TokenScope.READ_CHARTS])
    read_notes = await factories.api_token(owner, [TokenScope.READ_CHARTS, TokenScope.READ_CHART_NOTES])
    members_only = await factories.api_token(owner, [TokenScope.READ_MEMBERS])
    writer = await factories.api_token(owner, [TokenScope.WRITE_CHARTS, TokenScope.WRITE_CHART_NOTES])

    assert edge_ids((await api.ok(CHARTS, token=read_charts))["practice"]["charts"]) == [chart["id"]]
    body = await api.post(CHART_NOTES, {"id": chart["id"]}, read_charts)
    assert (body["data"]["node"]["notes"], body["errors"][0]["extensions"]["code"]) == (None, FORBIDDEN)
    assert (await api.ok(NODE, {"id": note["id"]}, read_charts))["node"] is None
    assert edge_ids((await api.ok(CHART_NOTES, {"id": chart["id"]}, read_notes))["node"]["notes"]) == [note["id"]]
    assert (await api.ok(NODE, {"id": note["id"]}, read_notes))["node"]["body"] == "First session."

    code, _ = await api.error(CHARTS, token=members_only)
    assert code == FORBIDDEN
    assert (await api.ok(NODE, {"id": chart["id"]}, members_only))["node"] is None

    created = await factories.create_chart(api, writer, "Via Partner")
    await factories.add_note(api, writer, created["id"], "From the partner.")
    code, _ = await api.error(CREATE_CHART, {"input": {"patientName": "No Scope"}}, read_charts)
    assert code == FORBIDDEN
    # assignChart carries no scope: it is for sessions alone, even for the owner's token.
    code, _ = await api.error(ASSIGN, {"input": {"chartId": chart["id"], "clinicianId": owner.id}}, writer)
    assert code == FORBIDDEN
    assert await ChartAssignment.all().count() == 0


# ------------------------------------------------------------------ the audit trail


async def test_every_chart_read_is_audited_one_event_per_chart(api):
    owner = await factories.owner(api)
    chart_ids = [(await factories.create_chart(api, owner.token, f"Patient {i}"))["id"] for i in range(3)]
    await api.ok("{ practice { charts { edges { node { id notes { totalCount } } } } } }", token=owner.token)
    reads = await audit_events("chart.read")
    assert sorted(e.target_id for e in reads) == sorted(chart_ids)
    assert {(e.actor_id, e.details["via"]) for e in reads} == {(owner.member.id, "Practice.charts")}
    assert sorted(e.target_id for e in await audit_events("chart.notes_read")) == sorted(chart_ids)

    await api.ok(NODE, {"id": chart_ids[0]}, owner.token)
    await api.ok(ASSIGNED_CHARTS, {"id": owner.id}, owner.token)  # nothing assigned: nothing read
    assert [e.target_id for e in await audit_events("chart.read")][3:] == [chart_ids[0]]
    # A chart that is not visible is not "read".
    admin = await factories.add_member(api, owner, "adm@example.com", role=Role.ADMINISTRATOR)
    assert (await api.ok(NODE, {"id": chart_ids[1]}, admin.token))["node"] is None
    assert len(await audit_events("chart.read")) == 4


async def test_chart_writes_are_audited_without_patient_data(api):
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    chart = await factories.create_chart(api, owner.token, "Very Private Name", clinicianIds=[clinician.id])
    await factories.add_note(api, clinician.token, chart["id"], "very private note")
    await api.ok(UNASSIGN, {"input": {"chartId": chart["id"], "clinicianId": clinician.id}}, owner.token)
    await api.ok(NODE, {"id": chart["id"]}, owner.token)

    events = await AuditEvent.filter(practice_id=owner.member.practice_id).order_by("sequence")
    chart_events = [(e.action, e.target_id, e.details) for e in events if e.action.startswith("chart.")]
    [note_id] = await ChartNote.all().values_list("id", flat=True)
    assert chart_events == [
        ("chart.created", chart["id"], None),
        ("chart.assigned", chart["id"], {"clinician": clinician.id}),
        ("chart.note_added", chart["id"], {"note": ids.encode("ChartNote", note_id)}),
        ("chart.unassigned", chart["id"], {"clinician": clinician.id}),
        ("chart.read", chart["id"], {"via": "node"}),
    ]
    assert [e.actor_id for e in events if e.action.startswith("chart.")][2] == clinician.member.id
    assert "private" not in str([e.details for e in events])
    assert audit.verify_chain(events) is None


# ------------------------------------------------------------------ cost


NESTED = """query($n: Int) { practice {
  charts(first: $n) { totalCount edges { node { id patientName assignedClinicians { id name }
    notes(first: 2) { totalCount edges { node { id body author { id name } } } } } } }
  members { edges { node { id assignedCharts(first: $n) { totalCount edges { node { id assignedClinicians { id } } } } }
  } } } }"""


async def test_sql_statements_per_request_do_not_grow_with_the_page_size(api, caplog):
    owner = await factories.owner(api)
    team = [await factories.add_member(api, owner, f"c{i}@example.com") for i in range(3)]
    for i in range(12):
        chart = await factories.create_chart(
            api, owner.token, f"Patient {i}", clinicianIds=[team[i % 3].id, team[(i + 1) % 3].id]
        )
        for j in range(3):
            await factories.add_note(api, owner.token, chart["id"], f"note {j}")

    async def run(page_size: int) -> tuple[dict, int]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            data = await api.ok(NESTED, {"n": page_size}, owner.token)
        return data, sum(1 for r in caplog.records if r.name == "tortoise.db_client")

    small, small_statements = await run(2)
    large, large_statements = await run(10)
    charts_conn = large["practice"]["charts"]
    assert (len(small["practice"]["charts"]["edges"]), len(charts_conn["edges"]), charts_conn["totalCount"]) == (
        2,
        10,
        12,
    )
    assert all(
        len(e["node"]["assignedClinicians"]) == 2 and len(e["node"]["notes"]["edges"]) == 2
        for e in charts_conn["edges"]
    )
    assert sorted(e["node"]["assignedCharts"]["totalCount"] for e in large["practice"]["members"]["edges"]) == [
        0,
        8,
        8,
        8,
    ]
    assert 0 < small_statements == large_statements


# ------------------------------------------------------------------ data safety


def test_foreign_keys_of_patient_data_never_cascade():
    for model in (Chart, ChartAssignment, ChartNote):
        for name in model._meta.fk_fields:
            assert model._meta.fields_map[name].on_delete == tortoise_fields.RESTRICT, f"{model.__name__}.{name}"


async def test_deleting_a_member_or_a_practice_never_deletes_charts_or_notes(api):
    owner = await factories.owner(api)
    # Never logged in, so nothing but chart data points at these members.
    holder = await factories.add_member(api, owner, "holder@example.com", log_in=False)
    author = await factories.add_member(api, owner, "author@example.com", log_in=False)
    chart = await factories.create_chart(api, owner.token, clinicianIds=[holder.id])
    chart_pk = ids.parse(chart["id"])[1]
    await ChartNote.create(
        id=uuid.uuid4(), chart_id=chart_pk, author_id=author.member.id, body="x", created_at=datetime.now(UTC)
    )

    for doomed in (
        Member.filter(id=holder.member.id),
        Member.filter(id=author.member.id),
        Practice.filter(id=owner.member.practice_id),
        Chart.filter(id=chart_pk),
    ):
        with pytest.raises(IntegrityError):
            await doomed.delete()
    assert await Chart.filter(id=chart_pk).exists()
    assert await ChartAssignment.filter(chart_id=chart_pk, clinician_id=holder.member.id).exists()
    assert await ChartNote.filter(chart_id=chart_pk, author_id=author.member.id).exists()


async def test_notes_are_append_only(api):
    # The API offers no way to change or delete a note...
    data = await api.ok('{ __type(name: "Mutation") { fields { name } } }')
    assert [f["name"] for f in data["__type"]["fields"] if "note" in f["name"].lower()] == ["addChartNote"]

    owner = await factories.owner(api)
    chart = await factories.create_chart(api, owner.token)
    await factories.add_note(api, owner.token, chart["id"], "as written")
    note = await ChartNote.get(chart_id=ids.parse(chart["id"])[1])
    # ...and the ORM refuses to, whatever the code path.
    note.body = "rewritten"
    for attempt in (note.save, note.delete, ChartNote.all().delete, lambda: ChartNote.all().update(body="rewritten")):
        with pytest.raises(OperationalError):
            await attempt()
    assert await ChartNote.all().values_list("body", flat=True) == ["as written"]


@postgres_only()
async def test_concurrent_chart_writes_in_one_practice_all_succeed(api):
    """Each write locks the practice row for its audit events while its own rows point at the practice."""
    owner = await factories.owner(api)
    clinician = await factories.add_member(api, owner, "ada@example.com")
    chart = await factories.create_chart(api, owner.token)
    writes = [
        api.post(CREATE_CHART, {"input": {"patientName": f"Patient {i}", "clinicianIds": [clinician.id]}}, owner.token)
        for i in range(6)
    ]
    writes += [
        api.post(factories.ADD_NOTE, {"input": {"chartId": chart["id"], "body": f"note {i}"}}, owner.token)
        for i in range(6)
    ]
    results = await asyncio.gather(*writes)
    assert all(not r.get("errors") for r in results), [r["errors"] for r in results if r.get("errors")]
    assert (await Chart.all().count(), await ChartNote.all().count()) == (7, 6)
    assert (
        audit.verify_chain(await AuditEvent.filter(practice_id=owner.member.practice_id).order_by("sequence")) is None
    )
