"""What auditing adds to a list request: the same list of 50 rows, with and without one read event per row.

    python bench/audit_overhead.py                         # SQLite file in a temporary directory
    python bench/audit_overhead.py --database-url postgres://postgres@127.0.0.1:5432/bench

Requests go through the whole app in this process (ASGI, GraphQL, ORM, database), one at a time, so the
time per request is the server's work for it. It prints the median and 90th percentile of each variant and
the audited/unaudited ratio (the rule: auditing must not double the cost of a chart-list request).

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
from collections.abc import Callable, Iterator
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
    response = await api.post("/graphql", json={
        "query": "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken member { id } } }",
        "variables": {"i": {"practiceName": f"Bench {uuid.uuid4().hex[:6]}", "name": "Owner", "email": "owner@example.com",
                            "password": PASSWORD, "planCode": "erx-lite"}},
    })
    signed = response.json()["data"]["signUp"]
    practice = await Practice.filter(members__email="owner@example.com").order_by("-created_at").first()
    owner = await Member.get(practice_id=practice.id, role=Role.OWNER)
    now = datetime.now(UTC)
    await Member.bulk_create([
        Member(id=uuid.uuid4(), practice_id=practice.id, name=f"Clinician {i}", email=f"c{i}@example.com",
               password_hash="x", role=Role.CLINICIAN, plan_code="erx-lite", created_at=now)
        for i in range(rows - 1)
    ])
    if HAS_CHARTS:
        await Chart.bulk_create([
            Chart(id=uuid.uuid4(), practice_id=practice.id, patient_name=f"Patient {i}", patient_name_search=f"patient {i}",
                  created_by_id=owner.id, created_at=now)
            for i in range(rows)
        ])
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


async def measure(api: httpx.AsyncClient, token: str, query: str, n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        response = await api.post("/graphql", json={"query": query}, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        body = response.json()
        assert not body.get("errors"), body
    return timings


def summary(label: str, timings: list[float]) -> float:
    median = statistics.median(timings)
    p90 = statistics.quantiles(timings, n=10)[-1]
    print(f"  {label:<14} median {median:6.2f} ms   p90 {p90:6.2f} ms")
    return median


async def run(database_url: str, rows: int, n: int) -> None:
    settings = Settings(env="test", database_url=database_url, jwt_secret="bench-" + "x" * 40, rate_limit_points=10**9)
    app = create_app(settings, generate_schemas=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as api:
            token = await seed(api, rows)
            query = CHART_LIST if HAS_CHARTS else MEMBER_LIST
            what = "chart list (Practice.charts)" if HAS_CHARTS else "member list standing in for the chart list"
            plain_ctx, audited_ctx = (audit_writer_off, contextlib.nullcontext) if HAS_CHARTS else (
                contextlib.nullcontext, member_reads_audited)
            print(f"{database_url.split(':', 1)[0]}: {what}, {rows} rows per request, {n} requests per variant")
            variants: list[tuple[str, Callable]] = [("not audited", plain_ctx), ("audited", audited_ctx)]
            medians = {}
            for label, context in variants * 2:  # interleaved twice, the first round as warm-up
                with context():
                    timings = await measure(api, token, query, n)
                medians[label] = timings
            plain = summary("not audited", medians["not audited"])
            audited = summary("audited", medians["audited"])
            print(f"  audited / not audited: {audited / plain:.2f}x (+{audited - plain:.2f} ms per request)")


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
