"""Safe retries: ``idempotencyKey`` makes a mutation run once per (practice, caller, key) for 24 hours.

A retry answers the first answer's objects (same ids) and writes nothing; another input under the key is CONFLICT;
a refused request keeps its key free; racing requests write once; ``groups-api maintenance purge`` forgets old keys.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from models import (
    AuditEvent,
    BillingBalance,
    BillingCounter,
    BillingEntry,
    Chart,
    ChartAssignment,
    IdempotencyKey,
    Invitation,
    Invoice,
    InvoiceLine,
    OutboxMessage,
    Practice,
    Statement,
)
from models.enums import Role, TokenScope
from resolvers import idempotency
from server.app import create_app
from server.db import postgres_admin_dsn
from tests.conftest import Api, postgres_only
from tests.factories_billing import (
    CREATE_INVOICE,
    GENERATE_STATEMENT,
    RECORD_ADJUSTMENT,
    RECORD_CHARGE,
    RECORD_PAYMENT,
    RECORD_REFUND,
    Group,
    balance,
    charge,
    make_group,
    partner_token,
)
from tests.factories_charts import CREATE_CHART
from tests.factories_subscriptions import INVITE


@pytest.fixture
async def group(api) -> Group:
    return await make_group(api)


READS = ("chart.read", "chart.notes_read", "auth.denied")


async def snapshot() -> tuple:
    """Everything a guarded mutation could write: compared around replays and refusals."""
    return (
        sorted((e.id, e.delta_cents) for e in await BillingEntry.all()),
        sorted((b.clinician_id, b.chart_id, b.balance_cents) for b in await BillingBalance.all()),
        sorted((c.name, c.last_value) for c in await BillingCounter.all()),
        sorted(s.id for s in await Statement.all()),
        sorted((i.id, i.paid_cents, i.status) for i in await Invoice.all()),
        await InvoiceLine.all().count(),
        sorted(c.id for c in await Chart.all()),
        await ChartAssignment.all().count(),
        sorted((i.id, i.status, i.token_hash) for i in await Invitation.all()),
        await OutboxMessage.all().count(),
        # Events of changes: reads (a chart an answer shows) and denials are recorded for every request, as always.
        await AuditEvent.exclude(action__in=READS).count(),
        sorted((k.key_hash, k.mutation, k.status) for k in await IdempotencyKey.all()),
    )


def payment(g: Group, amount: str = "40.00", key: str | None = "pay-1", **extra) -> dict:
    return {
        "i": {
            "chartId": g.ann_chart,
            "clinicianIds": [g.ann.id],
            "amount": amount,
            "occurredOn": "2026-03-03",
            "idempotencyKey": key,
            **extra,
        }
    }


# ------------------------------------------------------------------ replays


async def test_a_retried_payment_answers_the_first_payment_and_posts_once(api, group):
    """The issue's case: a recordPayment retried after a lost answer posted twice (60.00 -> 20.00 for one 40.00)."""
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    first = await api.ok(RECORD_PAYMENT, payment(g), g.owner.token)
    assert first["recordPayment"]["balance"]["amount"] == "60.00"
    before = await snapshot()
    again = await api.ok(RECORD_PAYMENT, payment(g), g.owner.token)
    assert again == first
    assert await snapshot() == before
    assert await balance(api, g.owner) == "60.00"
    assert await BillingEntry.filter(kind="PAYMENT").count() == 1
    assert await AuditEvent.filter(action="billing.payment_recorded").count() == 1
    # Later money moves do not change what the key answers: the balance right after that payment.
    await api.ok(RECORD_PAYMENT, payment(g, "10.00", key=None), g.owner.token)
    assert (await api.ok(RECORD_PAYMENT, payment(g), g.owner.token)) == first
    assert await balance(api, g.owner) == "50.00"


