"""The bench's server app: the product's app exactly as ``groups-api serve`` builds it, plus what only the bench needs.

- the floor (bench/floor.py), served by the same process as /graphql;
- SQL statements counted in this process, by wrapping the execute methods of Tortoise's database clients
  (nothing in the product knows about it);
- ``GET /bench/stats``: this process's counters (SQL statements, CPU seconds, peak RSS), read between phases.

bench/serve.py runs ``groups-api serve`` with this app in place of the product's ``server.asgi``.
"""

from __future__ import annotations

import functools
import os
import resource

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench import floor
from server import asgi

EXECUTE_METHODS = ("execute_insert", "execute_many", "execute_query", "execute_query_dict", "execute_script")


class Statements:
    """SQL statements sent to the database by this process (each ``executemany`` batch counts once)."""

    count = 0


def count_statements() -> None:
    """Wrap the execute methods of every Tortoise client class that defines them (pool and transaction clients)."""
    from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
    from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionWrapper

    for cls in (SqliteClient, SqliteTransactionWrapper, AsyncpgDBClient, TransactionWrapper):
        for name in EXECUTE_METHODS:
            method = vars(cls).get(name)
            if method is not None and not getattr(method, "counted", False):
                setattr(cls, name, _counted(method))


def _counted(method):
    @functools.wraps(method)
    async def counted(*args, **kwargs):
        Statements.count += 1
        return await method(*args, **kwargs)

    counted.counted = True
    return counted


def peak_rss_kb() -> int:
    """VmHWM: the most resident memory this process has held (KiB)."""
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def stats(request: Request) -> JSONResponse:
    times = os.times()
    return JSONResponse(
        {
            "pid": os.getpid(),
            "sql": Statements.count,
            "cpu_seconds": times.user + times.system,
            "peak_rss_kb": peak_rss_kb(),
        }
    )


def app_from_environment() -> Starlette:
    count_statements()
    app = asgi.app_from_environment()
    app.router.routes[:0] = [*floor.routes(), Route("/bench/stats", stats)]
    return app
