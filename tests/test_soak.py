"""Concurrency soak on PostgreSQL: about 50 clients against a real ``groups-api serve`` on 127.0.0.1 for a bounded
time, mixing every kind of write with reads (tests/soak_load.py), then the invariants of tests/soak_invariants.py.

CI runs it shortened (GROUPS_API_SOAK_SECONDS, default 12); the full run is GROUPS_API_SOAK_SECONDS=60 (and
GROUPS_API_SOAK_CLIENTS, default 50; GROUPS_API_SOAK_WORKERS, uvicorn workers, default 2). The figures are printed
(pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import json
import os

import asyncpg

from models import ChartAssignment, Member
from models.enums import Role
from server.db import throwaway_postgres_database
from tests import factories_charts as charts
from tests.conftest import PG_URL, postgres_only
from tests.soak_invariants import check, uuid_of
from tests.soak_load import Soak
from tests.soak_server import Server

SECONDS = float(os.environ.get("GROUPS_API_SOAK_SECONDS", "12"))
CLIENTS = int(os.environ.get("GROUPS_API_SOAK_CLIENTS", "50"))
WORKERS = int(os.environ.get("GROUPS_API_SOAK_WORKERS", "2"))


@postgres_only("the soak needs PostgreSQL's real concurrency")
async def test_concurrent_clients_leave_every_invariant_holding(tmp_path):
    async with throwaway_postgres_database(PG_URL, "groups_api_soak") as database_url:
        server = Server(database_url, workers=WORKERS, log=tmp_path / "server.log")
        server.start()
        soak = Soak(server.url, seed=int(os.environ.get("GROUPS_API_SOAK_SEED", "1")))
        try:
            await soak.set_up()
            await soak.run(clients=CLIENTS, seconds=SECONDS)
        finally:
            await soak.aclose()
            server.stop()
        outcomes = soak.outcomes
        print(f"\nsoak: {CLIENTS} clients, {WORKERS} workers, {SECONDS:.0f} s: {outcomes.summary()}")
        assert not outcomes.defects, "\n".join(outcomes.defects[:20])
        # Not vacuous: every kind of write went through many times.
        written = {action for (action, outcome), n in outcomes.counts.items() if outcome == "ok" and n >= 3}
        assert {
            "charge",
            "payment",
            "invoice",
            "statement",
            "invite",
            "accept",
            "role change",
            "assign",
            "read",
        } <= written
        problems = await check(database_url, soak.acknowledged)
        assert not problems, "\n".join(problems[:30])
        await check_the_checks(database_url, soak)


TAMPERING = {
    "balance of clinician": (
        "UPDATE billing_balances SET balance_cents = balance_cents + 1 WHERE id = (SELECT id FROM "
        "billing_balances LIMIT 1)"
    ),
    # never cancels the +1 above
    "is stored as": "UPDATE billing_entries SET delta_cents = delta_cents + 1000 WHERE id = $1",
    "numbered up to": (
        "UPDATE invoices SET sequence = sequence + 1000 WHERE sequence = (SELECT MAX(sequence) FROM invoices)"
    ),
    "its payments sum to": (
        "UPDATE invoices SET paid_cents = paid_cents + 1 WHERE id = (SELECT id FROM invoices LIMIT 1)"
    ),
    "is assigned to": (
        "UPDATE members SET role = 'ADMINISTRATOR' WHERE id = (SELECT clinician_id FROM chart_assignments LIMIT 1)"
    ),
    "audit chain": (
        "UPDATE audit_events SET action = 'tampered' WHERE id = (SELECT id FROM audit_events ORDER BY sequence LIMIT 1)"
    ),
}


async def check_the_checks(database_url: str, soak: Soak) -> None:
    """The invariant checks are not vacuous: each kind of damage done to the soak's database is reported."""
    entry = uuid_of(next(iter(soak.acknowledged.entries)))
    connection = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        for statement in TAMPERING.values():
            await connection.execute(statement, *([entry] if "$1" in statement else []))
    finally:
        await connection.close()
    problems = "\n".join(await check(database_url, soak.acknowledged))
    assert [symptom for symptom in TAMPERING if symptom not in problems] == [], problems


# ------------------------------------------------------------------ what the soak found, each as a focused race

