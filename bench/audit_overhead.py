"""What auditing adds to a list request: the same list of 50 rows, with and without one read event per row.

    python bench/audit_overhead.py                         # SQLite file in a temporary directory
    python bench/audit_overhead.py --database-url postgres://postgres@127.0.0.1:5432/bench

Requests go through the whole app in this process (ASGI, GraphQL, ORM, database), one at a time, the two
variants alternating. It prints, per variant, the median wall time and the median CPU time of this process
(which includes SQLite's work, but not a PostgreSQL server's), and the audited / not audited ratios (the rule:
auditing must not double the cost of a chart-list request).

When the schema has Practice.charts, the chart list is measured: as built ("audited") against the same with
the audit writer replaced by a no-op ("not audited"). Until then the member list stands in for it: plain
("not audited") against the same with one ``chart.read``-style event per row returned, queued with
``audit.defer`` and written after the request in one chained batch ("audited"), which is how a chart list
records its reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from auth import passwords
from models import Chart, Member, Practice
from models.enums import Role
from resolvers import audit, members
from resolvers.ids import encode
from schema import schema
from server.app import create_app
from server.settings import Settings

PASSWORD = "correct horse battery"
HAS_CHARTS = "charts" in {f.name for f in schema.get_type_by_name("Practice").fields}
CHART_LIST = "{ practice { charts(first: 50) { edges { node { id patientName status createdAt } } } } }"
MEMBER_LIST = "{ practice { members(first: 50) { edges { node { id name role status createdAt } } } } }"


async def seed(api: httpx.AsyncClient, rows: int) -> str:
    """A practice with ``rows`` members (and charts); returns the owner's access token."""
    passwords.use_cheapest_parameters_for_tests()
    response = await api.post(
        "/graphql",
        json={
            "query": "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken member { id } } }",
            "variables": {
                "i": {
                    "practiceName": f"Bench {uuid.uuid4().hex[:6]}",
                    "name": "Owner",
                    "email": "owner@example.com",
                    "password": PASSWORD,
                    "planCode": "erx-lite",
                }
            },
        },
    )
    signed = response.json()["data"]["signUp"]
    practice = await Practice.filter(members__email="owner@example.com").order_by("-created_at").first()
    owner = await Member.get(practice_id=practice.id, role=Role.OWNER)
    now = datetime.now(UTC)
    await Member.bulk_create(
        [
            Member(
                id=uuid.uuid4(),
                practice_id=practice.id,
                name=f"Clinician {i}",
                email=f"c{i}@example.com",
                password_hash="x",
                role=Role.CLINICIAN,
                plan_code="erx-lite",
                created_at=now,
            )
            for i in range(rows - 1)
        ]
    )
    if HAS_CHARTS:
        await Chart.bulk_create(
            [
                Chart(
                    id=uuid.uuid4(),
                    practice_id=practice.id,
                    patient_name=f"Patient {i}",
                    patient_name_search=f"patient {i}",
                    created_by_id=owner.id,
                    created_at=now,
                )
                for i in range(rows)
            ]
        )
    return signed["accessToken"]


@contextlib.contextmanager
def audit_writer_off() -> Iterator[None]:
    async def nothing(*args, **kwargs) -> None:
        return None

    original = audit.record_many
    audit.record_many = nothing
    try:
        yield
    finally:
        audit.record_many = original


@contextlib.contextmanager
def member_reads_audited() -> Iterator[None]:
    """The member list records one read event per row returned, as the chart list does for charts."""
    original = members.list_members

    async def audited(ctx, **kwargs):
        page = await original(ctx, **kwargs)
        audit.defer(ctx, [audit.PendingEvent("chart.read", encode("Member", row.id)) for row in page.items])
        return page

    members.list_members = audited
    try:
        yield
    finally:
        members.list_members = original


@dataclass
class Timings:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


async def request(api: httpx.AsyncClient, token: str, query: str, into: Timings) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    response = await api.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"})
    into.wall.append((time.perf_counter() - wall) * 1000)
    into.cpu.append((time.process_time() - cpu) * 1000)
    body = response.json()
    assert not body.get("errors"), body


def median(values: list[float]) -> float:
    return statistics.median(values)


async def run(database_url: str, rows: int, n: int) -> None:
    settings = Settings(env="test", database_url=database_url, jwt_secret="bench-" + "x" * 40, rate_limit_points=10**9)
    app = create_app(settings, generate_schemas=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
            token = await seed(api, rows)
            query = CHART_LIST if HAS_CHARTS else MEMBER_LIST
            what = "chart list (Practice.charts)" if HAS_CHARTS else "member list standing in for the chart list"
            plain, audited = (
                (audit_writer_off, contextlib.nullcontext)
                if HAS_CHARTS
                else (contextlib.nullcontext, member_reads_audited)
            )
            print(f"{database_url.split(':', 1)[0]}: {what}, {rows} rows per request, {n} requests per variant")
            results = {"not audited": Timings(), "audited": Timings()}
            # Alternate the variants request by request, so load on the machine and the growing table weigh
            # on both alike; the first tenth warms up.
            for i in range(n + n // 10):
                for label, context in (("not audited", plain), ("audited", audited)):
                    with context():
                        await request(api, token, query, results[label] if i >= n // 10 else Timings())
            for label, t in results.items():
                print(
                    f"  {label:<12} wall median {median(t.wall):6.2f} ms (p90 "
                    f"{statistics.quantiles(t.wall, n=10)[-1]:6.2f})"
                    f"   process CPU median {median(t.cpu):6.2f} ms"
                )
            base, extra = results["not audited"], results["audited"]
            print(
                f"  audited / not audited: wall {median(extra.wall) / median(base.wall):.2f}x"
                f" (+{median(extra.wall) - median(base.wall):.2f} ms),"
                f" CPU {median(extra.cpu) / median(base.cpu):.2f}x (+{median(extra.cpu) - median(base.cpu):.2f} ms)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite://{Path(tmp) / 'bench.sqlite3'}"
        asyncio.run(run(url, args.rows, args.requests))


if __name__ == "__main__":
    main()