async def test_a_retried_invoice_payment_answers_the_same_entry_and_invoice(api, group):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "80.00")
    invoice = await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.owner.token)
    invoice_id = invoice["createInvoice"]["invoice"]["id"]
    first = await api.ok(RECORD_PAYMENT, payment(g, "80.00", invoiceId=invoice_id), g.owner.token)
    assert first["recordPayment"]["invoice"] == {"id": invoice_id, "status": "PAID", "amountDue": {"amount": "0.00"}}
    before = await snapshot()
    assert await api.ok(RECORD_PAYMENT, payment(g, "80.00", invoiceId=invoice_id), g.owner.token) == first
    assert await snapshot() == before


async def test_every_guarded_mutation_answers_its_first_objects_again(api, group):
    g = group
    entry = (await charge(api, g.owner, g.ann_chart, g.ann, "50.00"))["entry"]["id"]
    calls = [
        (
            RECORD_CHARGE,
            {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "30.00",
                "occurredOn": "2026-03-02",
                "description": "Session",
            },
        ),
        (
            RECORD_ADJUSTMENT,
            {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "-5.00",
                "occurredOn": "2026-03-02",
                "description": "Write-off",
            },
        ),
        (
            RECORD_REFUND,
            {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "amount": "5.00", "occurredOn": "2026-03-04"},
        ),
        (
            GENERATE_STATEMENT,
            {
                "chartId": g.ann_chart,
                "clinicianIds": [g.ann.id],
                "periodStart": "2026-03-01",
                "periodEnd": "2026-03-31",
            },
        ),
        (CREATE_INVOICE, {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "entryIds": [entry]}),
        (CREATE_CHART, {"patientName": "Sam Retry", "email": "sam@example.com", "clinicianIds": [g.ben.id]}),
        (INVITE, {"email": "new.clinician@example.com", "role": "CLINICIAN", "planCode": "therapist-essential"}),
    ]
    for number, (query, given) in enumerate(calls):
        variables = {"input" if "$input:" in query else "i": {**given, "idempotencyKey": f"key-{number}"}}
        first = await api.ok(query, variables, g.owner.token)
        before = await snapshot()
        assert await api.ok(query, variables, g.owner.token) == first, query
        assert await snapshot() == before, query
    assert await IdempotencyKey.all().count() == len(calls)
    assert await OutboxMessage.all().count() == 1  # the invitation was mailed once
    # The replayed invitation token is the first one, and it works.
    token = (await api.ok(INVITE, {"i": {**calls[-1][1], "idempotencyKey": "key-6"}}, g.owner.token))["inviteMember"][
        "token"
    ]
    accepted = await api.ok(
        """mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { member { role } } }""",
        {"i": {"token": token, "name": "New Clinician", "password": "correct horse battery"}},
    )
    assert accepted["acceptInvitation"]["member"]["role"] == "CLINICIAN"


async def test_the_same_key_with_another_input_or_on_another_mutation_is_conflict(api, group):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    first = await api.ok(RECORD_PAYMENT, payment(g), g.owner.token)
    before = await snapshot()
    for query, variables in [
        (RECORD_PAYMENT, payment(g, "41.00")),
        (RECORD_PAYMENT, payment(g, description="Cash")),
        (RECORD_REFUND, payment(g)),
        (
            RECORD_CHARGE,
            {
                "i": {
                    "chartId": g.ann_chart,
                    "clinicianId": g.ann.id,
                    "amount": "40.00",
                    "occurredOn": "2026-03-03",
                    "description": "Payment",
                    "idempotencyKey": "pay-1",
                }
            },
        ),
    ]:
        code, body = await api.error(query, variables, g.owner.token)
        assert code == "CONFLICT", body
        assert body["data"] == {query.split("{", 2)[1].split("(")[0].strip(): None}
    assert await snapshot() == before
    # The input is compared by value: 40 is the amount 40.00, and an omitted field is its null.
    assert await api.ok(RECORD_PAYMENT, payment(g, "40"), g.owner.token) == first
    assert await api.ok(RECORD_PAYMENT, payment(g, description=None), g.owner.token) == first
    assert await snapshot() == before


