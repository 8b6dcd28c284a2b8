"""Patient billing through the HTTP API: the ledger, balances, history, who sees and moves what, invoices."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from tortoise.exceptions import IntegrityError

from models import (
    AuditEvent,
    BillingBalance,
    BillingCounter,
    BillingEntry,
    Chart,
    Invoice,
    InvoiceLine,
    Member,
    Statement,
)
from models.enums import Permission as P
from models.enums import Role, TokenScope
from resolvers.ids import encode, parse
from tests import factories
from tests.conftest import postgres_only
from tests.factories import Account, sql_statements
from tests.factories_billing import (
    CREATE_INVOICE,
    ENTRY,
    GENERATE_STATEMENT,
    HISTORY,
    RECORD_ADJUSTMENT,
    RECORD_CHARGE,
    RECORD_PAYMENT,
    RECORD_REFUND,
    Group,
    balance,
    charge,
    history,
    make_group,
    partner_token,
    pay,
)

NODE = (
    "query($id: ID!) "
    f"{{ node(id: $id) {{ __typename ... on BillingEntry {{ {ENTRY} }} ... on Invoice {{ id number }} }} }}"
)


@pytest.fixture
async def group(api) -> Group:
    return await make_group(api)


async def ledger_snapshot() -> tuple:
    """Everything a billing write could touch: compared before and after a refused request."""
    balances = sorted((b.clinician_id, b.chart_id, b.balance_cents) for b in await BillingBalance.all())
    counters = sorted((c.name, c.last_value) for c in await BillingCounter.all())
    return (
        await BillingEntry.all().count(),
        balances,
        counters,
        await Statement.all().count(),
        await Invoice.all().count(),
        sorted((i.id, i.paid_cents, i.status) for i in await Invoice.all()),
        await InvoiceLine.all().count(),
        await AuditEvent.filter(action__startswith="billing.").count(),
    )


async def adjust(api, person: Account, chart: str, clinician: Account, amount: str) -> dict:
    data = await api.ok(
        RECORD_ADJUSTMENT,
        {
            "i": {
                "chartId": chart,
                "clinicianId": clinician.id,
                "amount": amount,
                "occurredOn": "2026-03-04",
                "description": "Write-off",
            }
        },
        person.token,
    )
    return data["recordAdjustment"]


async def refund(api, person: Account, chart: str, clinician: Account, amount: str) -> dict:
    data = await api.ok(
        RECORD_REFUND,
        {"i": {"chartId": chart, "clinicianIds": [clinician.id], "amount": amount, "occurredOn": "2026-03-05"}},
        person.token,
    )
    return data["recordRefund"]


async def seed_ledger(api, g: Group) -> None:
    """Ann: 150 on her chart, 60 on the shared one; Ben: 80 on his, 40 on the shared one; with payments,
    adjustments both ways and a refund."""
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    await charge(api, g.ann, g.ann_chart, g.ann, "90.00", on="2026-03-09")
    await pay(api, g.ann, g.ann_chart, g.ann, "30.00")
    await adjust(api, g.owner, g.ann_chart, g.ann, "-10.00")
    await charge(api, g.ann, g.shared_chart, g.ann, "60.00")
    await charge(api, g.ben, g.ben_chart, g.ben, "120.00")
    await pay(api, g.owner, g.ben_chart, g.ben, "50.00")
    await refund(api, g.ben, g.ben_chart, g.ben, "5.00")
    await adjust(api, g.ben, g.ben_chart, g.ben, "5.00")
    await charge(api, g.ben, g.shared_chart, g.ben, "40.00")


# ------------------------------------------------------------------ balances


async def test_group_balance_is_the_sum_of_the_clinicians_balances(api, group):
    g = group
    await seed_ledger(api, g)
    ann, ben = await balance(api, g.owner, clinicians=[g.ann]), await balance(api, g.owner, clinicians=[g.ben])
    assert (ann, ben) == ("210.00", "120.00")
    whole = await balance(api, g.owner)
    assert Decimal(whole) == Decimal(ann) + Decimal(ben) == Decimal("330.00")
    assert await balance(api, g.owner, clinicians=[g.ann, g.ben]) == whole
    # Per chart: the shared chart's balance is both clinicians' share of it.
    assert await balance(api, g.owner, chart=g.shared_chart) == "100.00"
    assert await balance(api, g.owner, clinicians=[g.ben], chart=g.shared_chart) == "40.00"
    # The running totals agree with the ledger itself: charges + refunds - payments + adjustments.
    assert sum(e.delta_cents for e in await BillingEntry.all()) == 33000


async def test_each_entry_returns_the_clinicians_balance_for_the_chart(api, group):
    g = group
    assert (await charge(api, g.owner, g.shared_chart, g.ann, "75.25"))["balance"]["amount"] == "75.25"
    assert (await charge(api, g.owner, g.shared_chart, g.ben, "10.00"))["balance"]["amount"] == "10.00"
    assert (await pay(api, g.ann, g.shared_chart, g.ann, "25.25"))["balance"]["amount"] == "50.00"
    assert (await adjust(api, g.ann, g.shared_chart, g.ann, "-50.00"))["balance"]["amount"] == "0.00"
    assert (await refund(api, g.ann, g.shared_chart, g.ann, "5.00"))["balance"]["amount"] == "5.00"
    # One running total per (clinician, chart), however many entries.
    assert await BillingBalance.all().count() == 2


# ------------------------------------------------------------------ history


async def test_history_attributes_each_entry_to_its_clinician_and_recorder(api, group):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00", on="2026-03-01", description="Intake")
    await charge(api, g.ben, g.ben_chart, g.ben, "80.00", on="2026-03-02", description="Session")
    await pay(api, g.owner, g.shared_chart, g.ann, "20.00", on="2026-03-03")
    page = await history(api, g.owner)
    nodes = [edge["node"] for edge in page["edges"]]
    assert [(n["kind"], n["clinician"]["name"], n["createdBy"]["id"], n["patientName"]) for n in nodes] == [
        ("PAYMENT", "Ann Clinician", g.owner.id, "Robin Shared"),
        ("CHARGE", "Ben Clinician", g.ben.id, "Quinn Benson"),
        ("CHARGE", "Ann Clinician", g.owner.id, "Pat Annsson"),
    ]
    assert [n["chart"]["id"] for n in nodes] == [g.shared_chart, g.ben_chart, g.ann_chart]
    assert nodes[2]["description"] == "Intake" and nodes[0]["amount"] == {"amount": "20.00", "currency": "USD"}


async def test_history_is_newest_first_and_pages_by_keyset(api, group, clock):
    g = group
    # Same occurredOn: createdAt decides; earlier occurredOn recorded later still sorts below.
    for day, amount in [
        ("2026-03-05", "1.00"),
        ("2026-03-05", "2.00"),
        ("2026-03-01", "3.00"),
        ("2026-03-07", "4.00"),
        ("2026-03-05", "5.00"),
    ]:
        await charge(api, g.owner, g.ann_chart, g.ann, amount, on=day)
        clock.advance(timedelta(seconds=1))
    expected = ["4.00", "5.00", "2.00", "1.00", "3.00"]
    whole = await history(api, g.owner)
    assert [e["node"]["amount"]["amount"] for e in whole["edges"]] == expected
    assert whole["totalCount"] == 5
    seen, after = [], None
    while True:
        page = await history(api, g.owner, first=2, after=after)
        assert page["totalCount"] is None  # partial pages never pay for a count
        seen += [e["node"]["amount"]["amount"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected


async def test_history_filters(api, group):
    g = group
    await seed_ledger(api, g)

    async def amounts(selection):
        return sorted(e["node"]["amount"]["amount"] for e in (await history(api, g.owner, selection))["edges"])

    assert await amounts({"kinds": ["PAYMENT", "REFUND"]}) == ["30.00", "5.00", "50.00"]
    assert await amounts({"chartId": g.shared_chart}) == ["40.00", "60.00"]
    assert await amounts({"clinicianIds": [g.ben.id], "kinds": ["ADJUSTMENT"]}) == ["5.00"]
    assert await amounts({"from": "2026-03-04", "to": "2026-03-09"}) == ["-10.00", "5.00", "5.00", "90.00"]
    code, body = await api.error(HISTORY, {"f": {"from": "2026-03-09", "to": "2026-03-01"}}, g.owner.token)
    assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "filter.from"


async def test_history_costs_the_same_queries_whatever_the_page_size(api, group, caplog):
    g = group
    invoice_query = (
        "{ practice { billing { history(first: 100) { edges { node { " + ENTRY + " invoice { id number } } } } } } }"
    )

    async def selects() -> int:
        with sql_statements(caplog) as statements:
            await api.ok(invoice_query, token=g.owner.token)
        return len(statements)

    await charge(api, g.owner, g.ann_chart, g.ann, "10.00")
    await pay(api, g.owner, g.ben_chart, g.ben, "1.00")
    await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.owner.token)
    few = await selects()
    pairs = [(g.ann_chart, g.ann), (g.ben_chart, g.ben), (g.shared_chart, g.ann), (g.shared_chart, g.ben)]
    for i in range(16):
        await charge(api, g.owner, *pairs[i % 4], "10.00")
    await api.ok(CREATE_INVOICE, {"i": {"chartId": g.shared_chart, "clinicianIds": [g.ben.id]}}, g.owner.token)
    assert await selects() == few


# ------------------------------------------------------------------ the single-clinician rule

MONEY_MOVES = {
    "recordPayment": (RECORD_PAYMENT, {"amount": "10.00", "occurredOn": "2026-03-03"}),
    "recordRefund": (RECORD_REFUND, {"amount": "10.00", "occurredOn": "2026-03-03"}),
    "generateStatement": (GENERATE_STATEMENT, {"periodStart": "2026-03-01", "periodEnd": "2026-03-31"}),
    "createInvoice": (CREATE_INVOICE, {}),
}


@pytest.mark.parametrize("operation", sorted(MONEY_MOVES))
@pytest.mark.parametrize("selection", ["absent", "null", "empty", "two", "same twice"])
@pytest.mark.parametrize("caller", ["owner", "ann"])
async def test_money_moves_need_exactly_one_clinician(api, group, operation, selection, caller):
    g = group
    await charge(api, g.owner, g.shared_chart, g.ann, "100.00")
    person = g.owner if caller == "owner" else g.ann
    fields = {"chartId": g.shared_chart, **MONEY_MOVES[operation][1]}
    chosen = {"null": None, "empty": [], "two": [g.ann.id, g.ben.id], "same twice": [g.ann.id, g.ann.id]}
    if selection in chosen:
        fields["clinicianIds"] = chosen[selection]
    before = await ledger_snapshot()
    code, body = await api.error(MONEY_MOVES[operation][0], {"i": fields}, person.token)
    assert code == "SINGLE_CLINICIAN_REQUIRED", body
    assert body["data"] == {operation: None}
    assert await ledger_snapshot() == before
    # The same request with exactly one clinician goes through.
    await api.ok(MONEY_MOVES[operation][0], {"i": {**fields, "clinicianIds": [g.ann.id]}}, person.token)
    assert await ledger_snapshot() != before


# ------------------------------------------------------------------ who records and who sees


async def test_clinicians_are_fenced_to_their_own_billing(api, group):
    g = group
    await seed_ledger(api, g)
    # Without VIEW_BILLING, no clinicianIds means oneself.
    assert await balance(api, g.ann) == "210.00"
    assert await balance(api, g.ann, clinicians=[g.ann]) == "210.00"
    assert await balance(api, g.ann, chart=g.shared_chart) == "60.00"
    entries = (await history(api, g.ann))["edges"]
    assert {e["node"]["clinician"]["name"] for e in entries} == {"Ann Clinician"} and len(entries) == 5
    shared = (await history(api, g.ann, {"chartId": g.shared_chart}))["edges"]
    assert [e["node"]["amount"]["amount"] for e in shared] == ["60.00"]  # not Ben's 40.00 on the same chart
    # Naming anyone else is FORBIDDEN, alone or with oneself.
    for others in ([g.ben], [g.ann, g.ben]):
        code, _ = await api.error(
            "query($f: BalanceFilter) { practice { billing { currentBalance(filter: $f) { amount } } } }",
            {"f": {"clinicianIds": [o.id for o in others]}},
            g.ann.token,
        )
        assert code == "FORBIDDEN"
        code, _ = await api.error(HISTORY, {"f": {"clinicianIds": [o.id for o in others]}}, g.ann.token)
        assert code == "FORBIDDEN"
    # Ben's entries are not reachable through node either.
    ben_entry = (await history(api, g.ben, {"chartId": g.ben_chart}))["edges"][0]["node"]["id"]
    assert (await api.ok(NODE, {"id": ben_entry}, g.ann.token))["node"] is None
    assert (await api.ok(NODE, {"id": ben_entry}, g.owner.token))["node"]["id"] == ben_entry
    # Granted VIEW_BILLING, the same clinician sees the whole group.
    viewer = await g.member("Vera Viewer", Role.CLINICIAN, [P.VIEW_BILLING])
    assert await balance(api, viewer) == "330.00"
    assert await balance(api, viewer, clinicians=[g.ben]) == "120.00"


async def test_a_clinician_records_only_for_themself(api, group):
    g = group
    before = await ledger_snapshot()
    for mutation, fields in [
        (RECORD_CHARGE, {"clinicianId": g.ben.id, "description": "x"}),
        (RECORD_ADJUSTMENT, {"clinicianId": g.ben.id, "description": "x"}),
        (RECORD_PAYMENT, {"clinicianIds": [g.ben.id]}),
        (RECORD_REFUND, {"clinicianIds": [g.ben.id]}),
    ]:
        code, _ = await api.error(
            mutation,
            {"i": {"chartId": g.shared_chart, "amount": "10.00", "occurredOn": "2026-03-02", **fields}},
            g.ann.token,
        )
        assert code == "FORBIDDEN"
    for mutation, fields in [
        (GENERATE_STATEMENT, {"periodStart": "2026-03-01", "periodEnd": "2026-03-31"}),
        (CREATE_INVOICE, {}),
    ]:
        code, _ = await api.error(
            mutation, {"i": {"chartId": g.shared_chart, "clinicianIds": [g.ben.id], **fields}}, g.ann.token
        )
        assert code == "FORBIDDEN"
    # A chart she cannot see does not exist for her, even for her own entries.
    code, _ = await api.error(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": g.ben_chart,
                "clinicianId": g.ann.id,
                "amount": "10.00",
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        g.ann.token,
    )
    assert code == "NOT_FOUND"
    assert await ledger_snapshot() == before


async def test_the_entrys_clinician_must_be_a_clinician_who_sees_the_chart(api, group):
    g = group
    admin = await g.member("Adam Admin", Role.ADMINISTRATOR, [P.VIEW_BILLING, P.MANAGE_BILLING, P.VIEW_ALL_CHARTS])
    before = await ledger_snapshot()
    for clinician, chart in [(admin, g.ann_chart), (g.ben, g.ann_chart)]:
        code, body = await api.error(
            RECORD_CHARGE,
            {
                "i": {
                    "chartId": chart,
                    "clinicianId": clinician.id,
                    "amount": "10.00",
                    "occurredOn": "2026-03-02",
                    "description": "x",
                }
            },
            g.owner.token,
        )
        assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "input.clinicianId"
    code, _ = await api.error(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": encode("Member", uuid.uuid4()),
                "amount": "10.00",
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        g.owner.token,
    )
    assert code == "NOT_FOUND"
    assert await ledger_snapshot() == before
    # The owner bills too, on any chart (the owner sees them all).
    assert (await charge(api, g.owner, g.ben_chart, g.owner, "10.00"))["entry"]["clinician"]["id"] == g.owner.id


async def test_administrator_without_view_billing_sees_nothing(api, group):
    g = group
    await seed_ledger(api, g)
    admin = await g.member("Adam Admin", Role.ADMINISTRATOR, [P.VIEW_ALL_CHARTS, P.MANAGE_MEMBERS])
    for query in [
        "{ practice { billing { currentBalance { amount } } } }",
        "{ practice { billing { history { edges { node { id } } } } } }",
        "{ practice { billing { statements { edges { node { id } } } } } }",
        "{ practice { billing { invoices { edges { node { id } } } } } }",
    ]:
        code, body = await api.error(query, token=admin.token)
        assert code == "FORBIDDEN" and body["data"]["practice"]["billing"] is not None
    entry = (await history(api, g.owner))["edges"][0]["node"]["id"]
    assert (await api.ok(NODE, {"id": entry}, admin.token))["node"] is None
    # Nor may they move money.
    before = await ledger_snapshot()
    code, _ = await api.error(
        RECORD_PAYMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "amount": "5.00", "occurredOn": "2026-03-03"}},
        admin.token,
    )
    assert code == "FORBIDDEN"
    assert await ledger_snapshot() == before


async def test_administrator_with_view_billing_sees_the_group_but_not_the_charts(api, group):
    g = group
    await seed_ledger(api, g)
    biller = await g.member("Bea Biller", Role.ADMINISTRATOR, [P.VIEW_BILLING])
    assert await balance(api, biller) == "330.00"
    assert await balance(api, biller, clinicians=[g.ben]) == "120.00"
    nodes = [e["node"] for e in (await history(api, biller))["edges"]]
    assert len(nodes) == 10
    assert {n["patientName"] for n in nodes} == {"Pat Annsson", "Quinn Benson", "Robin Shared"}
    assert {n["chart"] is None for n in nodes} == {True}  # patient names yes, charts no (no VIEW_ALL_CHARTS)
    # Seeing is not moving: MANAGE_BILLING is needed to record for a clinician.
    code, _ = await api.error(
        RECORD_PAYMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "amount": "5.00", "occurredOn": "2026-03-03"}},
        biller.token,
    )
    assert code == "FORBIDDEN"


async def test_administrator_with_manage_billing_moves_money_for_any_clinician(api, group):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    await charge(api, g.owner, g.ben_chart, g.ben, "80.00")
    manager = await g.member("Max Manager", Role.ADMINISTRATOR, [P.MANAGE_BILLING, P.VIEW_ALL_CHARTS])
    paid = await pay(api, manager, g.ann_chart, g.ann, "40.00")
    assert paid["balance"]["amount"] == "60.00"
    assert paid["entry"]["clinician"]["id"] == g.ann.id and paid["entry"]["createdBy"]["id"] == manager.id
    assert paid["entry"]["chart"]["id"] == g.ann_chart
    statement = await api.ok(
        GENERATE_STATEMENT,
        {
            "i": {
                "chartId": g.ben_chart,
                "clinicianIds": [g.ben.id],
                "periodStart": "2026-03-01",
                "periodEnd": "2026-03-31",
            }
        },
        manager.token,
    )
    assert statement["generateStatement"]["statement"]["closingBalance"]["amount"] == "80.00"
    invoice = await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ben_chart, "clinicianIds": [g.ben.id]}}, manager.token)
    assert invoice["createInvoice"]["invoice"]["total"]["amount"] == "80.00"
    # MANAGE_BILLING without VIEW_BILLING moves money but does not read the ledger.
    code, _ = await api.error("{ practice { billing { currentBalance { amount } } } }", token=manager.token)
    assert code == "FORBIDDEN"
    # MANAGE_BILLING alone finds every chart of the practice (contract v3): no VIEW_ALL_CHARTS needed to bill.
    biller = await g.member("Bo Biller", Role.ADMINISTRATOR, [P.MANAGE_BILLING])
    paid = await pay(api, biller, g.ann_chart, g.ann, "5.00")
    assert paid["balance"]["amount"] == "55.00" and paid["entry"]["chart"]["id"] == g.ann_chart
    # VIEW_BILLING alone bills nobody else: FORBIDDEN, and nothing written.
    viewer = await g.member("Vi Viewer", Role.ADMINISTRATOR, [P.VIEW_BILLING])
    code, _ = await api.error(
        RECORD_PAYMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "amount": "5.00", "occurredOn": "2026-03-03"}},
        viewer.token,
    )
    assert code == "FORBIDDEN"
    assert await balance(api, g.owner) == "135.00"


async def test_other_practices_see_and_touch_nothing(api, group):
    g = group
    await seed_ledger(api, g)
    stranger = await factories.sign_up(api, practice="Elsewhere", email="else@example.com")
    assert await balance(api, stranger) == "0.00"
    assert (await history(api, stranger))["edges"] == []
    entry = (await history(api, g.owner))["edges"][0]["node"]["id"]
    assert (await api.ok(NODE, {"id": entry}, stranger.token))["node"] is None
    before = await ledger_snapshot()
    code, _ = await api.error(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": stranger.id,
                "amount": "1.00",
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        stranger.token,
    )
    assert code == "NOT_FOUND"
    code, _ = await api.error(
        RECORD_PAYMENT,
        {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "amount": "1.00", "occurredOn": "2026-03-02"}},
        stranger.token,
    )
    assert code == "NOT_FOUND"
    assert await ledger_snapshot() == before


async def test_partner_tokens_need_the_billing_scopes(api, group):
    g = group
    reader = await partner_token(g, g.owner, [TokenScope.READ_BILLING])
    writer = await partner_token(g, g.owner, [TokenScope.WRITE_BILLING])
    entry = (await charge(api, writer, g.ann_chart, g.ann, "12.00"))["entry"]["id"]
    code, _ = await api.error(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "1.00",
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        reader.token,
    )
    assert code == "FORBIDDEN"
    assert await balance(api, reader) == "12.00"
    code, _ = await api.error("{ practice { billing { currentBalance { amount } } } }", token=writer.token)
    assert code == "FORBIDDEN"
    assert (await api.ok(NODE, {"id": entry}, writer.token))["node"] is None
    assert (await api.ok(NODE, {"id": entry}, reader.token))["node"]["id"] == entry


# ------------------------------------------------------------------ validation

BAD_AMOUNTS = ["0", "0.00", "-0.00", "-10.00", "10.001", "1000000.01", "NaN", "Infinity", "1e-7"]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_invalid_amounts_are_refused_and_write_nothing(api, group, amount):
    g = group
    await charge(api, g.owner, g.ann_chart, g.ann, "50.00")
    before = await ledger_snapshot()
    base = {"chartId": g.ann_chart, "amount": amount, "occurredOn": "2026-03-02"}
    for mutation, fields in [
        (RECORD_CHARGE, {"clinicianId": g.ann.id, "description": "x"}),
        (RECORD_PAYMENT, {"clinicianIds": [g.ann.id]}),
        (RECORD_REFUND, {"clinicianIds": [g.ann.id]}),
    ]:
        code, body = await api.error(mutation, {"i": {**base, **fields}}, g.owner.token)
        assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "input.amount", body
    assert await ledger_snapshot() == before
    assert await balance(api, g.owner) == "50.00"
    assert len((await history(api, g.owner))["edges"]) == 1


@pytest.mark.parametrize("amount", ["0", "-0.001", "1000000.01", "-1000000.01", "NaN"])
async def test_invalid_adjustments_are_refused_and_write_nothing(api, group, amount):
    g = group
    before = await ledger_snapshot()
    code, body = await api.error(
        RECORD_ADJUSTMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": amount,
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        g.owner.token,
    )
    assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "input.amount"
    assert await ledger_snapshot() == before


async def test_amounts_that_are_not_numbers_are_refused(api, group):
    g = group
    before = await ledger_snapshot()
    code, _ = await api.error(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "ten",
                "occurredOn": "2026-03-02",
                "description": "x",
            }
        },
        g.owner.token,
    )
    assert code == "BAD_USER_INPUT"
    assert await ledger_snapshot() == before


async def test_signed_adjustments_and_trailing_zeros(api, group):
    g = group
    assert (await charge(api, g.owner, g.ann_chart, g.ann, "100.000"))["entry"]["amount"]["amount"] == "100.00"
    written = await adjust(api, g.owner, g.ann_chart, g.ann, "-25.5")
    assert written["entry"]["amount"]["amount"] == "-25.50" and written["balance"]["amount"] == "74.50"
    assert (await adjust(api, g.owner, g.ann_chart, g.ann, "1000000"))["balance"]["amount"] == "1000074.50"


@pytest.mark.parametrize(
    "fields",
    [
        {"description": "   "},
        {"description": "x" * 501},
        {"occurredOn": "2999-01-01"},
    ],
)
async def test_other_invalid_entry_input_writes_nothing(api, group, fields):
    g = group
    before = await ledger_snapshot()
    code, _ = await api.error(
        RECORD_CHARGE,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianId": g.ann.id,
                "amount": "10.00",
                "occurredOn": "2026-03-02",
                "description": "Session",
                **fields,
            }
        },
        g.owner.token,
    )
    assert code == "BAD_USER_INPUT"
    assert await ledger_snapshot() == before


# ------------------------------------------------------------------ audit


async def test_every_billing_write_is_audited(api, group):
    g = group
    entry = (await charge(api, g.owner, g.ann_chart, g.ann, "100.00"))["entry"]["id"]
    await adjust(api, g.owner, g.ann_chart, g.ann, "-5.00")
    await pay(api, g.ann, g.ann_chart, g.ann, "5.00")
    await refund(api, g.ann, g.ann_chart, g.ann, "1.00")
    statement = await api.ok(
        GENERATE_STATEMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianIds": [g.ann.id],
                "periodStart": "2026-03-01",
                "periodEnd": "2026-03-31",
            }
        },
        g.ann.token,
    )
    invoice = await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.ann.token)
    events = await AuditEvent.filter(action__startswith="billing.").order_by("sequence")
    assert [e.action for e in events] == [
        "billing.charge_recorded",
        "billing.adjustment_recorded",
        "billing.payment_recorded",
        "billing.refund_recorded",
        "billing.statement_generated",
        "billing.invoice_created",
    ]
    assert events[0].target_id == entry and events[0].actor_id == g.owner.row.id
    assert events[0].details == {"amount": "100.00", "clinician": g.ann.id, "chart": g.ann_chart}
    assert events[4].target_id == statement["generateStatement"]["statement"]["id"]
    assert events[5].target_id == invoice["createInvoice"]["invoice"]["id"] and events[5].actor_id == g.ann.row.id


# ------------------------------------------------------------------ invoices and payments

INVOICES = (
    "query($s: InvoiceStatus) { practice { billing { invoices(status: $s) { totalCount edges { node { number "
    "status } } } } } }"
)


async def test_an_invoice_holds_the_clinicians_uninvoiced_charges_and_payments_pay_it(api, group):
    g = group
    first = (await charge(api, g.owner, g.shared_chart, g.ann, "100.00"))["entry"]["id"]
    second = (await charge(api, g.owner, g.shared_chart, g.ann, "50.00"))["entry"]["id"]
    await charge(api, g.owner, g.shared_chart, g.ben, "70.00")  # Ben's: not on Ann's invoice
    await pay(api, g.ann, g.shared_chart, g.ann, "5.00")  # a payment: never on an invoice
    invoice = (
        await api.ok(CREATE_INVOICE, {"i": {"chartId": g.shared_chart, "clinicianIds": [g.ann.id]}}, g.ann.token)
    )["createInvoice"]["invoice"]
    assert (
        invoice["number"] == "INV-000001" and invoice["status"] == "OPEN" and invoice["patientName"] == "Robin Shared"
    )
    assert invoice["total"]["amount"] == invoice["amountDue"]["amount"] == "150.00"
    assert sorted(e["node"]["id"] for e in invoice["entries"]["edges"]) == sorted([first, second])
    # The charge knows its invoice.
    assert (await api.ok(NODE, {"id": first}, g.owner.token))["node"]["invoice"]["id"] == invoice["id"]

    partial = await pay(api, g.ann, g.shared_chart, g.ann, "100.00", invoice=invoice["id"])
    assert partial["invoice"] == {"id": invoice["id"], "status": "OPEN", "amountDue": {"amount": "50.00"}}
    assert partial["entry"]["invoice"]["id"] == invoice["id"]
    assert partial["balance"]["amount"] == "45.00"
    # More than is due is refused, and writes nothing.
    before = await ledger_snapshot()
    code, _ = await api.error(
        RECORD_PAYMENT,
        {
            "i": {
                "chartId": g.shared_chart,
                "clinicianIds": [g.ann.id],
                "amount": "50.01",
                "occurredOn": "2026-03-03",
                "invoiceId": invoice["id"],
            }
        },
        g.ann.token,
    )
    assert code == "BAD_USER_INPUT"
    assert await ledger_snapshot() == before
    paid = await pay(api, g.owner, g.shared_chart, g.ann, "50.00", invoice=invoice["id"])
    assert paid["invoice"] == {"id": invoice["id"], "status": "PAID", "amountDue": {"amount": "0.00"}}
    code, _ = await api.error(
        RECORD_PAYMENT,
        {
            "i": {
                "chartId": g.shared_chart,
                "clinicianIds": [g.ann.id],
                "amount": "1.00",
                "occurredOn": "2026-03-03",
                "invoiceId": invoice["id"],
            }
        },
        g.ann.token,
    )
    assert code == "CONFLICT"
    # An invoice is paid only for its own clinician and chart.
    code, _ = await api.error(
        RECORD_PAYMENT,
        {
            "i": {
                "chartId": g.shared_chart,
                "clinicianIds": [g.ben.id],
                "amount": "1.00",
                "occurredOn": "2026-03-03",
                "invoiceId": invoice["id"],
            }
        },
        g.owner.token,
    )
    assert code == "NOT_FOUND"
    listed = (await api.ok(INVOICES, {"s": "PAID"}, g.owner.token))["practice"]["billing"]["invoices"]
    assert listed == {"totalCount": 1, "edges": [{"node": {"number": "INV-000001", "status": "PAID"}}]}
    assert (await api.ok(INVOICES, {"s": "OPEN"}, g.owner.token))["practice"]["billing"]["invoices"]["edges"] == []


async def test_a_charge_is_on_at_most_one_invoice(api, group):
    g = group
    charged = (await charge(api, g.ann, g.ann_chart, g.ann, "100.00"))["entry"]["id"]
    payment = (await pay(api, g.ann, g.ann_chart, g.ann, "10.00"))["entry"]["id"]
    first = await api.ok(
        CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "entryIds": [charged]}}, g.ann.token
    )
    assert first["createInvoice"]["invoice"]["number"] == "INV-000001"
    for entry_ids in ([charged], None):
        code, _ = await api.error(
            CREATE_INVOICE,
            {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "entryIds": entry_ids}},
            g.ann.token,
        )
        assert code == "CONFLICT"
    # Only this clinician's charges for this chart go on an invoice.
    ben_charge = (await charge(api, g.owner, g.shared_chart, g.ben, "5.00"))["entry"]["id"]
    before = await ledger_snapshot()
    for entry_ids in ([payment], [ben_charge], [encode("BillingEntry", uuid.uuid4())], []):
        code, body = await api.error(
            CREATE_INVOICE,
            {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "entryIds": entry_ids}},
            g.ann.token,
        )
        assert code == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"] == "input.entryIds"
    assert await ledger_snapshot() == before
    # A refused invoice gave its number back: the next one follows without a gap.
    await charge(api, g.ann, g.ann_chart, g.ann, "20.00")
    second = await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.ann.token)
    assert second["createInvoice"]["invoice"]["number"] == "INV-000002"
    assert second["createInvoice"]["invoice"]["total"]["amount"] == "20.00"


# ------------------------------------------------------------------ concurrency (PostgreSQL)


@postgres_only()
async def test_concurrent_payments_all_land(api, group):
    g = group
    await charge(api, g.owner, g.shared_chart, g.ann, "500.00")
    payers = [g.owner, g.ann]
    results = await asyncio.gather(
        *[
            api.post(
                RECORD_PAYMENT,
                {
                    "i": {
                        "chartId": g.shared_chart,
                        "clinicianIds": [g.ann.id],
                        "amount": "7.50",
                        "occurredOn": "2026-03-03",
                    }
                },
                payers[i % 2].token,
            )
            for i in range(24)
        ]
    )
    assert all(not r.get("errors") for r in results), [r["errors"] for r in results if r.get("errors")]
    assert sorted(Decimal(r["data"]["recordPayment"]["balance"]["amount"]) for r in results) == [
        Decimal("500.00") - Decimal("7.50") * n for n in range(24, 0, -1)
    ]
    assert await balance(api, g.owner) == "320.00"
    assert await BillingEntry.filter(kind="PAYMENT").count() == 24


@postgres_only()
async def test_concurrent_first_entries_share_one_running_total(api, group):
    g = group
    results = await asyncio.gather(
        *[
            api.post(
                RECORD_CHARGE,
                {
                    "i": {
                        "chartId": g.ben_chart,
                        "clinicianId": g.ben.id,
                        "amount": "10.00",
                        "occurredOn": "2026-03-02",
                        "description": "Session",
                    }
                },
                g.ben.token,
            )
            for _ in range(10)
        ]
    )
    assert all(not r.get("errors") for r in results)
    assert await BillingBalance.all().count() == 1
    assert await balance(api, g.owner) == "100.00"


@postgres_only()
async def test_racing_invoices_never_share_a_charge(api, group):
    g = group
    charges = [(await charge(api, g.owner, g.ann_chart, g.ann, "30.00"))["entry"]["id"] for _ in range(3)]
    racers = [{"chartId": g.ann_chart, "clinicianIds": [g.ann.id]} for _ in range(4)]
    racers += [{"chartId": g.ann_chart, "clinicianIds": [g.ann.id], "entryIds": charges[:2]} for _ in range(4)]
    results = await asyncio.gather(*[api.post(CREATE_INVOICE, {"i": r}, g.ann.token) for r in racers])
    won = [r for r in results if not r.get("errors")]
    assert len(won) == 1
    assert {r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")} == {"CONFLICT"}
    assert await InvoiceLine.all().count() == len(won[0]["data"]["createInvoice"]["invoice"]["entries"]["edges"])
    assert await Invoice.all().count() == 1
    assert won[0]["data"]["createInvoice"]["invoice"]["number"] == "INV-000001"
    # Each charge on at most one invoice, by the database's own unique constraint.
    assert len({line.entry_id for line in await InvoiceLine.all()}) == await InvoiceLine.all().count()


@postgres_only()
async def test_concurrent_payments_across_clinicians_and_charts_all_land(api, group):
    g = group
    pairs = [(g.ann_chart, g.ann), (g.ben_chart, g.ben), (g.shared_chart, g.ann), (g.shared_chart, g.ben)]
    for chart, clinician in pairs:
        await charge(api, g.owner, chart, clinician, "100.00")
    results = await asyncio.gather(
        *[
            api.post(
                RECORD_PAYMENT,
                {
                    "i": {
                        "chartId": chart,
                        "clinicianIds": [clinician.id],
                        "amount": "10.00",
                        "occurredOn": "2026-03-03",
                    }
                },
                g.owner.token,
            )
            for _ in range(5)
            for chart, clinician in pairs
        ]
    )
    assert all(not r.get("errors") for r in results), [r["errors"] for r in results if r.get("errors")]
    for chart, clinician in pairs:
        assert await balance(api, g.owner, clinicians=[clinician], chart=chart) == "50.00"
    assert await balance(api, g.owner) == "200.00"


async def test_the_ledger_is_append_only(api, group):
    g = group
    charged = await charge(api, g.owner, g.ann_chart, g.ann, "100.00")
    await pay(api, g.ann, g.ann_chart, g.ann, "10.00")

    async def rows() -> set[tuple]:
        return {
            (
                e.id,
                e.kind,
                e.delta_cents,
                e.occurred_on,
                e.description,
                e.invoice_id,
                e.clinician_id,
                e.chart_id,
                e.created_by_id,
                e.created_at,
            )
            for e in await BillingEntry.all()
        }

    before = await rows()
    invoice = (await api.ok(CREATE_INVOICE, {"i": {"chartId": g.ann_chart, "clinicianIds": [g.ann.id]}}, g.ann.token))[
        "createInvoice"
    ]["invoice"]
    await pay(api, g.ann, g.ann_chart, g.ann, "100.00", invoice=invoice["id"])
    await api.ok(
        GENERATE_STATEMENT,
        {
            "i": {
                "chartId": g.ann_chart,
                "clinicianIds": [g.ann.id],
                "periodStart": "2026-03-01",
                "periodEnd": "2026-03-31",
            }
        },
        g.ann.token,
    )
    after = await rows()
    assert before < after and len(after) == len(before) + 1  # invoicing, paying and statements change no entry
    # Nothing an entry points at can be deleted from under it (RESTRICT).
    entry = await BillingEntry.get(id=parse(charged["entry"]["id"])[1])
    for model, pk in [(Chart, entry.chart_id), (Member, entry.clinician_id), (Member, entry.created_by_id)]:
        with pytest.raises(IntegrityError):
            await model.filter(id=pk).delete()
    assert await rows() == after
