"""``python -m bench``: seed a data set, serve it with ``groups-api serve``, replay the screens, print a table.

    python -m bench                 # SQLite and PostgreSQL, default scale (see bench/README.md for how to read it)
    python -m bench --quick         # every screen at a small scale on SQLite, in under a minute
    python -m bench --database postgres --seconds 8

For each database: a throwaway database (a temporary SQLite file, or a PostgreSQL database created and dropped
on --postgres-url), seeded in bulk (bench/seed.py); the server as a child process on 127.0.0.1 (bench/serve.py:
``groups-api serve`` with the floor routes and statement counting of bench/server.py); each screen loaded at a
fixed number of connections, in bounded runs (count and time), the three 50-row screens alternating with their
floors (bench/floor.py); then the growth practice at two ledger sizes and, on PostgreSQL, 1 against 2 workers.
The last line is always ``min floor ratio: X.XX``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from tortoise import Tortoise

from bench import load, screens, seed
from bench.process import Server
from server.db import throwaway_postgres_database

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
BALANCE_CLINICIANS = screens.BALANCE_CLINICIANS
STATEMENT_SAMPLES = 10


@dataclass(frozen=True)
class Options:
    scale: seed.Scale
    databases: tuple[str, ...]
    postgres_url: str
    redis_url: str
    connections: int
    seconds: float
    rounds: int
    max_requests: int
    growth: bool
    workers: bool


@dataclass
class Screen:
    title: str
    query: str
    variables: dict = field(default_factory=dict)
    token: bool = False  # through the partner API token instead of the owner's session
    floor: str | None = None

    def request(self, access: str) -> load.Request:
        body = orjson.dumps({"query": self.query, "variables": self.variables, "operationName": None})
        return load.Request("/graphql", body, {"Content-Type": "application/json", "Authorization": f"Bearer {access}"})


@dataclass
class Measured:
    run: load.Run
    cpu_ms: float
    statements: float | None = None


@dataclass
class Line:
    title: str
    graphql: Measured
    floor: Measured | None = None

    @property
    def ratio(self) -> float | None:
        if self.floor is None or not self.floor.run.per_second:
            return None
        return self.graphql.run.per_second / self.floor.run.per_second


@dataclass
class Report:
    database: str
    lines: list[Line] = field(default_factory=list)
    growth: list[tuple[str, Measured, Measured]] = field(default_factory=list)
    workers: list[tuple[str, Measured, Measured]] = field(default_factory=list)
    peak_rss_mb: dict[str, list[float]] = field(default_factory=dict)
    seed_seconds: float = 0.0
    grow_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ one database


@contextlib.asynccontextmanager
async def throwaway_database(kind: str, options: Options, tmp: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite://{tmp / 'bench.sqlite3'}"
        return
    async with throwaway_postgres_database(options.postgres_url, "groups_api_bench") as url:
        yield url


async def bench_database(kind: str, options: Options) -> Report:
    report = Report("SQLite" if kind == "sqlite" else "PostgreSQL")
    with tempfile.TemporaryDirectory(prefix="groups-api-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with throwaway_database(kind, options, tmp) as url:
            progress(f"{report.database}: seeding {url.split('@')[-1]}")
            started = time.perf_counter()
            await seed.create_schema(url)
            try:
                world = await seed.seed(url, options.scale, progress=progress)
                await seed.check_balances(url, world.group)
                report.seed_seconds, report.counts = time.perf_counter() - started, world.counts
                server = Server(url, workers=1, log_path=tmp / "server.log")
                try:
                    await screens_of_group(server, world, options, report)
                    if options.growth:
                        await growth_of_ledger(server, url, world, options, report)
                    report.peak_rss_mb["1 worker"] = _mb(server.usage().peak_rss_kb)
                finally:
                    server.stop()
                if kind == "postgres" and options.workers:
                    await worker_scaling(url, world, options, report, tmp)
            finally:
                await Tortoise.close_connections()
    return report


def _mb(peaks: dict[int, int]) -> list[float]:
    return [kb / 1024 for kb in peaks.values()]


def log_in(server: Server, practice: seed.Practice) -> str:
    response = server.http.post(
        "/graphql",
        json={
            "query": "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
            "variables": {
                "i": {"practiceSlug": practice.slug, "email": practice.owner_email, "password": seed.PASSWORD}
            },
        },
    )
    return response.json()["data"]["logIn"]["accessToken"]


def group_screens(world: seed.World) -> list[Screen]:
    clinician, chart = world.group.payment_target()
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    return [
        Screen("dashboard", screens.DASHBOARD, floor="/floor/dashboard"),
        Screen("chart list", screens.CHART_LIST, floor="/floor/charts"),
        Screen("billing history", screens.BILLING_HISTORY, floor="/floor/history"),
        Screen("billing history (API token)", screens.BILLING_HISTORY, token=True),
        balance_screen(world.group),
        Screen("recordPayment", screens.RECORD_PAYMENT, screens.payment_variables(clinician, chart, today)),
    ]


def balance_screen(practice: seed.Practice) -> Screen:
    clinicians = practice.clinician_gids(BALANCE_CLINICIANS)
    return Screen(
        f"{len(clinicians)} clinician balances",
        screens.clinician_balances(len(clinicians)),
        screens.clinician_balance_variables(clinicians),
    )


def check_answers(server: Server, screen: Screen, request: load.Request) -> None:
    """The screen answers without errors, and exactly as its floor does."""
    answer = server.http.post(request.path, content=request.body, headers=request.headers).json()
    if answer.get("errors"):
        raise RuntimeError(f"{screen.title}: {answer['errors']}")
    if screen.floor is not None:
        floor = server.http.post(screen.floor, headers=request.headers).json()
        if floor != answer:
            raise RuntimeError(f"{screen.title}: the floor's JSON differs from the GraphQL response")


def statements_per_request(server: Server, request: load.Request) -> float:
    """SQL statements of one request, counted in the server over a few requests sent one at a time (once the
    requests of the load run still in the server have finished: the count has stopped moving)."""
    before = server.statements()
    for _ in range(40):
        time.sleep(0.05)
        before, previous = server.statements(), before
        if before == previous:
            break
    for _ in range(STATEMENT_SAMPLES):
        server.http.post(request.path, content=request.body, headers=request.headers)
    return (server.statements() - before) / STATEMENT_SAMPLES


async def measure(server: Server, request: load.Request, options: Options, *, seconds: float | None = None) -> Measured:
    before = server.usage().cpu_seconds
    run = await load.run(
        server.port,
        request,
        connections=options.connections,
        seconds=seconds or options.seconds,
        max_requests=options.max_requests,
    )
    cpu = server.usage().cpu_seconds - before
    if run.failed:
        raise RuntimeError(f"{run.failed} of {run.requests} requests to {request.path} failed")
    return Measured(run, cpu * 1000 / run.requests if run.requests else 0.0)


def _combined(parts: list[Measured]) -> Measured:
    run = load.combine([p.run for p in parts])
    cpu = sum(p.cpu_ms * p.run.requests for p in parts) / run.requests if run.requests else 0.0
    return Measured(run, cpu)


async def measure_screen(
    server: Server, screen: Screen, request: load.Request, options: Options, *, sql: bool = True
) -> Line:
    """A screen over ``rounds`` runs; with a floor, the two alternate run by run (after a warm-up of each)."""
    floor_request = load.Request(screen.floor, b"{}", request.headers) if screen.floor else None
    for warm in filter(None, (request, floor_request)):
        await measure(server, warm, options, seconds=max(1.0, options.seconds / 4))
    graphql, floor = [], []
    for _ in range(options.rounds):
        graphql.append(await measure(server, request, options))
        if floor_request is not None:
            floor.append(await measure(server, floor_request, options))
    line = Line(screen.title, _combined(graphql), _combined(floor) if floor else None)
    if sql:
        line.graphql.statements = statements_per_request(server, request)
        if floor_request is not None:
            line.floor.statements = statements_per_request(server, floor_request)
    return line


async def screens_of_group(server: Server, world: seed.World, options: Options, report: Report) -> None:
    session = log_in(server, world.group)
    for screen in group_screens(world):
        request = screen.request(world.group.api_token if screen.token else session)
        check_answers(server, screen, request)
        progress(f"  {screen.title}")
        report.lines.append(await measure_screen(server, screen, request, options))


async def growth_of_ledger(server: Server, url: str, world: seed.World, options: Options, report: Report) -> None:
    """History and balances of the growth practice at ``growth_from`` entries, then at ``growth_to``."""
    practice = world.growth
    chosen = [Screen("billing history", screens.BILLING_HISTORY), balance_screen(practice)]

    async def measure_all() -> list[Measured]:
        session = log_in(server, practice)
        results = []
        for screen in chosen:
            request = screen.request(session)
            check_answers(server, screen, request)
            results.append((await measure_screen(server, screen, request, options, sql=False)).graphql)
        return results

    progress(f"  growth: {practice.entries:,} entries")
    small = await measure_all()
    started = time.perf_counter()
    await seed.grow(url, world, options.scale)
    await seed.check_balances(url, practice)
    report.grow_seconds = time.perf_counter() - started
    progress(f"  growth: {practice.entries:,} entries")
    large = await measure_all()
    report.growth = [(s.title, a, b) for s, a, b in zip(chosen, small, large, strict=True)]


async def worker_scaling(url: str, world: seed.World, options: Options, report: Report, tmp: Path) -> None:
    """The three 50-row screens at 1 and at 2 workers, budgets in Redis for both (as a multi-process deployment)."""
    await _flush_redis(options.redis_url)
    results: dict[int, list[Measured]] = {}
    for workers in (1, 2):
        progress(f"  {workers} worker(s), budgets in Redis")
        server = Server(url, workers=workers, log_path=tmp / f"server-{workers}.log", redis_url=options.redis_url)
        try:
            session = log_in(server, world.group)
            results[workers] = []
            for screen in group_screens(world)[:3]:
                request = screen.request(session)
                check_answers(server, screen, request)
                results[workers].append((await measure_screen(server, screen, request, options, sql=False)).graphql)
            report.peak_rss_mb[f"{workers} workers, Redis"] = _mb(server.usage().peak_rss_kb)
        finally:
            server.stop()
    await _flush_redis(options.redis_url)
    report.workers = [(s.title, a, b) for s, a, b in zip(group_screens(world)[:3], results[1], results[2], strict=True)]


async def _flush_redis(url: str) -> None:
    """The bench's Redis database holds only the bench's budgets: emptied before and after."""
    import redis.asyncio as redis

    client = redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


# ------------------------------------------------------------------ the table


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [_row(header, widths), _row(["-" * w for w in widths], widths), *(_row(r, widths) for r in rows)]


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(report: Report, options: Options) -> list[str]:
    out = [
        "",
        (
            f"## {report.database}: 1 worker, {options.connections} connections ({load.generator_name()}), "
            f"{options.rounds} x {options.seconds:g} s per screen, alternating with the floor"
        ),
        f"seeded in {report.seed_seconds:.0f} s: " + ", ".join(f"{n:,} {t}" for t, n in report.counts.items()),
        "",
    ]
    rows = []
    for line in report.lines:
        g, f = line.graphql, line.floor
        rows.append(
            [
                line.title,
                _f(g.run.per_second, 0),
                _f(g.run.p50_ms),
                _f(g.run.p99_ms),
                _f(g.statements),
                _f(g.cpu_ms, 2),
                _f(f.run.per_second, 0) if f else "-",
                _f(f.cpu_ms, 2) if f else "-",
                _f(line.ratio, 2),
            ]
        )
    out += _table(
        ["screen", "req/s", "p50 ms", "p99 ms", "SQL/req", "CPU ms/req", "floor req/s", "floor CPU ms", "ratio"], rows
    )
    if report.growth:
        out += [
            "",
            (
                f"growth: one practice's ledger at {options.scale.growth_from:,} and {options.scale.growth_to:,} "
                f"entries (grown in {report.grow_seconds:.0f} s)"
            ),
            "",
        ]
        small, large = f"{options.scale.growth_from // 1000:,}k", _size(options.scale.growth_to)
        out += _table(
            ["screen", f"{small} req/s", f"{small} p50 ms", f"{large} req/s", f"{large} p50 ms", "p50 ratio"],
            [
                [
                    t,
                    _f(a.run.per_second, 0),
                    _f(a.run.p50_ms),
                    _f(b.run.per_second, 0),
                    _f(b.run.p50_ms),
                    _f(b.run.p50_ms / a.run.p50_ms if a.run.p50_ms else None, 2),
                ]
                for t, a, b in report.growth
            ],
        )
    if report.workers:
        out += ["", "workers: the same screens at 1 and 2 workers, budgets in Redis", ""]
        out += _table(
            ["screen", "1 worker req/s", "p50 ms", "2 workers req/s", "p50 ms", "x"],
            [
                [
                    t,
                    _f(a.run.per_second, 0),
                    _f(a.run.p50_ms),
                    _f(b.run.per_second, 0),
                    _f(b.run.p50_ms),
                    _f(b.run.per_second / a.run.per_second if a.run.per_second else None, 2),
                ]
                for t, a, b in report.workers
            ],
        )
    out += [
        "",
        "peak RSS per server process: "
        + "; ".join(
            f"{label}: {', '.join(f'{mb:.0f} MB' for mb in values)}" for label, values in report.peak_rss_mb.items()
        ),
    ]
    return out


def _size(n: int) -> str:
    return f"{n // 1_000_000:,}M" if n % 1_000_000 == 0 else f"{n // 1000:,}k"


# ------------------------------------------------------------------ main


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="every screen at a small scale on SQLite, in under a minute"
    )
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), help="default: both (--quick: sqlite)")
    parser.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES, help="server where a throwaway database is created and dropped"
    )
    parser.add_argument(
        "--redis-url", default=DEFAULT_REDIS, help="Redis database for the budgets of the workers comparison (emptied)"
    )
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--seconds", type=float, help="length of one run (default 4; --quick 1)")
    parser.add_argument("--rounds", type=int, help="runs per screen, alternating with the floor (default 3; --quick 1)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="upper bound of requests per run")
    parser.add_argument("--no-growth", action="store_true", help="skip the 10k-versus-1M ledger comparison")
    parser.add_argument("--no-workers", action="store_true", help="skip the 1-versus-2 workers comparison (PostgreSQL)")
    args = parser.parse_args(argv)
    database = args.database or ("sqlite" if args.quick else "both")
    return Options(
        scale=seed.QUICK if args.quick else seed.Scale(),
        databases=("sqlite", "postgres") if database == "both" else (database,),
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
        connections=args.connections,
        seconds=args.seconds or (1.0 if args.quick else 4.0),
        rounds=args.rounds or (1 if args.quick else 3),
        max_requests=args.max_requests,
        growth=not args.no_growth,
        workers=not (args.no_workers or args.quick),
    )


def min_floor_ratio(reports: list[Report]) -> float:
    ratios = [line.ratio for report in reports for line in report.lines if line.ratio is not None]
    return min(ratios) if ratios else 0.0


def main(argv: list[str] | None = None, *, write: Callable[[str], None] = print) -> int:
    options = parse(argv)
    started = time.perf_counter()
    reports = [asyncio.run(bench_database(kind, options)) for kind in options.databases]
    write(
        f"# groups-api bench, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
        f"{_cores()} cores, {time.perf_counter() - started:.0f} s"
    )
    for report in reports:
        for line in render(report, options):
            write(line)
    write("")
    write(f"min floor ratio: {min_floor_ratio(reports):.2f}")
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