async def test_keys_belong_to_one_caller_in_one_practice(api, group):
    """The same key from another member, from a partner token of the same member, or in another practice is another
    key."""
    g = group
    await charge(api, g.owner, g.shared_chart, g.ann, "100.00")
    token = await partner_token(g, g.owner, [TokenScope.WRITE_BILLING, TokenScope.READ_BILLING])
    variables = {
        "i": {
            "chartId": g.shared_chart,
            "clinicianIds": [g.ann.id],
            "amount": "10.00",
            "occurredOn": "2026-03-03",
            "idempotencyKey": "same",
        }
    }
    answers = [await api.ok(RECORD_PAYMENT, variables, caller.token) for caller in (g.owner, g.ann, token)]
    assert len({a["recordPayment"]["entry"]["id"] for a in answers}) == 3
    assert [a["recordPayment"]["balance"]["amount"] for a in answers] == ["90.00", "80.00", "70.00"]
    # Each caller's retry answers its own first payment.
    for caller, answer in zip((g.owner, g.ann, token), answers, strict=True):
        assert await api.ok(RECORD_PAYMENT, variables, caller.token) == answer
    other = await make_group(api, practice="Other Minds", email="owner@other.example.com")
    await charge(api, other.owner, other.ann_chart, other.ann, "100.00")
    theirs = await api.ok(
        RECORD_PAYMENT,
        {"i": {**variables["i"], "chartId": other.ann_chart, "clinicianIds": [other.ann.id]}},
        other.owner.token,
    )
    assert theirs["recordPayment"]["balance"]["amount"] == "90.00"
    assert await BillingEntry.filter(kind="PAYMENT").count() == 4
    assert await IdempotencyKey.all().count() == 4


# ------------------------------------------------------------------ refusals


async def test_a_refused_request_stores_nothing_under_its_key(api, group):
    """Bad input, the single-clinician rule, not found, forbidden and a conflict leave the key free for the fixed
    retry."""
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    admin = await g.member("Ada Admin", role=Role.ADMINISTRATOR)
    before = await snapshot()
    refusals = [
        (payment(g, "0.00"), g.owner, "BAD_USER_INPUT"),
        (payment(g, clinicianIds=[g.ann.id, g.ben.id]), g.owner, "SINGLE_CLINICIAN_REQUIRED"),
        (payment(g, chartId=g.ben_chart), g.ann, "NOT_FOUND"),
        (payment(g, invoiceId="SW52b2ljZTowMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMA"), g.owner, "NOT_FOUND"),
        (payment(g), admin, "FORBIDDEN"),
    ]
    for variables, caller, expected in refusals:
        code, body = await api.error(RECORD_PAYMENT, variables, caller.token)
        assert code == expected, body
    code, _ = await api.error(
        CREATE_INVOICE,
        {"i": {"chartId": g.ben_chart, "clinicianIds": [g.ben.id], "idempotencyKey": "inv"}},
        g.owner.token,
    )
    assert code == "CONFLICT"  # nothing to invoice yet
    assert await snapshot() == before
    assert await IdempotencyKey.all().count() == 0
    # The fixed requests run under the same keys.
    assert (await api.ok(RECORD_PAYMENT, payment(g), g.owner.token))["recordPayment"]["balance"]["amount"] == "60.00"
    await charge(api, g.owner, g.ben_chart, g.ben, "25.00")
    invoice = await api.ok(
        CREATE_INVOICE,
        {"i": {"chartId": g.ben_chart, "clinicianIds": [g.ben.id], "idempotencyKey": "inv"}},
        g.owner.token,
    )
    assert invoice["createInvoice"]["invoice"]["total"]["amount"] == "25.00"
    assert await IdempotencyKey.all().count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "line\nbreak", "tab\there", "\u200b", "bell\x07"])
async def test_a_key_must_be_1_to_255_printable_characters(api, group, key):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    before = await snapshot()
    code, body = await api.error(RECORD_PAYMENT, payment(g, key=key), g.owner.token)
    assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "input.idempotencyKey", body
    assert await snapshot() == before


