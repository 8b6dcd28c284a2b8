"""The event feed (Practice.events): one thin event per change, in the change's transaction, oldest first with a
resumable cursor that no later commit ever slips behind, filtered by what the caller may read now."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from models import AuditEvent, Event, Member
from models.enums import MemberStatus, Permission, Role, TokenScope
from resolvers import events, ids, subscriptions
from tests.conftest import postgres_only
from tests.factories_billing import CREATE_INVOICE, GENERATE_STATEMENT, Group, charge, make_group, partner_token, pay
from tests.factories_subscriptions import accept, invite

FEED = """query($first: Int, $after: String, $types: [EventType!]) { practice { events(first: $first, after: $after,
types: $types) {
  edges { cursor node { id type subjectId occurredAt } } pageInfo { hasNextPage hasPreviousPage endCursor } } } }"""
CREATE_CHART = "mutation($i: CreateChartInput!) { createChart(input: $i) { chart { id } } }"
ASSIGN = "mutation($i: ChartAssignmentInput!) { assignChart(input: $i) { chart { id } } }"
UNASSIGN = "mutation($i: ChartAssignmentInput!) { unassignChart(input: $i) { chart { id } } }"
UPDATE_MEMBER = "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id } } }"
PERMISSIONS = "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id } } }"
DEACTIVATE = "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id } } }"
REACTIVATE = "mutation($i: ReactivateMemberInput!) { reactivateMember(input: $i) { member { id } } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on Event { type subjectId } } }"


async def feed(
    api, token: str, *, first: int | None = 100, after: str | None = None, types: list[str] | None = None
) -> dict:
    return (await api.ok(FEED, {"first": first, "after": after, "types": types}, token))["practice"]["events"]


async def seen(api, token: str, **kwargs) -> list[tuple[str, str]]:
    return [(e["node"]["type"], e["node"]["subjectId"]) for e in (await feed(api, token, **kwargs))["edges"]]


async def create_chart(api, token: str, name: str = "Pat Patient", clinicians: list[str] | None = None) -> str:
    data = await api.ok(CREATE_CHART, {"i": {"patientName": name, "clinicianIds": clinicians}}, token)
    return data["createChart"]["chart"]["id"]


async def test_each_change_is_one_event_oldest_first(api, group: Group):
    owner, ann, ben = group.owner, group.ann, group.ben
    assert await seen(api, owner.token) == []  # sign-up, activation and the rows the factory inserted are no events
    chart = await create_chart(api, owner.token, clinicians=[ann.id])
    await api.ok(ASSIGN, {"i": {"chartId": chart, "clinicianId": ben.id}}, owner.token)
    await api.ok(
        ASSIGN, {"i": {"chartId": chart, "clinicianId": ben.id}}, owner.token
    )  # idempotent: no change, no event
    await api.ok(UNASSIGN, {"i": {"chartId": chart, "clinicianId": ben.id}}, owner.token)
    entry = (await charge(api, owner, chart, ann, "100.00"))["entry"]["id"]
    invoice = (await api.ok(CREATE_INVOICE, {"i": {"chartId": chart, "clinicianIds": [ann.id]}}, owner.token))[
        "createInvoice"
    ]["invoice"]["id"]
    partial = (await pay(api, owner, chart, ann, "40.00", invoice=invoice))["entry"]["id"]
    rest = (await pay(api, owner, chart, ann, "60.00", invoice=invoice))["entry"]["id"]
    statement = (
        await api.ok(
            GENERATE_STATEMENT,
            {"i": {"chartId": chart, "clinicianIds": [ann.id], "periodStart": "2026-03-01", "periodEnd": "2026-03-31"}},
            owner.token,
        )
    )["generateStatement"]["statement"]["id"]
    await api.ok(UPDATE_MEMBER, {"i": {"memberId": ben.id, "planCode": "erx-lite", "role": "CLINICIAN"}}, owner.token)
    await api.ok(PERMISSIONS, {"i": {"memberId": ben.id, "permissions": ["VIEW_BILLING"]}}, owner.token)
    await api.ok(DEACTIVATE, {"i": {"memberId": ben.id}}, owner.token)
    await api.ok(REACTIVATE, {"i": {"memberId": ben.id}}, owner.token)
    assert await seen(api, owner.token) == [
        ("CHART_CREATED", chart),  # its first assignment is part of it
        ("CHART_ASSIGNMENT_CHANGED", chart),
        ("CHART_ASSIGNMENT_CHANGED", chart),
        ("BILLING_ENTRY_RECORDED", entry),
        ("INVOICE_CREATED", invoice),
        ("BILLING_ENTRY_RECORDED", partial),  # the invoice is not paid yet
        ("BILLING_ENTRY_RECORDED", rest),
        ("INVOICE_PAID", invoice),
        ("STATEMENT_GENERATED", statement),
        ("MEMBER_UPDATED", ben.id),  # one change of plan (and an unchanged role): one event
        ("MEMBER_UPDATED", ben.id),
        ("MEMBER_DEACTIVATED", ben.id),
        ("MEMBER_REACTIVATED", ben.id),
    ]
    rows = await Event.filter(practice_id=group.practice.id).order_by("sequence", "position")
    assert all(row.created_at.utcoffset() == timedelta(0) for row in rows)
    # Each event sits at the chain position of the audit event that caused it.
    for row in rows:
        audit_row = await AuditEvent.get(practice_id=group.practice.id, sequence=row.sequence)
        assert events.ACTIONS[audit_row.action] in (row.type, events.E.BILLING_ENTRY_RECORDED)


async def test_accepting_an_invitation_is_member_joined_and_sign_up_is_nothing(api, group: Group):
    issued = await invite(api, group.owner.token, "new@example.com")
    joined = await accept(api, issued["token"])
    assert await seen(api, group.owner.token) == [("MEMBER_JOINED", joined["member"]["id"])]
    other = await api.sign_up(practice="Other Place", email="other@example.com")
    assert await seen(api, other["accessToken"]) == []


async def test_the_feed_resumes_from_its_last_cursor(api, group: Group):
    owner = group.owner
    charts = [await create_chart(api, owner.token, f"Patient {i}") for i in range(5)]
    page = await feed(api, owner.token, first=2)
    assert [e["node"]["subjectId"] for e in page["edges"]] == charts[:2]
    assert page["pageInfo"]["hasNextPage"] is True
    page = await feed(api, owner.token, first=10, after=page["pageInfo"]["endCursor"])
    assert [e["node"]["subjectId"] for e in page["edges"]] == charts[2:]
    cursor = page["pageInfo"]["endCursor"]
    assert (await feed(api, owner.token, after=cursor))["edges"] == []  # caught up: keep the cursor
    entry = (await charge(api, owner, charts[0], owner, "10.00"))["entry"]["id"]
    later = await create_chart(api, owner.token, "Patient 5")
    assert [
        (e["node"]["type"], e["node"]["subjectId"]) for e in (await feed(api, owner.token, after=cursor))["edges"]
    ] == [
        ("BILLING_ENTRY_RECORDED", entry),
        ("CHART_CREATED", later),
    ]
    assert await seen(api, owner.token, after=cursor, types=["CHART_CREATED"]) == [("CHART_CREATED", later)]
    assert await seen(api, owner.token, types=[]) == []
    code, body = await api.error(FEED, {"after": "not-a-cursor"}, owner.token)
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "after")


async def test_a_clinician_sees_events_of_their_own_charts_and_entries(api, group: Group):
    owner, ann = group.owner, group.ann
    ann_chart = await create_chart(api, owner.token, "Annie Only", clinicians=[ann.id])
    ben_chart = await create_chart(api, owner.token, "Benny Only", clinicians=[group.ben.id])
    ann_entry = (await charge(api, owner, ann_chart, ann, "10.00"))["entry"]["id"]
    await charge(api, owner, ben_chart, group.ben, "20.00")
    await api.ok(PERMISSIONS, {"i": {"memberId": group.ben.id, "permissions": ["VIEW_BILLING"]}}, owner.token)
    assert await seen(api, ann.token) == [
        ("CHART_CREATED", ann_chart),
        ("BILLING_ENTRY_RECORDED", ann_entry),
        ("MEMBER_UPDATED", group.ben.id),
    ]
    # Taken off her chart, she no longer sees its events: the rule is the one of reading the chart, now.
    await api.ok(UNASSIGN, {"i": {"chartId": ann_chart, "clinicianId": ann.id}}, owner.token)
    assert ("CHART_CREATED", ann_chart) not in await seen(api, ann.token)
    # An administrator without VIEW_BILLING or chart permissions sees the member events only.
    admin = await group.member("Ada Admin", Role.ADMINISTRATOR)
    assert {kind for kind, _ in await seen(api, admin.token)} == {"MEMBER_UPDATED"}
    # With VIEW_BILLING: every billing event of the practice.
    biller = await group.member("Bill Biller", Role.ADMINISTRATOR, [Permission.VIEW_BILLING])
    assert [kind for kind, _ in await seen(api, biller.token)].count("BILLING_ENTRY_RECORDED") == 2
    # Another practice's events never show, by feed or by node.
    other = await make_group(api, practice="Elsewhere", email="else@example.com")
    assert await seen(api, other.owner.token) == []
    event_id = (await feed(api, owner.token, first=1))["edges"][0]["node"]["id"]
    assert (await api.ok(NODE, {"id": event_id}, other.owner.token))["node"] is None
    assert (await api.ok(NODE, {"id": event_id}, owner.token))["node"]["subjectId"] == ann_chart


async def test_a_partner_token_sees_the_types_its_scopes_cover_and_its_creators_rows(api, group: Group):
    owner, ann = group.owner, group.ann
    ann_chart = await create_chart(api, owner.token, "Annie Only", clinicians=[ann.id])
    ben_chart = await create_chart(api, owner.token, "Benny Only", clinicians=[group.ben.id])
    entry = (await charge(api, owner, ann_chart, ann, "10.00"))["entry"]["id"]
    ben_entry = (await charge(api, owner, ben_chart, group.ben, "10.00"))["entry"]["id"]
    await api.ok(UPDATE_MEMBER, {"i": {"memberId": ann.id, "planCode": "erx-lite"}}, owner.token)
    billing = await partner_token(group, owner, [TokenScope.READ_BILLING])
    assert await seen(api, billing.token) == [("BILLING_ENTRY_RECORDED", entry), ("BILLING_ENTRY_RECORDED", ben_entry)]
    members = await partner_token(group, owner, [TokenScope.READ_MEMBERS])
    assert await seen(api, members.token) == [("MEMBER_UPDATED", ann.id)]
    # Ann's token: her chart and entry only, whatever types are asked for.
    anns = await partner_token(group, ann, [TokenScope.READ_CHARTS, TokenScope.READ_BILLING])
    assert await seen(api, anns.token) == [("CHART_CREATED", ann_chart), ("BILLING_ENTRY_RECORDED", entry)]
    assert await seen(api, anns.token, types=["MEMBER_UPDATED"]) == []
    event_id = (await feed(api, owner.token, types=["MEMBER_UPDATED"]))["edges"][0]["node"]["id"]
    assert (await api.ok(NODE, {"id": event_id}, billing.token))["node"] is None


async def test_a_rolled_back_write_leaves_no_event_and_a_refusal_changes_nothing(api, group: Group, monkeypatch):
    owner, ben = group.owner, group.ben
    await api.ok(DEACTIVATE, {"i": {"memberId": ben.id}}, owner.token)
    before = await Event.all().count()

    async def broken(*args, **kwargs):
        raise RuntimeError("the seat charge fails after the audit event was written")

    monkeypatch.setattr(subscriptions, "charge_seat", broken)
    code, _ = await api.error(REACTIVATE, {"i": {"memberId": ben.id}}, owner.token)
    assert code == "INTERNAL"
    assert (await Member.get(id=ben.row.id)).status == MemberStatus.DEACTIVATED
    assert await Event.all().count() == before
    code, _ = await api.error(
        CREATE_INVOICE, {"i": {"chartId": group.ann_chart, "clinicianIds": [group.ann.id]}}, owner.token
    )
    assert code == "CONFLICT"  # no charges to invoice
    assert await Event.all().count() == before
    monkeypatch.undo()
    await api.ok(REACTIVATE, {"i": {"memberId": ben.id}}, owner.token)
    assert (await seen(api, owner.token))[-1] == ("MEMBER_REACTIVATED", ben.id)


async def test_events_are_kept_30_days_and_purged_after(api, group: Group, clock):
    chart = await create_chart(api, group.owner.token)
    assert await events.purge(clock.now() + events.RETENTION - timedelta(seconds=1)) == 0
    assert await seen(api, group.owner.token) == [("CHART_CREATED", chart)]
    assert await events.purge(clock.now() + events.RETENTION + timedelta(seconds=1)) == 1
    assert await seen(api, group.owner.token) == []


def test_every_event_type_has_a_subject_a_scope_and_an_action():
    assert set(events.SUBJECTS) == set(events.EventType) == set(events.SCOPES)
    mapped = set(events.ACTIONS.values()) | {events.E.INVOICE_PAID}
    assert mapped == set(events.EventType)
    assert events.ACTIONS["chart.updated"] == events.E.CHART_UPDATED
    assert events.ACTIONS["billing.invoice_voided"] == events.E.INVOICE_VOIDED


@postgres_only()
async def test_concurrent_writers_never_slip_an_event_behind_a_cursor(api, group: Group):
    """Eight writers at once in three practices' worth of rows; after every commit a poller reads the feed from its
    last cursor. Every event is seen exactly once and in cursor order, and the final read has them all."""
    owner = group.owner
    poll_lock = asyncio.Lock()
    cursor: str | None = None
    received: list[tuple[str, str]] = []

    async def poll() -> None:
        nonlocal cursor
        async with poll_lock:
            while True:
                page = await feed(api, owner.token, first=100, after=cursor)
                received.extend((e["node"]["id"], e["cursor"]) for e in page["edges"])
                cursor = page["pageInfo"]["endCursor"] or cursor
                if not page["pageInfo"]["hasNextPage"]:
                    return

    async def writer(n: int) -> None:
        for i in range(6):
            if i % 2:
                await charge(api, owner, group.shared_chart, group.ann if n % 2 else group.ben, "1.00")
            else:
                await create_chart(api, owner.token, f"Concurrent {n}-{i}")
            await poll()

    await asyncio.gather(*(writer(n) for n in range(8)))
    await poll()
    event_ids = [event_id for event_id, _ in received]
    assert len(event_ids) == len(set(event_ids)) == 48 == await Event.filter(practice_id=group.practice.id).count()
    keys = [tuple(events_cursor(c)) for _, c in received]
    assert keys == sorted(keys)
    # And the feed in one read lists them in the same order the poller met them.
    assert [e["node"]["id"] for e in (await feed(api, owner.token, first=100))["edges"]] == event_ids


def events_cursor(cursor: str) -> list:
    from resolvers.pagination import decode_cursor

    return decode_cursor(cursor, 2)


@pytest.fixture
async def group(api) -> Group:
    return await make_group(api)


def test_event_ids_are_opaque():
    gid = ids.encode("Event", uuid.uuid4())
    assert ids.parse(gid)[0] == "Event"


async def test_updating_a_chart_and_voiding_an_invoice_are_events(api, group: Group):
    owner = group.owner
    chart = await create_chart(api, owner.token, "Pat Before", clinicians=[group.ann.id])
    await api.ok(
        "mutation($i: UpdateChartInput!) { updateChart(input: $i) { chart { id } } }",
        {"i": {"chartId": chart, "patientName": "Pat After"}},
        owner.token,
    )
    await charge(api, owner, chart, group.ann, "50.00")
    invoice = (await api.ok(CREATE_INVOICE, {"i": {"chartId": chart, "clinicianIds": [group.ann.id]}}, owner.token))[
        "createInvoice"
    ]["invoice"]["id"]
    await api.ok(
        "mutation($i: VoidInvoiceInput!) { voidInvoice(input: $i) { invoice { id } } }",
        {"i": {"invoiceId": invoice, "reason": "Issued in error"}},
        owner.token,
    )
    kinds = await seen(api, owner.token)
    assert ("CHART_UPDATED", chart) in kinds and kinds[-1] == ("INVOICE_VOIDED", invoice)
