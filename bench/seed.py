"""A realistic data set, inserted in bulk: many small practices, one large group, and a practice that grows.

Rows go in with one prepared statement per batch (``executemany``; ``COPY`` on PostgreSQL), never one model
instance at a time, so the default scale (about 800,000 rows) loads in a minute or two. The running balances
(``billing_balances``: one row per practice, clinician and chart, see resolvers/billing.py) are written from the
sums of the entries seeded, and ``check_balances`` compares them with the ledger, as the product keeps them.

Every member shares one password (``PASSWORD``), hashed once with the product's argon2 parameters.
"""

from __future__ import annotations

import contextlib
import random
import re
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Self

import asyncpg
import orjson
from tortoise import Tortoise, connections

from auth.passwords import hash_password
from auth.tokens import hash_secret, new_api_token
from models.enums import MemberStatus, Permission, PracticeKind, Role, TokenScope, TraineeStatus
from resolvers.ids import encode
from server.db import migrate_database, tortoise_config

PASSWORD = "bench: correct horse battery staple"
BATCH = 20_000
_V4_MASK = ~(0xF000 << 64 | 0xC000 << 48) & (1 << 128) - 1
_V4_BITS = 0x4000 << 64 | 0x8000 << 48


def _uuid_text(n: int) -> str:
    """Version-4 UUID text from 128 random bits (what str(uuid.uuid4()) gives, without the object)."""
    h = "%032x" % (n & _V4_MASK | _V4_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


FIRST = [
    "Avery",
    "Blake",
    "Casey",
    "Dana",
    "Eli",
    "Frankie",
    "Gray",
    "Harper",
    "Indy",
    "Jamie",
    "Kai",
    "Logan",
    "Morgan",
    "Noor",
    "Oakley",
    "Parker",
    "Quinn",
    "Riley",
    "Sage",
    "Taylor",
]
LAST = [
    "Adams",
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nguyen",
    "Okafor",
    "Patel",
    "Rossi",
    "Silva",
    "Tanaka",
    "Weber",
]
SERVICES = (
    ("Psychotherapy, 53 min (90837)", 18000),
    ("Psychotherapy, 38 min (90834)", 14000),
    ("Diagnostic evaluation (90791)", 22000),
    ("Family psychotherapy (90847)", 16000),
    ("Medication management (99214)", 12000),
)
ADMIN_PERMISSIONS = sorted(
    p.value
    for p in (Permission.VIEW_ALL_CHARTS, Permission.VIEW_BILLING, Permission.MANAGE_BILLING, Permission.MANAGE_MEMBERS)
)


@dataclass(frozen=True)
class Scale:
    """How much to seed. ``group_*`` is the large group; the growth practice is measured at both entry counts."""

    small_practices: int = 200
    small_charts: int = 60
    small_entries: int = 600
    group_clinicians: int = 50
    group_administrators: int = 10
    group_charts: int = 20_000
    group_entries: int = 500_000
    growth_clinicians: int = 20
    growth_charts: int = 2_000
    growth_from: int = 10_000
    growth_to: int = 1_000_000


QUICK = Scale(
    small_practices=5,
    small_charts=20,
    small_entries=100,
    group_charts=500,
    group_entries=5_000,
    growth_charts=200,
    growth_from=1_000,
    growth_to=10_000,
)


@dataclass
class Practice:
    """What the bench needs of a seeded practice to log in and to build its requests."""

    id: uuid.UUID
    slug: str
    owner_email: str
    clinician_ids: list[uuid.UUID]
    # (clinician, chart) pairs where the clinician is assigned to the chart: where payments may go.
    billable: list[tuple[uuid.UUID, uuid.UUID]]
    charts: list[uuid.UUID]
    api_token: str | None = None
    balances: dict[tuple[uuid.UUID, uuid.UUID], int] = field(default_factory=lambda: defaultdict(int))
    entries: int = 0

    def clinician_gids(self, count: int) -> list[str]:
        return [encode("Member", c) for c in self.clinician_ids[:count]]

    def payment_target(self) -> tuple[str, str]:
        clinician, chart = self.billable[0]
        return encode("Member", clinician), encode("Chart", chart)


@dataclass
class World:
    group: Practice
    growth: Practice
    counts: dict[str, int]


# ------------------------------------------------------------------ bulk insert


class Inserter:
    """Batched inserts of plain column values into one database, counted per table.

    Loading is the fast path a bulk load takes anywhere: foreign keys are not re-checked row by row (the rows are
    made consistent here), the ledger's secondary indexes are dropped and rebuilt around a large load, and
    nothing waits for fsync. On PostgreSQL this happens on a connection of its own, through COPY.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.connection = connections.get("default")
        self.postgres = self.connection.capabilities.dialect == "postgres"
        self.counts: dict[str, int] = defaultdict(int)
        self._random = random.Random(uuid.uuid4().int)
        self._raw: asyncpg.Connection | None = None

    async def __aenter__(self) -> Self:
        if self.postgres:
            self._raw = await asyncpg.connect(self.database_url.replace("postgres://", "postgresql://", 1))
            await self._raw.execute(
                "SET session_replication_role = replica; SET synchronous_commit = off; SET maintenance_work_mem = "
                "'512MB'"
            )
        else:
            await self.connection.execute_script(
                "PRAGMA foreign_keys = OFF; PRAGMA cache_size = -2000000; PRAGMA synchronous = OFF; PRAGMA temp_store "
                "= MEMORY"
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._raw is not None:
            await self._raw.close()
        else:
            await self.connection.execute_script("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")

    def key(self, value: uuid.UUID) -> Any:
        """A UUID as this database stores it: text on SQLite (as Tortoise's UUIDField writes it)."""
        return value if self.postgres else str(value)

    def new_id(self) -> Any:
        bits = self._random.getrandbits(128) & _V4_MASK | _V4_BITS
        return uuid.UUID(int=bits) if self.postgres else _uuid_text(bits)

    def day(self, day: date) -> tuple[Any, Any]:
        """(the date as stored, a function of (seconds, microseconds) into that day giving the datetime as stored)."""
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if self.postgres:
            return day, lambda s, us: start + timedelta(seconds=s, microseconds=us)
        prefix = day.isoformat()
        return prefix, lambda s, us: f"{prefix} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.{us:06d}+00:00"

    async def insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, stored_form: bool = False
    ) -> None:
        """Insert ``rows`` (tuples in ``columns`` order). ``stored_form``: the values are already as the database
        stores them (see ``key`` and ``day``); otherwise UUIDs are converted here."""
        batch: list[Sequence[Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                await self._flush(table, columns, batch, stored_form)
                batch = []
        if batch:
            await self._flush(table, columns, batch, stored_form)

    async def _flush(self, table: str, columns: Sequence[str], rows: list[Sequence[Any]], stored_form: bool) -> None:
        self.counts[table] += len(rows)
        if self._raw is not None:
            await self._raw.copy_records_to_table(table, records=rows, columns=list(columns))
            return
        # SQLite stores UUIDs as text (as Tortoise's UUIDField does); dates and datetimes go through the adapters
        # Tortoise registers (ISO text).
        converted = rows if stored_form else [[str(v) if isinstance(v, uuid.UUID) else v for v in row] for row in rows]
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        await self.connection.execute_many(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', converted)

    async def analyze(self) -> None:
        """Table statistics after a bulk load, as PostgreSQL's autovacuum would gather them (SQLite gathers none by
        itself)."""
        if self.postgres:
            await self.execute("ANALYZE")

    async def execute(self, sql: str, *values: Any) -> list[dict]:
        """A statement with ``$n`` placeholders (rewritten to ``?`` on SQLite) and UUID values."""
        if self._raw is not None:
            return [dict(r) for r in await self._raw.fetch(sql, *values)]
        return await self.connection.execute_query_dict(
            re.sub(r"\$\d+", "?", sql), [str(v) if isinstance(v, uuid.UUID) else v for v in values]
        )

    @contextlib.asynccontextmanager
    async def indexes_rebuilt(self, table: str) -> AsyncIterator[None]:
        """Drop ``table``'s secondary indexes (not those of its key and unique constraints) and rebuild them after."""
        if self.postgres:
            rows = await self.execute(
                "SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = $1 "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                table,
            )
        else:
            rows = await self.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL", table
            )
        for row in rows:
            await self.execute(f'DROP INDEX "{row["name"]}"')
        try:
            yield
        finally:
            for row in rows:
                await self.execute(row["sql"])


# ------------------------------------------------------------------ generation


class Generator:
    def __init__(self, inserter: Inserter, seed: int = 7) -> None:
        self.db = inserter
        self.random = random.Random(seed)
        self.now = datetime.now(UTC)
        self.today = self.now.date()
        self.password_hash = hash_password(PASSWORD)
        self.slugs = 0

    def name(self) -> str:
        return f"{self.random.choice(FIRST)} {self.random.choice(LAST)}"

    def moment(self, day: date) -> datetime:
        """A time on ``day`` in office hours, with microseconds (as the product's clock gives them)."""
        seconds = self.random.randrange(8 * 3600, 19 * 3600)
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=seconds, microseconds=self.random.randrange(1, 999_999)
        )

    async def practice(self, name: str, *, clinicians: int, administrators: int, charts: int, days: int) -> Practice:
        """A practice with its owner, members, charts (each assigned to one or two clinicians) and no ledger yet."""
        self.slugs += 1
        practice_id = uuid.uuid4()
        slug = f"{name.lower().replace(' ', '-')}-{self.slugs}"
        created = self.moment(self.today - timedelta(days=days + 30))
        kind = PracticeKind.GROUP if clinicians or administrators else PracticeKind.SOLO
        await self.db.insert(
            "practices",
            ("id", "name", "slug", "kind", "trial_started_at", "trial_ends_at", "created_at"),
            [(practice_id, name, slug, kind.value, created, created + timedelta(days=30), created)],
        )
        owner_email = f"owner@{slug}.example.com"
        members = [(uuid.uuid4(), Role.OWNER, owner_email, "erx-lite", [])]
        members += [
            (uuid.uuid4(), Role.CLINICIAN, f"clinician{i}@{slug}.example.com", "therapist-essential", [])
            for i in range(clinicians)
        ]
        members += [
            (uuid.uuid4(), Role.ADMINISTRATOR, f"admin{i}@{slug}.example.com", None, ADMIN_PERMISSIONS)
            for i in range(administrators)
        ]
        await self.db.insert(
            "members",
            (
                "id",
                "practice_id",
                "name",
                "email",
                "password_hash",
                "role",
                "status",
                "permissions",
                "plan_code",
                "trainee_status",
                "created_at",
            ),
            [
                (
                    mid,
                    practice_id,
                    self.name(),
                    email,
                    self.password_hash,
                    role.value,
                    MemberStatus.ACTIVE.value,
                    orjson.dumps(grants).decode(),
                    plan,
                    TraineeStatus.NONE.value,
                    created + timedelta(minutes=i),
                )
                for i, (mid, role, email, plan, grants) in enumerate(members)
            ],
        )
        owner_id = members[0][0]
        billers = [m[0] for m in members if m[1] in (Role.OWNER, Role.CLINICIAN)]
        chart_ids = [uuid.uuid4() for _ in range(charts)]
        chart_rows, assignment_rows, billable = [], [], []
        for chart_id in chart_ids:
            patient = self.name()
            opened = self.moment(self.today - timedelta(days=self.random.randrange(1, days + 1)))
            born = date(self.random.randrange(1940, 2015), self.random.randrange(1, 13), self.random.randrange(1, 29))
            chart_rows.append(
                (chart_id, practice_id, patient, patient.lower(), born, None, None, "ACTIVE", owner_id, opened)
            )
            assigned = self.random.sample(billers, 2 if len(billers) > 1 and self.random.random() < 0.2 else 1)
            for clinician in assigned:
                assignment_rows.append((uuid.uuid4(), chart_id, clinician, opened))
                billable.append((clinician, chart_id))
        await self.db.insert(
            "charts",
            (
                "id",
                "practice_id",
                "patient_name",
                "patient_name_search",
                "date_of_birth",
                "email",
                "phone",
                "status",
                "created_by_id",
                "created_at",
            ),
            chart_rows,
        )
        await self.db.insert("chart_assignments", ("id", "chart_id", "clinician_id", "created_at"), assignment_rows)
        return Practice(
            practice_id, slug, owner_email, [m[0] for m in members if m[1] == Role.CLINICIAN], billable, chart_ids
        )

    async def ledger(
        self, practice: Practice, count: int, *, newest: date, days: int, recorders: Sequence[uuid.UUID] = ()
    ) -> None:
        """``count`` entries spread over the ``days`` up to ``newest``, on the practice's assigned (clinician, chart)
        pairs; the sums per pair are added to ``practice.balances``.

        Rows are built directly in the form the database takes (the bulk of the seeding time is here).
        """
        key = self.db.key
        pairs = [(key(clinician), key(chart)) for clinician, chart in practice.billable]
        sums = [0] * len(pairs)
        recorder_keys = [key(r) for r in recorders]
        practice_key = key(practice.id)
        day_values = [self.db.day(newest - timedelta(days=d)) for d in range(days)]
        rnd = self.random
        services = SERVICES

        def rows():
            for _ in range(count):
                index = rnd.randrange(len(pairs))
                clinician, chart = pairs[index]
                roll = rnd.random()
                description, price = services[rnd.randrange(len(services))]
                if roll < 0.58:
                    kind, delta = "CHARGE", price
                elif roll < 0.93:
                    kind, delta, description = "PAYMENT", -(2500, 4000, price)[rnd.randrange(3)], "Payment"
                elif roll < 0.98:
                    kind, delta, description = "ADJUSTMENT", -rnd.randrange(500, 5000), "Insurance write-off"
                else:
                    kind, delta, description = "REFUND", (2500, 4000)[rnd.randrange(2)], "Refund of overpayment"
                sums[index] += delta
                recorder = (
                    recorder_keys[rnd.randrange(len(recorder_keys))]
                    if recorder_keys and rnd.random() < 0.3
                    else clinician
                )
                day, at = day_values[rnd.randrange(days)]
                created = at(rnd.randrange(8 * 3600, 19 * 3600), rnd.randrange(1, 1_000_000))
                yield (
                    self.db.new_id(),
                    practice_key,
                    chart,
                    clinician,
                    recorder,
                    kind,
                    delta,
                    day,
                    description,
                    None,
                    created,
                )

        await self.db.insert(
            "billing_entries",
            (
                "id",
                "practice_id",
                "chart_id",
                "clinician_id",
                "created_by_id",
                "kind",
                "delta_cents",
                "occurred_on",
                "description",
                "invoice_id",
                "created_at",
            ),
            rows(),
            stored_form=True,
        )
        for (clinician, chart), total in zip(practice.billable, sums, strict=True):
            if total or (clinician, chart) in practice.balances:
                practice.balances[(clinician, chart)] += total
        practice.entries += count

    async def balances(self, practice: Practice) -> None:
        """The practice's running balances, replaced by the sums of every entry seeded for it."""
        await self.db.execute('DELETE FROM "billing_balances" WHERE "practice_id" = $1', practice.id)
        await self.db.insert(
            "billing_balances",
            ("id", "practice_id", "clinician_id", "chart_id", "balance_cents", "updated_at"),
            [
                (uuid.uuid4(), practice.id, clinician, chart, total, self.now)
                for (clinician, chart), total in practice.balances.items()
            ],
        )

    async def api_token(self, practice: Practice, scopes: Sequence[TokenScope]) -> None:
        """A partner API token of the owner (stored as a hash, as the product does)."""
        secret = new_api_token()
        owner = await self.db.execute('SELECT "id" FROM "members" WHERE "email" = $1', practice.owner_email)
        await self.db.insert(
            "api_tokens",
            (
                "id",
                "practice_id",
                "created_by_id",
                "name",
                "token_hash",
                "scopes",
                "created_at",
                "expires_at",
                "last_used_at",
                "revoked_at",
            ),
            [
                (
                    uuid.uuid4(),
                    practice.id,
                    uuid.UUID(str(owner[0]["id"])),
                    "Partner (bench)",
                    hash_secret(secret),
                    orjson.dumps([s.value for s in scopes]).decode(),
                    self.now,
                    self.now + timedelta(days=30),
                    None,
                    None,
                )
            ],
        )
        practice.api_token = secret


# ------------------------------------------------------------------ the data set


async def create_schema(database_url: str) -> None:
    """Create the product's tables and indexes the way a deployment does: its migrations (``groups-api serve``
    then finds nothing left to apply), then open it for the seeding."""
    await migrate_database(database_url)
    await Tortoise.init(config=tortoise_config(database_url))


async def seed(database_url: str, scale: Scale, *, progress=print) -> World:
    """Seed every practice at ``scale``: the growth practice starts at ``scale.growth_from`` entries."""
    async with Inserter(database_url) as db:
        generate = Generator(db)
        for i in range(scale.small_practices):
            clinicians = i % 4  # a quarter solo, the rest small groups
            small = await generate.practice(
                f"Small Practice {i}",
                clinicians=clinicians,
                administrators=1 if clinicians else 0,
                charts=scale.small_charts,
                days=720,
            )
            await generate.ledger(small, scale.small_entries, newest=generate.today - timedelta(days=1), days=720)
            await generate.balances(small)
        group = await generate.practice(
            "Large Group",
            clinicians=scale.group_clinicians,
            administrators=scale.group_administrators,
            charts=scale.group_charts,
            days=1095,
        )
        admins = await db.execute(
            'SELECT "id" FROM "members" WHERE "practice_id" = $1 AND "role" = $2', group.id, Role.ADMINISTRATOR.value
        )
        async with db.indexes_rebuilt("billing_entries"):
            await generate.ledger(
                group,
                scale.group_entries,
                newest=generate.today - timedelta(days=1),
                days=1095,
                recorders=[uuid.UUID(str(row["id"])) for row in admins],
            )
        await generate.balances(group)
        await generate.api_token(group, [TokenScope.READ_BILLING])
        growth = await generate.practice(
            "Growing Group", clinicians=scale.growth_clinicians, administrators=2, charts=scale.growth_charts, days=60
        )
        await generate.ledger(growth, scale.growth_from, newest=generate.today - timedelta(days=1), days=60)
        await generate.balances(growth)
        await db.analyze()
    counts = dict(db.counts)
    progress("  seeded: " + ", ".join(f"{n:,} {table}" for table, n in counts.items()))
    return World(group, growth, counts)


async def grow(database_url: str, world: World, scale: Scale) -> None:
    """Years of older entries for the growth practice, up to ``scale.growth_to``; its balances follow.

    The new entries are older than every existing one, so the screens show the same rows before and after.
    """
    growth = world.growth
    async with Inserter(database_url) as db:
        generate = Generator(db, seed=11)
        async with db.indexes_rebuilt("billing_entries"):
            await generate.ledger(
                growth, scale.growth_to - growth.entries, newest=generate.today - timedelta(days=61), days=5 * 365
            )
        await generate.balances(growth)
        await db.analyze()


async def check_balances(database_url: str, practice: Practice) -> None:
    """Every running balance of the practice equals the sum of its entries (raises otherwise)."""
    async with Inserter(database_url) as db:
        sums = await db.execute(
            'SELECT "clinician_id", "chart_id", SUM("delta_cents") AS "total" FROM "billing_entries" WHERE '
            '"practice_id" = $1 GROUP BY "clinician_id", "chart_id"',
            practice.id,
        )
        kept = await db.execute(
            'SELECT "clinician_id", "chart_id", "balance_cents" AS "total" FROM "billing_balances" WHERE "practice_id" '
            "= $1",
            practice.id,
        )

    def by_pair(rows: list[dict]) -> dict[tuple[str, str], int]:
        return {(str(r["clinician_id"]), str(r["chart_id"])): int(r["total"]) for r in rows if int(r["total"]) != 0}

    if by_pair(sums) != by_pair(kept):
        raise AssertionError(f"billing_balances of {practice.slug} do not match its ledger")