async def test_long_and_non_ascii_keys_work(api, group):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    for key in ("k" * 255, "zahlung-ü 1"):
        first = await api.ok(RECORD_PAYMENT, payment(g, "1.00", key=key), g.owner.token)
        assert await api.ok(RECORD_PAYMENT, payment(g, "1.00", key=key), g.owner.token) == first
    assert await BillingEntry.filter(kind="PAYMENT").count() == 2


# ------------------------------------------------------------------ expiry and purge


async def test_a_key_is_kept_24_hours_then_starts_afresh(api, group, clock):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    partner = await partner_token(g, g.owner, list(TokenScope))  # outlives the clock's jumps, unlike a session
    first = await api.ok(RECORD_PAYMENT, payment(g), partner.token)
    clock.advance(timedelta(hours=23, minutes=59))
    assert await api.ok(RECORD_PAYMENT, payment(g), partner.token) == first
    assert (await api.error(RECORD_PAYMENT, payment(g, "1.00"), partner.token))[0] == "CONFLICT"
    clock.advance(timedelta(minutes=2))
    later = await api.ok(RECORD_PAYMENT, payment(g, "1.00"), partner.token)
    assert later["recordPayment"]["entry"]["id"] != first["recordPayment"]["entry"]["id"]
    assert later["recordPayment"]["balance"]["amount"] == "59.00"
    assert await IdempotencyKey.all().count() == 1


async def test_purge_deletes_the_keys_older_than_24_hours(api, group, clock):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    partner = await partner_token(g, g.owner, list(TokenScope))
    await api.ok(RECORD_PAYMENT, payment(g, "1.00", key="old"), partner.token)
    clock.advance(timedelta(hours=20))
    young = await api.ok(RECORD_PAYMENT, payment(g, "2.00", key="young"), partner.token)
    clock.advance(timedelta(hours=5))
    assert await idempotency.purge(clock.now()) == 1
    assert await idempotency.purge(clock.now()) == 0
    assert [k.mutation for k in await IdempotencyKey.all()] == ["recordPayment"]
    assert await api.ok(RECORD_PAYMENT, payment(g, "2.00", key="young"), partner.token) == young
    assert await BillingEntry.filter(kind="PAYMENT").count() == 2  # purging forgets keys, never what they wrote


