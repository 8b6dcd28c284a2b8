"""A bounded load on a running server: concurrent clients mixing charges, payments, adjustments, refunds, invoices,
statements, invitations and their accepts, role changes, chart assignment and reads, for a fixed time.

Every write the server acknowledges (a response with data and no error) is recorded in ``Acknowledged``;
tests/soak_invariants.py then checks the database against it. Any 5xx, INTERNAL or otherwise unacceptable answer
(tests/fuzz_checks.py) is a defect; refusals a race makes legitimate (CONFLICT, an amount over what is due...) are
counted, not failed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

import httpx

from tests.fuzz_checks import response_problems

PASSWORD = "correct horse battery"
ENTRY = "entry { id kind amount { amount } clinician { id } chart { id } }"
RECORD_CHARGE = f"mutation($i: RecordChargeInput!) {{ recordCharge(input: $i) {{ {ENTRY} }} }}"
RECORD_ADJUSTMENT = f"mutation($i: RecordAdjustmentInput!) {{ recordAdjustment(input: $i) {{ {ENTRY} }} }}"
RECORD_PAYMENT = (
    f"mutation($i: RecordPaymentInput!) {{ recordPayment(input: $i) {{ {ENTRY} invoice {{ id status }} }} }}"
)
RECORD_REFUND = f"mutation($i: RecordRefundInput!) {{ recordRefund(input: $i) {{ {ENTRY} }} }}"
CREATE_INVOICE = (
    "mutation($i: CreateInvoiceInput!) { createInvoice(input: $i) { invoice { id number total { amount } } } }"
)
GENERATE_STATEMENT = """mutation($i: GenerateStatementInput!) { generateStatement(input: $i) { statement {
    id number openingBalance { amount } closingBalance { amount } } } }"""
INVITE = "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token invitation { id } } }"
ACCEPT = "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { accessToken member { id } } }"
UPDATE_MEMBER = "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { id role } } }"
ASSIGN = "mutation($i: ChartAssignmentInput!) { assignChart(input: $i) { chart { id } } }"
UNASSIGN = "mutation($i: ChartAssignmentInput!) { unassignChart(input: $i) { chart { id } } }"
CREATE_CHART = "mutation($i: CreateChartInput!) { createChart(input: $i) { chart { id } } }"
READS = [
    """query($f: BillingFilter, $b: BalanceFilter) { practice { billing { currentBalance(filter: $b) { amount }
        history(filter: $f, first: 20) { edges { node { id kind amount { amount } invoice { id } } } } } } }""",
    """query($f: BillingFilter) { practice { billing { invoices(filter: $f, first: 10) { edges { node { id number status
        amountDue { amount } entries(first: 5) { totalCount } } } } statements(filter: $f, first: 10) { edges { node {
        id number } } } } } }""",
    "{ practice { charts(first: 20) { totalCount edges { node { id patientName assignedClinicians { id } } } } } }",
    "{ practice { members(first: 50) { edges { node { id name role status } } } } }",
    "{ viewer { id assignedCharts(first: 10) { edges { node { id } } } } }",
]
AUDIT_READ = "{ practice { auditLog(first: 10) { edges { node { id action } } } } }"


def cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


def money(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


@dataclass
class Person:
    id: str
    token: str


@dataclass
class Acknowledged:
    """Every write the server acknowledged, as it described it."""

    entries: dict[str, tuple[str, int, str, str, str | None]] = field(
        default_factory=dict
    )  # kind, delta, clinician, chart, invoice
    invoices: dict[str, tuple[str, int]] = field(default_factory=dict)  # number, total cents
    statements: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # number, opening, closing cents
    accepted: dict[str, str] = field(default_factory=dict)  # invitation id -> member id
    # Requests whose write always records an audit event (with the request's id), so the event proves the commit.
    audited_requests: set[str] = field(default_factory=set)


@dataclass
class Outcomes:
    counts: Counter = field(default_factory=Counter)  # (action, "ok" | error code | "transport")
    messages: dict = field(default_factory=dict)  # (action, code) -> the first message seen
    latencies: list[float] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def summary(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p50, p95 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.95)]
        writes = sum(
            n for (action, outcome), n in self.counts.items() if outcome == "ok" and not action.startswith("read")
        )
        by_action: dict[str, dict[str, int]] = defaultdict(dict)
        for (action, outcome), n in sorted(self.counts.items()):
            by_action[action][outcome] = n
        return (
            f"{self.requests} requests in {self.seconds:.1f} s ({self.requests / max(self.seconds, 1e-9):.0f}/s), "
            f"{writes} acknowledged writes ({writes / max(self.seconds, 1e-9):.0f}/s); latency p50 {p50 * 1000:.0f} "
            f"ms, p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms\n"
            + "\n".join(f"  {a}: {dict(o)}" for a, o in by_action.items())
        )


class Soak:
    """One practice, its members and charts, and the clients that load it."""

    # Failed accepts are throttled per client address (50 per 15 minutes) and every client here is 127.0.0.1: only
    # this many invitations get a second, racing accept.
    RACED_ACCEPTS: ClassVar[int] = 30

    def __init__(self, base_url: str, *, seed: int = 0) -> None:
        self.http = self.client(base_url)
        self.random = random.Random(seed)
        self.ids = itertools.count()
        self.acknowledged = Acknowledged()
        self.outcomes = Outcomes()
        self.open_invoices: dict[tuple[str, str], list[list]] = defaultdict(list)  # pair -> [[id, total, paid]]
        self.raced_accepts = 0
        self.stopping = False

    @staticmethod
    def client(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(60.0), limits=httpx.Limits(max_connections=200)
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ one request

    async def call(
        self, action: str, query: str, variables: dict | None, person: Person | None
    ) -> tuple[dict, str] | None:
        """Send one operation; returns (data, request id) when it was acknowledged, None otherwise (counted)."""
        request_id = f"soak-{next(self.ids)}"
        headers = {"x-request-id": request_id}
        if person is not None:
            headers["authorization"] = f"Bearer {person.token}"
        started = time.perf_counter()
        try:
            response = await self.http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        except httpx.HTTPError as exc:
            self.outcomes.counts[(action, "transport")] += 1
            if not self.stopping:
                self.outcomes.defects.append(f"{action}: {type(exc).__name__}: {exc}")
            return None
        self.outcomes.latencies.append(time.perf_counter() - started)
        # Audit events carry the server's own request id (answered in X-Request-Id), not the one sent.
        request_id = response.headers.get("x-request-id", request_id)
        problems = response_problems(response.status_code, response.content)
        if problems:
            self.outcomes.counts[(action, "defect")] += 1
            self.outcomes.defects.append(f"{action} ({request_id}): " + "; ".join(problems))
            return None
        body = response.json()
        if body.get("errors"):
            key = (action, body["errors"][0]["extensions"]["code"])
            self.outcomes.counts[key] += 1
            self.outcomes.messages.setdefault(key, body["errors"][0]["message"])
            return None
        self.outcomes.counts[(action, "ok")] += 1
        return body["data"], request_id

    async def ok(self, query: str, variables: dict | None, person: Person | None) -> dict:
        """A set-up call that must succeed."""
        answered = await self.call("setup", query, variables, person)
        assert answered is not None, (query, variables, self.outcomes.defects[-3:])
        return answered[0]

    # ------------------------------------------------------------------ the practice

    async def set_up(self, *, clinicians: int = 8, flippers: int = 3, charts: int = 16) -> None:
        """The practice: its owner, billing clinicians, members whose role and charts change, charts, a partner
        token."""
        signed = await self.ok(
            "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken member { id } } }",
            {
                "i": {
                    "practiceName": "Soak Practice",
                    "name": "Olive Owner",
                    "email": "owner@soak.example",
                    "password": PASSWORD,
                    "planCode": "erx-lite",
                }
            },
            None,
        )
        self.owner = Person(signed["signUp"]["member"]["id"], signed["signUp"]["accessToken"])
        await self.ok("mutation { activateGroupPractice { practice { id } } }", None, self.owner)
        self.clinicians = [await self.join(f"clinician{i}@soak.example") for i in range(clinicians)]
        self.flippers = [await self.join(f"flipper{i}@soak.example") for i in range(flippers)]
        self.charts: list[str] = []
        self.pairs: list[tuple[str, Person]] = []  # (chart, a clinician assigned to it)
        for index in range(charts):
            assigned = [self.clinicians[index % clinicians]] + (
                [self.clinicians[(index + 1) % clinicians]] if index < 4 else []
            )
            created = await self.ok(
                CREATE_CHART,
                {"i": {"patientName": f"Patient {index}", "clinicianIds": [c.id for c in assigned]}},
                self.owner,
            )
            chart = created["createChart"]["chart"]["id"]
            self.charts.append(chart)
            self.pairs += [(chart, clinician) for clinician in assigned]
        token = await self.ok(
            "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token } }",
            {"i": {"name": "Partner", "scopes": ["READ_MEMBERS", "READ_CHARTS", "READ_BILLING", "WRITE_BILLING"]}},
            self.owner,
        )
        self.partner = Person(self.owner.id, token["createApiToken"]["token"])

    async def join(self, email: str) -> Person:
        invited = await self.ok(
            INVITE, {"i": {"email": email, "role": "CLINICIAN", "planCode": "erx-lite"}}, self.owner
        )
        accepted = await self.ok(
            ACCEPT,
            {"i": {"token": invited["inviteMember"]["token"], "name": email.split("@")[0], "password": PASSWORD}},
            None,
        )
        return Person(accepted["acceptInvitation"]["member"]["id"], accepted["acceptInvitation"]["accessToken"])

    # ------------------------------------------------------------------ the actions

    def biller(self, clinician: Person) -> Person:
        """Who records money for a clinician: mostly the clinician, else the owner or the partner token."""
        roll = self.random.random()
        return clinician if roll < 0.6 else self.owner if roll < 0.9 else self.partner

    def occurred_on(self) -> str:
        return (datetime.now(UTC).date() - timedelta(days=self.random.randint(0, 40))).isoformat()

    def ack_entry(
        self,
        answered: tuple[dict, str] | None,
        field_name: str,
        kind: str,
        delta: int,
        chart: str,
        clinician: Person,
        invoice: str | None = None,
    ) -> None:
        if answered is None:
            return
        data, request_id = answered
        entry = data[field_name]["entry"]
        assert (entry["kind"], entry["chart"]["id"], entry["clinician"]["id"]) == (kind, chart, clinician.id), entry
        self.acknowledged.entries[entry["id"]] = (kind, delta, clinician.id, chart, invoice)
        self.acknowledged.audited_requests.add(request_id)

    async def charge(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        amount = self.random.randint(100, 50_000)
        variables = {
            "i": {
                "chartId": chart,
                "clinicianId": clinician.id,
                "amount": money(amount),
                "occurredOn": self.occurred_on(),
                "description": "Session",
            }
        }
        answered = await self.call("charge", RECORD_CHARGE, variables, self.biller(clinician))
        self.ack_entry(answered, "recordCharge", "CHARGE", amount, chart, clinician)

    async def adjustment(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        amount = self.random.choice([-1, 1]) * self.random.randint(1, 5_000)
        sign = "-" if amount < 0 else ""
        variables = {
            "i": {
                "chartId": chart,
                "clinicianId": clinician.id,
                "amount": sign + money(abs(amount)),
                "occurredOn": self.occurred_on(),
                "description": "Adjustment",
            }
        }
        answered = await self.call("adjustment", RECORD_ADJUSTMENT, variables, self.biller(clinician))
        self.ack_entry(answered, "recordAdjustment", "ADJUSTMENT", amount, chart, clinician)

    async def payment(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        invoices = self.open_invoices[(chart, clinician.id)]
        invoice = self.random.choice(invoices) if invoices and self.random.random() < 0.6 else None
        due = invoice[1] - invoice[2] if invoice else 30_000
        amount = self.random.randint(1, max(1, due))
        variables = {
            "i": {
                "chartId": chart,
                "clinicianIds": [clinician.id],
                "amount": money(amount),
                "occurredOn": self.occurred_on(),
                "invoiceId": invoice[0] if invoice else None,
            }
        }
        answered = await self.call("payment", RECORD_PAYMENT, variables, self.biller(clinician))
        self.ack_entry(answered, "recordPayment", "PAYMENT", -amount, chart, clinician, invoice[0] if invoice else None)
        if answered is not None and invoice is not None:
            invoice[2] += amount
            if answered[0]["recordPayment"]["invoice"]["status"] == "PAID" and invoice in invoices:
                invoices.remove(invoice)

    async def refund(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        amount = self.random.randint(1, 5_000)
        variables = {
            "i": {
                "chartId": chart,
                "clinicianIds": [clinician.id],
                "amount": money(amount),
                "occurredOn": self.occurred_on(),
            }
        }
        answered = await self.call("refund", RECORD_REFUND, variables, self.biller(clinician))
        self.ack_entry(answered, "recordRefund", "REFUND", amount, chart, clinician)

    async def invoice(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        answered = await self.call(
            "invoice", CREATE_INVOICE, {"i": {"chartId": chart, "clinicianIds": [clinician.id]}}, self.biller(clinician)
        )
        if answered is not None:
            data, request_id = answered
            invoice = data["createInvoice"]["invoice"]
            total = cents(invoice["total"]["amount"])
            self.acknowledged.invoices[invoice["id"]] = (invoice["number"], total)
            self.acknowledged.audited_requests.add(request_id)
            self.open_invoices[(chart, clinician.id)].append([invoice["id"], total, 0])

    async def statement(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        today = datetime.now(UTC).date()
        period = {
            "chartId": chart,
            "clinicianIds": [clinician.id],
            "periodStart": (today - timedelta(days=self.random.randint(5, 45))).isoformat(),
            "periodEnd": today.isoformat(),
        }
        answered = await self.call("statement", GENERATE_STATEMENT, {"i": period}, self.biller(clinician))
        if answered is not None:
            data, request_id = answered
            statement = data["generateStatement"]["statement"]
            self.acknowledged.statements[statement["id"]] = (
                statement["number"],
                cents(statement["openingBalance"]["amount"]),
                cents(statement["closingBalance"]["amount"]),
            )
            self.acknowledged.audited_requests.add(request_id)

    async def invite_and_accept(self) -> None:
        """Invite someone new, then accept: sometimes twice at once (exactly one of the two may create the member)."""
        email = f"new{next(self.ids)}@soak.example"
        role = self.random.choice(["CLINICIAN", "CLINICIAN", "ADMINISTRATOR"])
        invite = {"email": email, "role": role, "planCode": "erx-lite" if role == "CLINICIAN" else None}
        invited = await self.call("invite", INVITE, {"i": invite}, self.owner)
        if invited is None:
            return
        self.acknowledged.audited_requests.add(invited[1])
        token, invitation = invited[0]["inviteMember"]["token"], invited[0]["inviteMember"]["invitation"]["id"]
        accept = {"i": {"token": token, "name": "New Member", "password": PASSWORD}}
        raced = self.raced_accepts < self.RACED_ACCEPTS and self.random.random() < 0.5
        self.raced_accepts += raced
        attempts = await asyncio.gather(*[self.call("accept", ACCEPT, accept, None) for _ in range(2 if raced else 1)])
        accepted = [answered for answered in attempts if answered is not None]
        if len(accepted) > 1:
            self.outcomes.defects.append(f"invitation {invitation} was accepted {len(accepted)} times")
        if raced and not accepted and not self.stopping:
            self.outcomes.defects.append(f"neither of two accepts of invitation {invitation} went through")
        for data, request_id in accepted:
            member = data["acceptInvitation"]["member"]["id"]
            self.acknowledged.accepted[invitation] = member
            self.acknowledged.audited_requests.add(request_id)
            if role == "CLINICIAN":
                self.flippers.append(Person(member, data["acceptInvitation"]["accessToken"]))

    async def role_change(self) -> None:
        member = self.random.choice(self.flippers)
        change = self.random.choice([{"role": "ADMINISTRATOR"}, {"role": "CLINICIAN", "planCode": "erx-lite"}])
        await self.call("role change", UPDATE_MEMBER, {"i": {"memberId": member.id, **change}}, self.owner)

    async def assignment(self) -> None:
        member = self.random.choice(self.flippers)
        operation = self.random.choice([("assign", ASSIGN), ("unassign", UNASSIGN)])
        await self.call(
            operation[0],
            operation[1],
            {"i": {"chartId": self.random.choice(self.charts), "clinicianId": member.id}},
            self.owner,
        )

    async def read(self) -> None:
        chart, clinician = self.random.choice(self.pairs)
        who = self.random.choice([clinician, clinician, self.owner, self.partner])
        if who is self.owner and self.random.random() < 0.2:
            await self.call("read audit log", AUDIT_READ, None, who)
            return
        query = self.random.choice(READS)
        selection = {"chartId": chart, "clinicianIds": [clinician.id]}
        variables = {"f": selection, "b": selection} if "$b" in query else {"f": selection} if "$f" in query else None
        await self.call("read", query, variables, who)

    MIX: ClassVar[dict[str, int]] = {
        "charge": 22,
        "payment": 14,
        "adjustment": 4,
        "refund": 3,
        "invoice": 8,
        "statement": 6,
        "invite_and_accept": 3,
        "role_change": 4,
        "assignment": 6,
        "read": 30,
    }
    WRITES: ClassVar[dict[str, int]] = {
        "charge": 30,
        "payment": 25,
        "adjustment": 5,
        "refund": 5,
        "invoice": 15,
        "statement": 10,
        "invite_and_accept": 10,
    }

    async def use(self, base_url: str) -> None:
        """Send to another server from now on (the same database, restarted), with fresh outcomes; what was
        acknowledged so far stays."""
        await self.http.aclose()
        self.http = self.client(base_url)
        self.outcomes = Outcomes()
        self.stopping = False

    # ------------------------------------------------------------------ the load

    async def run(self, *, clients: int, seconds: float, mix: dict[str, int] | None = None) -> None:
        """``clients`` concurrent loops of random actions (weighted by ``mix``, default MIX) until ``seconds`` have
        passed or ``stopping`` is set; each loop finishes its request."""
        chosen: dict[str, int] = mix or self.MIX
        actions: list[Callable[[], Awaitable[None]]] = [getattr(self, name) for name in chosen]
        weights = list(chosen.values())
        deadline = time.monotonic() + seconds
        self.outcomes.started = time.perf_counter()

        async def client() -> None:
            while time.monotonic() < deadline and not self.stopping:
                await self.random.choices(actions, weights)[0]()

        await asyncio.gather(*[client() for _ in range(clients)])
        self.outcomes.finished = time.perf_counter()
