"""Security issue 12, items 7 and 11: the audit log cannot be flooded, and ``audit verify`` notices a chain that was
cut, deleted or moved.

Item 7: a chart is recorded as read only when its fields were returned, once per chart per request whatever the
number of aliases or routes (lists, node), and a denial once per field name per request. Every read that returns
chart data is still on record before the response leaves (or the response is withheld).

Item 11: the verifier is run on a database tampered with directly (Tortoise, raw SQL).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import httpx
from tortoise.transactions import in_transaction

from models import AuditEvent, AuditHead, Practice
from models.enums import Role
from resolvers import audit
from server.app import create_app
from tests import factories_charts as factories
from tests.conftest import Api

# ------------------------------------------------------------------ item 7: audit amplification


async def chart_reads(practice_id: uuid.UUID) -> list[AuditEvent]:
    return await AuditEvent.filter(practice_id=practice_id, action="chart.read").order_by("sequence")


async def denials(practice_id: uuid.UUID) -> list[AuditEvent]:
    return await AuditEvent.filter(practice_id=practice_id, action="auth.denied").order_by("sequence")


def aliased(count: int, field: str) -> str:
    return " ".join(f"a{i}: {field}" for i in range(count))


async def test_item7_total_count_only_records_no_reads(api):
    owner = await factories.owner(api)
    practice_id = owner.member.practice_id
    for i in range(3):
        await factories.create_chart(api, owner.token, f"Patient {i}", clinicianIds=[owner.id])

    # 40 aliases of the chart list selecting only totalCount and pageInfo, and the same through Member.assignedCharts.
    counts = aliased(20, "charts(first: 100) { totalCount pageInfo { hasNextPage endCursor startCursor } }")
    nested = aliased(20, "assignedCharts(first: 100) { totalCount pageInfo { hasNextPage } }")
    data = await api.ok(f"{{ practice {{ {counts} }} viewer {{ {nested} }} }}", token=owner.token)
    assert data["practice"]["a0"]["totalCount"] == 3 and data["viewer"]["a19"]["totalCount"] == 3
    assert await chart_reads(practice_id) == []

    # A list that returns its charts' fields records them, and only them.
    data = await api.ok(
        "{ practice { total: charts { totalCount } page: charts(first: 2) { edges { node { patientName } } } } }",
        token=owner.token,
    )
    assert [e["node"]["patientName"] for e in data["practice"]["page"]["edges"]] == ["Patient 2", "Patient 1"]
    reads = await chart_reads(practice_id)
    assert len(reads) == 2 and {e.details["via"] for e in reads} == {"Practice.charts"}


async def test_item7_one_read_event_per_chart_per_request(api):
    owner = await factories.owner(api)
    practice_id = owner.member.practice_id
    chart_ids = [
        (await factories.create_chart(api, owner.token, f"Patient {i}", clinicianIds=[owner.id]))["id"]
        for i in range(3)
    ]

    # The same charts through 10 aliases of the list, 10 of node(), Member.assignedCharts and a fragment.
    lists = aliased(10, "charts(first: 100) { edges { node { id patientName } } }")
    nodes = " ".join(f'n{i}: node(id: "{chart_ids[0]}") {{ ... on Chart {{ patientName }} }}' for i in range(10))
    query = f"""{{ practice {{ {lists} more: charts {{ ...Page }} }} viewer {{ assignedCharts {{ ...Page }} }} {nodes}
    }}
        fragment Page on ChartConnection {{ edges {{ node {{ id dateOfBirth }} }} }}"""
    data = await api.ok(query, token=owner.token)
    assert len(data["practice"]["a9"]["edges"]) == 3 and data["n9"]["patientName"] == "Patient 0"
    reads = await chart_reads(practice_id)
    assert sorted(e.target_id for e in reads) == sorted(chart_ids)
    assert all(e.actor_id == owner.member.id for e in reads)

    # The rule is per request: the next request that reads them is recorded again.
    await api.ok(query, token=owner.token)
    assert Counter(e.target_id for e in await chart_reads(practice_id)) == dict.fromkeys(chart_ids, 2)


async def test_item7_one_denial_event_per_field(api):
    owner = await factories.owner(api)
    practice_id = owner.member.practice_id
    clinician = await factories.add_member(api, owner, "casey@example.com")

    code, body = await api.error(
        f"{{ practice {{ {aliased(40, 'apiTokens { totalCount }')} }} }}", token=clinician.token
    )
    assert code == "FORBIDDEN" and len(body["errors"]) == 40
    [denied] = await denials(practice_id)
    assert denied.actor_id == clinician.member.id
    assert denied.details["field"] == "apiTokens" and "MANAGE_API_TOKENS" in denied.details["reason"]

    # Two different denied fields are two events (each field once, whatever its aliases).
    query = f"{{ practice {{ {aliased(20, 'apiTokens { totalCount }')} log: auditLog {{ edges {{ cursor }} }} }} }}"
    _, body = await api.error(query, token=clinician.token)
    assert len(body["errors"]) == 21
    assert [e.details["field"] for e in (await denials(practice_id))[1:]] == ["apiTokens", "auditLog"]


async def test_item7_every_read_that_returns_chart_data_is_recorded_or_withheld(api, monkeypatch):
    owner = await factories.owner(api)
    practice_id = owner.member.practice_id
    admin = await factories.add_member(api, owner, "adm@example.com", role=Role.ADMINISTRATOR)
    clinician = await factories.add_member(api, owner, "casey@example.com")
    chart = await factories.create_chart(api, owner.token, "Very Private Name", clinicianIds=[owner.id, clinician.id])

    # A read beside a denied field is on record, though the request has errors.
    body = await api.post(
        """query($id: ID!) { practice { charts { edges { node { patientName } } } apiTokens { totalCount } }
             node(id: $id) { ... on Chart { patientName } } }""",
        {"id": chart["id"]},
        clinician.token,
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["data"]["practice"]["charts"]["edges"][0]["node"]["patientName"] == "Very Private Name"
    assert [(e.target_id, e.actor_id) for e in await chart_reads(practice_id)] == [(chart["id"], clinician.member.id)]

    # A read through node() alone, selecting only the id, is a read too.
    await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": chart["id"]}, owner.token)
    assert len(await chart_reads(practice_id)) == 2
    # A chart the caller may not see is no read.
    assert (await api.ok("query($id: ID!) { node(id: $id) { id } }", {"id": chart["id"]}, admin.token))["node"] is None
    assert len(await chart_reads(practice_id)) == 2

    async def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    # When the reads cannot be written, no chart data leaves: the response is withheld.
    monkeypatch.setattr(audit, "record_many", broken)
    for query in (
        "{ practice { charts { totalCount edges { node { patientName } } } } }",
        "{ viewer { assignedCharts { edges { node { patientName } } } } }",
        "query($id: ID!) { node(id: $id) { ... on Chart { patientName } } }",
    ):
        body = await api.post(query, {"id": chart["id"]}, owner.token)
        assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
        assert "Very Private Name" not in str(body)
    # Nothing to record, nothing withheld.
    assert (await api.ok("{ practice { charts { totalCount } } }", token=owner.token))["practice"]["charts"][
        "totalCount"
    ] == 1


# ------------------------------------------------------------------ item 11: audit verify


async def _two_practices(api) -> tuple[Practice, Practice]:
    await api.sign_up()
    await api.sign_up(practice="Other Place", email="boss@example.com")
    for _ in range(3):
        await api.log_in("calm-minds", "owner@example.com")
    assert await audit.verify_all() == []
    return await Practice.get(slug="calm-minds"), await Practice.get(slug="other-place")


async def test_item11_verify_reports_deleted_head_and_newest_events(api):
    calm, _ = await _two_practices(api)
    events = await AuditEvent.filter(practice_id=calm.id).order_by("sequence")
    await AuditEvent.filter(id__in=[e.id for e in events[-2:]]).delete()
    await AuditHead.filter(practice_id=calm.id).delete()

    problems = await audit.verify_all()
    assert len(problems) == 1, problems
    assert "practice calm-minds" in problems[0] and str(calm.id) in problems[0]
    assert "no chain head" in problems[0]


async def test_item11_verify_reports_a_head_that_does_not_match_the_newest_event(api):
    calm, _ = await _two_practices(api)
    head = await AuditHead.get(practice_id=calm.id)
    await AuditHead.filter(practice_id=calm.id).update(hash="f" * 64)
    problems = await audit.verify_all()
    assert len(problems) == 1 and "practice calm-minds" in problems[0] and "head" in problems[0], problems
    await AuditHead.filter(practice_id=calm.id).update(hash=head.hash, sequence=head.sequence + 1)
    problems = await audit.verify_all()
    assert len(problems) == 1 and "missing at the end" in problems[0], problems


async def test_item11_verify_reports_deleted_chain(api):
    calm, other = await _two_practices(api)
    # The whole chain and its head.
    await AuditEvent.filter(practice_id=calm.id).delete()
    await AuditHead.filter(practice_id=calm.id).delete()
    # Only the chain, and everything but the sign-up event (which then is also the newest).
    await AuditEvent.filter(practice_id=other.id).delete()

    problems = await audit.verify_all()
    assert len(problems) == 2, problems
    calm_problem, other_problem = problems
    assert (
        "practice calm-minds" in calm_problem
        and "no chain head" in calm_problem
        and "practice.signed_up" in calm_problem
    )
    assert "practice other-place" in other_problem and "practice.signed_up" in other_problem


async def test_item11_verify_reports_a_chain_that_does_not_start_with_the_sign_up(api):
    calm, _ = await _two_practices(api)
    await AuditEvent.filter(practice_id=calm.id, sequence=1).update(action="auth.logged_in")
    problems = await audit.verify_all()
    assert len(problems) == 1 and "practice calm-minds" in problems[0], problems


async def _move_events(from_id: uuid.UUID, to_id: uuid.UUID) -> None:
    """What an intruder with database access does: foreign keys checks off, events and head moved to ``to_id``."""
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_script("SET LOCAL session_replication_role = replica")
            await conn.execute_query(
                "UPDATE audit_events SET practice_id = $1 WHERE practice_id = $2", [to_id, from_id]
            )
            await conn.execute_query("UPDATE audit_heads SET practice_id = $1 WHERE practice_id = $2", [to_id, from_id])
            return
    conn = AuditEvent._meta.db
    await conn.execute_script("PRAGMA foreign_keys = OFF")  # outside any transaction, or SQLite ignores it
    try:
        for table in ("audit_events", "audit_heads"):
            await conn.execute_query(
                f"UPDATE {table} SET practice_id = ? WHERE practice_id = ?", [str(to_id), str(from_id)]
            )
    finally:
        await conn.execute_script("PRAGMA foreign_keys = ON")


async def test_item11_verify_reports_events_of_unknown_practice(api):
    _, other = await _two_practices(api)
    unknown = uuid.uuid4()
    await _move_events(other.id, unknown)
    assert await AuditEvent.filter(practice_id=unknown).count() == 1

    problems = await audit.verify_all()
    assert len(problems) == 2, problems
    assert any("practice other-place" in p and "no chain head" in p for p in problems)
    [moved] = [p for p in problems if str(unknown) in p]
    assert "unknown practice" in moved and "1 event" in moved


async def test_item11_verify_command_exits_1_and_names_the_practice(settings, clock, tmp_path: Path):
    database_url = f"sqlite://{tmp_path / 'audit.sqlite3'}"
    application = create_app(settings.with_(database_url=database_url), clock=clock, generate_schemas=True)
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        await Api(http).sign_up()

    def verify() -> subprocess.CompletedProcess:
        env = {**os.environ, "GROUPS_API_JWT_SECRET": "x" * 40, "GROUPS_API_ENV": "development"}
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "audit", "verify", "--database-url", database_url],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=120,
        )

    assert verify().returncode == 0
    async with application.router.lifespan_context(application):
        await AuditEvent.all().delete()
        await AuditHead.all().delete()
    broken = verify()
    assert broken.returncode == 1, broken.stdout
    assert "practice calm-minds" in broken.stdout and "no chain head" in broken.stdout