UPDATE_MEMBER = "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id role } } }"
ASSIGN = "mutation($i: ChartAssignmentInput!) { assignChart(input: $i) { chart { id } } }"
ROUNDS = 6


async def race(api, *requests: tuple[str, dict, str]) -> list[dict]:
    return await asyncio.gather(*(api.post(query, variables, token) for query, variables, token in requests))


@postgres_only()
async def test_a_role_change_racing_chart_assignments_leaves_no_chart_with_an_administrator(api):
    """Was broken: assignChart checked the clinician's role before its transaction while updateMember took their
    charts away, so an assignment committed after the role change stayed with an administrator."""
    owner = await charts.owner(api)
    chart_ids = [(await charts.create_chart(api, owner.token, f"Patient {i}"))["id"] for i in range(8)]
    for round_ in range(ROUNDS):
        member = await charts.add_member(api, owner, f"flip{round_}@example.com")
        to_admin = (UPDATE_MEMBER, {"i": {"memberId": member.id, "role": "ADMINISTRATOR"}}, owner.token)
        assigns = [(ASSIGN, {"i": {"chartId": chart, "clinicianId": member.id}}, owner.token) for chart in chart_ids]
        await race(api, *assigns[:4], to_admin, *assigns[4:])
        assert await ChartAssignment.filter(clinician_id=member.member.id).count() == 0


@postgres_only()
async def test_concurrent_changes_of_one_member_do_not_undo_each_other(api):
    """Was broken: updateMember read the member before taking the practice lock and saved the whole row, so a
    plan change queued behind a role change wrote the old role back (the audit log said ADMINISTRATOR)."""
    owner = await charts.owner(api)
    for round_ in range(ROUNDS):
        member = await charts.add_member(api, owner, f"change{round_}@example.com")
        to_admin = (UPDATE_MEMBER, {"i": {"memberId": member.id, "role": "ADMINISTRATOR"}}, owner.token)
        new_plan = (UPDATE_MEMBER, {"i": {"memberId": member.id, "planCode": "therapist-essential"}}, owner.token)
        role_change, _ = await race(api, to_admin, new_plan)
        assert not role_change.get("errors"), role_change
        assert (await Member.get(id=member.member.id)).role == Role.ADMINISTRATOR


@postgres_only()
async def test_seat_changes_and_audited_writes_at_once_do_not_deadlock(api):
    """Was broken (deadlock detected, INTERNAL): a seat change held the practice row FOR UPDATE and waited for the
    audit chain head, while an audit append held the head and inserted an event, whose foreign key needs a KEY
    SHARE lock on the same practice row. The practice lock is FOR NO KEY UPDATE now."""
    owner = await charts.owner(api)
    chart_ids = [
        (await charts.create_chart(api, owner.token, f"Patient {i}", clinicianIds=[owner.id]))["id"] for i in range(4)
    ]
    invite = "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invitation { id } } }"
    note = "mutation($i: AddChartNoteInput!) { addChartNote(input: $i) { note { id } } }"
    for round_ in range(ROUNDS):
        invites = [
            (invite, {"i": {"email": f"n{round_}-{i}@example.com", "role": "ADMINISTRATOR"}}, owner.token)
            for i in range(4)
        ]
        notes = [(note, {"i": {"chartId": chart, "body": "Seen."}}, owner.token) for chart in chart_ids]
        answers = await race(api, *[request for pair in zip(invites, notes, strict=True) for request in pair])
        assert [a.get("errors") for a in answers] == [None] * len(answers)


@postgres_only("the soak's server runs on PostgreSQL")
async def test_every_worker_logs_json(tmp_path):
    """Was broken: with --workers, the worker processes had no logging set up, so the invitation mail logged at INFO
    outside production vanished and errors were printed bare (no JSON, no request id field)."""
    async with throwaway_postgres_database(PG_URL, "groups_api_soak") as database_url:
        server = Server(database_url, workers=2, log=tmp_path / "server.log", log_level="INFO")
        server.start()
        soak = Soak(server.url)
        try:
            await soak.set_up(clinicians=1, flippers=0, charts=1)
        finally:
            await soak.aclose()
            server.stop()
    records = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    mails = [r for r in records if r["message"].startswith("mail (not sent")]
    assert mails and all(r["request_id"] for r in mails)
