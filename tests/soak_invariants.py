"""What must hold in the database after the soak and after a crash, checked with SQL (not through the API):

- every acknowledged write is there as acknowledged (ledger entries, invoices, statements, accepted invitations),
  and every acknowledged audited write left its audit event, under the request's id;
- running balances equal the ledger sums;
- statement and invoice numbers run 1..n per practice (no gaps, no duplicates) and the counters agree;
- no charge is on two invoices; an invoice holds only charges of its clinician and chart, its total is their sum,
  what it has been paid is the sum of its payments (never more than the total), and it is PAID exactly then;
- a statement's closing balance is its opening balance plus its entries;
- each accepted invitation made exactly one member, and every member but the owner came from one;
- a member's role is the one its last role change names; no chart is assigned to an administrator (a deactivated
  member keeps theirs unless a successor is named, by design);
- the audit chain verifies (``groups-api audit verify``).

A crash may leave a write committed whose answer never arrived: the checks go from acknowledged to stored and
over what is stored, never from stored to acknowledged.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter

import asyncpg

from resolvers import ids
from tests.soak_load import Acknowledged
from tests.soak_server import audit_verify


def uuid_of(global_id: str) -> uuid.UUID:
    parsed = ids.parse(global_id)
    assert parsed is not None, global_id
    return parsed[1]


def uuids_of(global_ids) -> list[uuid.UUID]:
    return [uuid_of(g) for g in global_ids]


async def check(database_url: str, acknowledged: Acknowledged) -> list[str]:
    """Every broken invariant, one line each (empty when all hold)."""
    connection = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        problems = []
        for rule in (_acknowledged_writes, _audited_requests, _balances, _numbering, _invoices, _statements, _members):
            problems += await rule(connection, acknowledged)
    finally:
        await connection.close()
    verified = audit_verify(database_url)
    if verified.returncode != 0:
        problems.append(f"audit chain: {verified.stdout.strip()} {verified.stderr.strip()[-500:]}")
    return problems


async def _acknowledged_writes(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    problems = []
    rows = await db.fetch(
        "SELECT id, kind, delta_cents, clinician_id, chart_id, invoice_id FROM billing_entries WHERE id = "
        "ANY($1::uuid[])",
        uuids_of(acknowledged.entries),
    )
    stored = {row["id"]: row for row in rows}
    for gid, (kind, delta, clinician, chart, invoice) in acknowledged.entries.items():
        row = stored.get(uuid_of(gid))
        expected = (kind, delta, uuid_of(clinician), uuid_of(chart), uuid_of(invoice) if invoice else None)
        if row is None:
            problems.append(f"acknowledged entry {gid} ({kind} {delta}) is missing")
        elif tuple(row)[1:] != expected:
            problems.append(f"entry {gid} is stored as {tuple(row)[1:]}, acknowledged as {expected}")
    for table, written, columns in (
        ("invoices", acknowledged.invoices, "number, total_cents"),
        ("statements", acknowledged.statements, "number, opening_cents, closing_cents"),
    ):
        rows = await db.fetch(f"SELECT id, {columns} FROM {table} WHERE id = ANY($1::uuid[])", uuids_of(written))
        stored = {row["id"]: tuple(row)[1:] for row in rows}
        for gid, expected in written.items():
            if stored.get(uuid_of(gid)) != expected:
                problems.append(f"acknowledged {table[:-1]} {gid} {expected} is stored as {stored.get(uuid_of(gid))}")
    rows = await db.fetch(
        "SELECT id, status, member_id FROM invitations WHERE id = ANY($1::uuid[])", uuids_of(acknowledged.accepted)
    )
    stored = {row["id"]: (row["status"], row["member_id"]) for row in rows}
    for invitation, member in acknowledged.accepted.items():
        if stored.get(uuid_of(invitation)) != ("ACCEPTED", uuid_of(member)):
            problems.append(
                f"acknowledged accept of {invitation} (member {member}) is stored as {stored.get(uuid_of(invitation))}"
            )
    return problems


async def _audited_requests(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    requests = sorted(acknowledged.audited_requests)
    rows = await db.fetch("SELECT DISTINCT request_id FROM audit_events WHERE request_id = ANY($1::text[])", requests)
    missing = set(requests) - {row["request_id"] for row in rows}
    return [f"{len(missing)} acknowledged writes have no audit event, e.g. {sorted(missing)[:5]}"] if missing else []


async def _balances(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    ledger = {
        (r["practice_id"], r["clinician_id"], r["chart_id"]): r["total"]
        for r in await db.fetch(
            "SELECT practice_id, clinician_id, chart_id, SUM(delta_cents) AS total FROM billing_entries GROUP BY 1, 2, "
            "3"
        )
    }
    balances = {
        (r["practice_id"], r["clinician_id"], r["chart_id"]): r["balance_cents"]
        for r in await db.fetch("SELECT practice_id, clinician_id, chart_id, balance_cents FROM billing_balances")
    }
    return [
        f"balance of clinician {key[1]} on chart {key[2]} is {balances.get(key)}, its ledger sums to "
        f"{ledger.get(key, 0)}"
        for key in ledger.keys() | balances.keys()
        if balances.get(key) != ledger.get(key, 0) and not (key not in ledger and balances.get(key) == 0)
    ]


async def _numbering(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    problems = []
    counters = {
        (r["practice_id"], r["name"]): r["last_value"]
        for r in await db.fetch("SELECT practice_id, name, last_value FROM billing_counters")
    }
    for table, counter, prefix in (("statements", "statement", "S"), ("invoices", "invoice", "INV")):
        rows = await db.fetch(f"SELECT practice_id, sequence, number FROM {table} ORDER BY practice_id, sequence")
        by_practice: dict = {}
        for row in rows:
            by_practice.setdefault(row["practice_id"], []).append((row["sequence"], row["number"]))
        for practice, numbered in by_practice.items():
            sequences = [sequence for sequence, _ in numbered]
            if sequences != list(range(1, len(sequences) + 1)):
                gaps = sorted(set(range(1, max(sequences) + 1)) - set(sequences))[:10]
                twice = [s for s, n in Counter(sequences).items() if n > 1][:10]
                problems.append(
                    f"{table} of practice {practice}: {len(sequences)} numbered up to {max(sequences)}; gaps {gaps}, "
                    f"twice {twice}"
                )
            wrong = [(s, n) for s, n in numbered if n != f"{prefix}-{s:06d}"]
            if wrong or len({n for _, n in numbered}) != len(numbered):
                problems.append(f"{table} of practice {practice}: numbers do not match their sequence: {wrong[:5]}")
            if counters.get((practice, counter)) != len(numbered):
                problems.append(
                    f"{counter} counter of practice {practice} is {counters.get((practice, counter))}, {len(numbered)} "
                    "numbered"
                )
    return problems


async def _invoices(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    problems = []
    twice = await db.fetch("SELECT entry_id, COUNT(*) FROM invoice_lines GROUP BY entry_id HAVING COUNT(*) > 1")
    problems += [f"charge {row['entry_id']} is on {row['count']} invoices" for row in twice]
    foreign = await db.fetch(
        """SELECT l.invoice_id, l.entry_id, e.kind FROM invoice_lines l JOIN billing_entries e ON e.id = l.entry_id
           JOIN invoices i ON i.id = l.invoice_id
           WHERE e.kind <> 'CHARGE' OR e.clinician_id <> i.clinician_id OR e.chart_id <> i.chart_id OR e.practice_id <>
           i.practice_id"""
    )
    problems += [
        f"invoice {row['invoice_id']} holds entry {row['entry_id']} ({row['kind']}) of another clinician, chart or kind"
        for row in foreign
    ]
    rows = await db.fetch(
        """SELECT i.id, i.number, i.status, i.total_cents, i.paid_cents,
                  (SELECT COALESCE(SUM(e.delta_cents), 0) FROM invoice_lines l JOIN billing_entries e ON e.id =
                  l.entry_id
                    WHERE l.invoice_id = i.id) AS lines,
                  (SELECT COALESCE(-SUM(p.delta_cents), 0) FROM billing_entries p WHERE p.invoice_id = i.id AND p.kind =
                  'PAYMENT') AS paid
           FROM invoices i"""
    )
    for row in rows:
        name = f"invoice {row['number']} ({row['id']})"
        if row["lines"] != row["total_cents"] or row["lines"] <= 0:
            problems.append(f"{name}: total {row['total_cents']}, its charges sum to {row['lines']}")
        if row["paid"] != row["paid_cents"]:
            problems.append(f"{name}: paid {row['paid_cents']}, its payments sum to {row['paid']}")
        if row["paid_cents"] > row["total_cents"]:
            problems.append(f"{name}: paid {row['paid_cents']} over its total {row['total_cents']}")
        if (row["status"] == "PAID") != (row["paid_cents"] >= row["total_cents"]):
            problems.append(f"{name}: {row['status']} with {row['paid_cents']} paid of {row['total_cents']}")
    return problems


async def _statements(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    rows = await db.fetch(
        """SELECT s.id, s.number, s.opening_cents, s.closing_cents,
                  COALESCE(SUM(e.delta_cents), 0) AS lines,
                  COUNT(e.id) FILTER (WHERE e.clinician_id <> s.clinician_id OR e.chart_id <> s.chart_id
                                      OR e.occurred_on < s.period_start OR e.occurred_on > s.period_end) AS
                                      foreign_lines
           FROM statements s LEFT JOIN statement_lines l ON l.statement_id = s.id LEFT JOIN billing_entries e ON e.id =
           l.entry_id
           GROUP BY s.id"""
    )
    problems = []
    for row in rows:
        if row["opening_cents"] + row["lines"] != row["closing_cents"]:
            problems.append(
                f"statement {row['number']}: opening {row['opening_cents']} + entries {row['lines']} != closing "
                f"{row['closing_cents']}"
            )
        if row["foreign_lines"]:
            problems.append(
                f"statement {row['number']} holds {row['foreign_lines']} entries of another clinician, chart or period"
            )
    return problems


async def _members(db: asyncpg.Connection, acknowledged: Acknowledged) -> list[str]:
    problems = []
    accepted = await db.fetch(
        """SELECT i.id, i.member_id, m.id AS found FROM invitations i
           LEFT JOIN members m ON m.id = i.member_id AND m.email = i.email AND m.practice_id = i.practice_id
           WHERE i.status = 'ACCEPTED'"""
    )
    problems += [
        f"accepted invitation {row['id']} has no member of its email" for row in accepted if row["found"] is None
    ]
    shared = Counter(row["member_id"] for row in accepted)
    problems += [f"member {member} came from {n} accepted invitations" for member, n in shared.items() if n > 1]
    events = Counter(
        row["target_id"]
        for row in await db.fetch("SELECT target_id FROM audit_events WHERE action = 'invitation.accepted'")
    )
    problems += [
        f"invitation {target} was accepted {n} times in the audit log" for target, n in events.items() if n > 1
    ]
    if len(events) != len(accepted):
        problems.append(f"{len(accepted)} accepted invitations, {len(events)} acceptances in the audit log")
    orphans = await db.fetch(
        "SELECT id, email FROM members m WHERE role <> 'OWNER' AND NOT EXISTS (SELECT 1 FROM invitations i WHERE "
        "i.member_id = m.id)"
    )
    problems += [f"member {row['email']} ({row['id']}) came from no accepted invitation" for row in orphans]
    last_change: dict[uuid.UUID, str] = {}
    for row in await db.fetch(
        "SELECT target_id, details FROM audit_events WHERE action = 'member.role_changed' ORDER BY practice_id, "
        "sequence"
    ):
        details = row["details"]
        last_change[uuid_of(row["target_id"])] = (
            json.loads(details)["to"] if isinstance(details, str) else details["to"]
        )
    roles = {
        row["id"]: row["role"]
        for row in await db.fetch("SELECT id, role FROM members WHERE id = ANY($1::uuid[])", list(last_change))
    }
    problems += [
        f"member {member} is {roles.get(member)}, but their last role change made them {role}"
        for member, role in last_change.items()
        if roles.get(member) != role
    ]
    wrong = await db.fetch(
        """SELECT a.chart_id, m.id, m.role, m.status FROM chart_assignments a JOIN members m ON m.id = a.clinician_id
           WHERE m.role NOT IN ('OWNER', 'CLINICIAN')"""
    )
    problems += [f"chart {row['chart_id']} is assigned to {row['status']} {row['role']} {row['id']}" for row in wrong]
    return problems