def test_the_maintenance_purge_command(settings, clock, tmp_path: Path):
    """`groups-api maintenance purge` against its own database (a migrated SQLite file)."""
    database_url = f"sqlite://{tmp_path / 'purge.sqlite3'}"

    async def seed() -> None:
        application = create_app(settings.with_(database_url=database_url), clock=clock, generate_schemas=True)
        transport = httpx.ASGITransport(app=application)
        async with (
            application.router.lifespan_context(application),
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        ):
            await Api(http).sign_up()
            practice = await Practice.get(slug="calm-minds")
            now = datetime.now(UTC)
            for number, age in enumerate((timedelta(hours=25), timedelta(days=3), timedelta(hours=1))):
                await IdempotencyKey.create(
                    id=uuid.uuid4(),
                    practice=practice,
                    caller="member:x",
                    key_hash=f"{number:064d}",
                    mutation="recordPayment",
                    input_hash="0" * 64,
                    status="DONE",
                    result={},
                    created_at=now - age,
                )

    async def remaining() -> int:
        application = create_app(settings.with_(database_url=database_url), clock=clock)
        async with application.router.lifespan_context(application):
            return await IdempotencyKey.all().count()

    asyncio.run(seed())
    env = {**os.environ, "GROUPS_API_JWT_SECRET": "x" * 40, "GROUPS_API_ENV": "development"}
    run = subprocess.run(
        [sys.executable, "-m", "server.cli", "maintenance", "purge", "--database-url", database_url],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "maintenance purge: 2 idempotency key(s) older than 24 hours deleted"
    assert asyncio.run(remaining()) == 1


# ------------------------------------------------------------------ races


async def test_concurrent_requests_with_one_key_write_once(api, group):
    """Six copies of one payment at once (PostgreSQL: real concurrency; SQLite: serialised): one entry, one event, and
    every answer is that entry (or CONFLICT while it ran)."""
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    results = await asyncio.gather(*[api.post(RECORD_PAYMENT, payment(g), g.owner.token) for _ in range(6)])
    answered = [r["data"]["recordPayment"] for r in results if not r.get("errors")]
    assert {r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")} <= {"CONFLICT"}
    assert answered and all(a == answered[0] for a in answered)
    assert answered[0]["balance"]["amount"] == "60.00"
    assert await BillingEntry.filter(kind="PAYMENT").count() == 1
    assert await AuditEvent.filter(action="billing.payment_recorded").count() == 1
    assert await balance(api, g.owner) == "60.00"


@postgres_only()
async def test_a_retry_racing_the_first_request_waits_for_it_and_answers_its_objects(api, group, settings):
    """The first request is held inside its transaction (a test connection locks the practice's audit chain head,
    which every write takes last); the retry is then seen waiting on the key row itself. Once the first commits,
    the retry answers its payment: one entry, one event, one key."""
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    dsn = postgres_admin_dsn(settings.database_url)
    blocker, monitor = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM audit_heads WHERE practice_id = $1 FOR UPDATE", g.practice.id)
        first = asyncio.ensure_future(api.post(RECORD_PAYMENT, payment(g), g.owner.token))
        waiting = await _waiting(monitor, blocker, 1)
        assert all("audit_heads" in query for query in waiting), waiting
        retry = asyncio.ensure_future(api.post(RECORD_PAYMENT, payment(g), g.owner.token))
        waiting = await _waiting(monitor, blocker, 2)
        assert sorted("idempotency_keys" in query for query in waiting) == [False, True], waiting
        await transaction.commit()
        answers = await asyncio.gather(first, retry)
    finally:
        await blocker.close()
        await monitor.close()
    assert not answers[0].get("errors") and not answers[1].get("errors"), answers
    assert answers[0]["data"] == answers[1]["data"]
    assert answers[0]["data"]["recordPayment"]["balance"]["amount"] == "60.00"
    assert await BillingEntry.filter(kind="PAYMENT").count() == 1
    assert await AuditEvent.filter(action="billing.payment_recorded").count() == 1
    assert await IdempotencyKey.all().count() == 1


async def _waiting(monitor: asyncpg.Connection, blocker: asyncpg.Connection, count: int) -> list[str]:
    """The queries of the server's backends waiting on a lock in this database, once there are ``count`` of them."""
    for _ in range(200):
        rows = await monitor.fetch(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> $1",
            blocker.get_server_pid(),
        )
        if len(rows) >= count:
            return [row["query"] for row in rows]
        await asyncio.sleep(0.025)
    raise AssertionError(f"expected {count} waiting backends, saw {len(rows)}")


@postgres_only()
async def test_concurrent_invitations_and_charts_with_one_key_write_once(api, group):
    g = group
    invite = {
        "i": {
            "email": "racer@example.com",
            "role": "CLINICIAN",
            "planCode": "therapist-essential",
            "idempotencyKey": "inv",
        }
    }
    chart = {"input": {"patientName": "Ray Racer", "idempotencyKey": "chart"}}
    results = await asyncio.gather(
        *[api.post(INVITE, invite, g.owner.token) for _ in range(4)],
        *[api.post(CREATE_CHART, chart, g.owner.token) for _ in range(4)],
    )
    for name, group_results in (("inviteMember", results[:4]), ("createChart", results[4:])):
        answered = [r["data"][name] for r in group_results if not r.get("errors")]
        assert {r["errors"][0]["extensions"]["code"] for r in group_results if r.get("errors")} <= {"CONFLICT"}
        assert answered and all(a == answered[0] for a in answered), name
    assert await Invitation.filter(email="racer@example.com").count() == 1
    assert await OutboxMessage.filter(recipient="racer@example.com").count() == 1
    assert await Chart.filter(patient_name="Ray Racer").count() == 1
    assert await AuditEvent.filter(action="invitation.created").count() == 1
    assert await AuditEvent.filter(action="chart.created").count() == 1
