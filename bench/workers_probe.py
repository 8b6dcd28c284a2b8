"""``python -m bench.workers_probe``: why 2 ``serve`` workers serve one busy practice slower than 1 (PostgreSQL).

Seeds a throwaway PostgreSQL database (``--scale quick|default``), then for 1 and 2 workers (budgets in Redis, as
the bench's workers comparison) runs each screen at 8 connections while sampling, every 20 ms:
PostgreSQL's backends of the database (``pg_stat_activity``: active, idle in transaction, waiting on a lock and
on which), the CPU of each worker, the machine's idle CPU, and how many of the load generator's connections each
worker holds. Prints one line per (workers, screen). Evidence for bench/README.md, not a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
import threading
from pathlib import Path
from typing import Self

import asyncpg

from bench import load, screens, seed
from bench.__main__ import DEFAULT_REDIS, Screen, _flush_redis, log_in
from bench.process import Server, _cpu_seconds
from server.db import postgres_admin_dsn, throwaway_postgres_database


def _idle_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return fields[3] + fields[4], sum(fields)


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


def _connections_per_worker(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections on the server's port, by the worker holding them."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if int(parts[1].split(":")[1], 16) == port and parts[3] == "01":
            inodes.add(parts[9])
    return {pid: len(_socket_inodes(pid) & inodes) for pid in pids}


class Sampler:
    """pg_stat_activity of one database every ``interval`` s, in a thread with its own loop and connection."""

    def __init__(self, dsn: str, database: str, interval: float = 0.02) -> None:
        self.dsn, self.database, self.interval = dsn, database, interval
        self.samples = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.waits: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                rows = await connection.fetch(
                    "SELECT state, wait_event_type, wait_event, left(query, 60) AS query FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    self.database,
                )
                self.samples += 1
                for row in rows:
                    self.counts[row["state"] or "?"] += 1
                    if row["state"] != "idle" and row["wait_event_type"]:
                        self.waits[f"{row['wait_event_type']}:{row['wait_event']} ({row['query']!r})"] += 1
                await asyncio.sleep(self.interval)
        finally:
            await connection.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def probe(url: str, world: seed.World, workers: int, seconds: float, redis_url: str) -> None:
    await _flush_redis(redis_url)
    with tempfile.TemporaryDirectory(prefix="groups-api-probe-") as tmp:
        server = Server(url, workers=workers, log_path=Path(tmp) / "server.log", redis_url=redis_url)
        try:
            session = log_in(server, world.group)
            database = url.rsplit("/", 1)[1].split("?")[0]
            for title, query in (
                ("billing history", screens.BILLING_HISTORY),
                ("chart list", screens.CHART_LIST),
                ("dashboard", screens.DASHBOARD),
            ):
                request = Screen(title, query).request(session)
                await load.run(server.port, request, connections=8, seconds=2, max_requests=10**6)  # warm-up
                pids = server.pids()
                cpu = {pid: _cpu_seconds(pid) for pid in pids}
                idle0, total0 = _idle_jiffies()
                spread: list[dict[int, int]] = []
                stop = threading.Event()

                def watch_connections(
                    pids: list[int] = pids, stop: threading.Event = stop, spread: list = spread
                ) -> None:
                    while not stop.wait(0.5):
                        spread.append(_connections_per_worker(pids, server.port))

                watcher = threading.Thread(target=watch_connections, daemon=True)
                watcher.start()
                with Sampler(postgres_admin_dsn(url), database) as sampler:
                    run = await load.run(server.port, request, connections=8, seconds=seconds, max_requests=10**6)
                stop.set()
                watcher.join()
                idle1, total1 = _idle_jiffies()
                shares = [round((_cpu_seconds(pid) - cpu[pid]) / seconds, 2) for pid in pids]
                held = spread[len(spread) // 2] if spread else {}
                n = max(sampler.samples, 1)
                states = {state: round(count / n, 2) for state, count in sampler.counts.items()}
                idle = 100 * (idle1 - idle0) / max(total1 - total0, 1)
                print(
                    f"{workers} worker(s)  {title:16s} {run.per_second:6.0f} req/s  failed {run.failed}  "
                    f"worker CPU (cores) {shares}  machine idle {idle:.0f}%  "
                    f"wrk connections per worker {list(held.values())}"
                )
                print(f"    backends per sample {states}  ({sampler.samples} samples)")
                for wait, count in sampler.waits.most_common(6):
                    print(f"    waiting {count / n:5.2f} per sample  {wait}")
        finally:
            server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--scale", choices=("quick", "default"), default="quick")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    scale = seed.QUICK if args.scale == "quick" else seed.Scale()
    async with throwaway_postgres_database(args.postgres_url, "groups_api_probe") as url:
        await seed.create_schema(url)
        world = await seed.seed(url, scale, progress=lambda message: None)
        from tortoise import Tortoise

        await Tortoise.close_connections()
        for workers in (int(w) for w in args.workers.split(",")):
            await probe(url, world, workers, args.seconds, args.redis_url)
            await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
