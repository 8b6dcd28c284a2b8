"""The throwaway PostgreSQL databases of the tests and the benchmark (server.db.throwaway_postgres_database)."""

from __future__ import annotations

import pathlib
import re
import urllib.parse

import asyncpg
import pytest

from server.db import database_url_with_name, postgres_admin_dsn, throwaway_postgres_database
from tests.conftest import PG_URL, postgres_only


@pytest.mark.parametrize(
    ("url", "renamed", "admin"),
    [
        (
            "postgres://postgres@127.0.0.1:5432",
            "postgres://postgres@127.0.0.1:5432/fresh",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/",
            "postgres://postgres@127.0.0.1:5432/fresh",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://postgres@127.0.0.1:5432/fresh",
            "postgresql://postgres@127.0.0.1:5432/test",
        ),
        (
            "postgres://u:p%40ss@db.example:6543/test?minsize=1&maxsize=5",
            "postgres://u:p%40ss@db.example:6543/fresh?minsize=1&maxsize=5",
            "postgresql://u:p%40ss@db.example:6543/test",
        ),
        ("postgresql://u@[::1]:5432/test", "postgresql://u@[::1]:5432/fresh", "postgresql://u@[::1]:5432/test"),
    ],
)
def test_urls_keep_user_host_port_and_query(url, renamed, admin):
    """The new database replaces only the path; the admin DSN drops the query, which asyncpg would send as settings."""
    assert database_url_with_name(url, "fresh") == renamed
    assert postgres_admin_dsn(url) == admin


async def _exists(admin: str, name: str) -> bool:
    connection = await asyncpg.connect(admin)
    try:
        return await connection.fetchval("SELECT exists(SELECT 1 FROM pg_database WHERE datname = $1)", name)
    finally:
        await connection.close()


@postgres_only("creates and drops a PostgreSQL database")
async def test_the_database_exists_inside_the_block_only():
    assert PG_URL
    admin = postgres_admin_dsn(PG_URL)
    async with throwaway_postgres_database(PG_URL, "groups_api_dbtest") as url:
        parts, given = urllib.parse.urlsplit(url), urllib.parse.urlsplit(PG_URL)
        name = parts.path.removeprefix("/")
        assert name.startswith("groups_api_dbtest_")
        assert (parts.scheme, parts.netloc, parts.query) == (given.scheme, given.netloc, given.query)
        assert await _exists(admin, name)
        # Still connected when the block ends: the drop is forced.
        inside = await asyncpg.connect(postgres_admin_dsn(url))
        assert await inside.fetchval("SELECT current_database()") == name
    inside.terminate()
    assert not await _exists(admin, name)


def test_postgres_pools_release_connections_without_a_reset_statement():
    """On PostgreSQL the pool's connections skip asyncpg's reset round trip (server.db.NoResetConnection); other
    databases keep their URL as it is."""
    from server.db import NoResetConnection, tortoise_config

    for url in ("postgres://u@h:5432/d?maxsize=9", "postgresql://u@h/d", "asyncpg://u@h/d"):
        connection = tortoise_config(url)["connections"]["default"]
        assert connection["engine"] == "tortoise.backends.asyncpg"
        assert connection["credentials"]["connection_class"] is NoResetConnection
        assert connection["credentials"]["database"] == "d"
    assert tortoise_config("postgres://u@h:5432/d?maxsize=9")["connections"]["default"]["credentials"]["maxsize"] == "9"
    assert tortoise_config("sqlite://:memory:")["connections"]["default"] == "sqlite://:memory:"


# Session state that would outlive a request on a pooled connection once asyncpg's reset statement is skipped:
# session-level SET / set_config(..., false), LISTEN, session advisory locks, cursors WITH HOLD, temporary tables.
# SQL keywords in capitals, as the project writes its SQL.
SESSION_STATE = re.compile(
    r"""["']\s*(SET\s+(?!LOCAL\b)|LISTEN\b)|set_config\([^)]*false|add_listener|pg_(try_)?advisory_lock|WITH\s+HOLD"""
    r"""|CREATE\s+TEMP"""
)


def test_no_session_state_in_the_source():
    """What NoResetConnection relies on: nothing the service runs leaves session state on a pooled connection."""
    root = pathlib.Path(__file__).resolve().parent.parent
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for package in ("auth", "models", "resolvers", "schema", "server")
        for path in sorted((root / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SESSION_STATE.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []


@postgres_only("asyncpg's pool on PostgreSQL")
async def test_a_released_connection_keeps_no_transaction_or_local_setting():
    """What asyncpg still does on release without the reset statement (Connection._reset): an open transaction is
    rolled back; and a SET LOCAL ends with its transaction."""
    from server.db import NoResetConnection

    assert PG_URL
    pool = await asyncpg.create_pool(
        postgres_admin_dsn(PG_URL), min_size=1, max_size=1, connection_class=NoResetConnection
    )
    try:
        async with pool.acquire() as connection:
            default = await connection.fetchval("SHOW plan_cache_mode")
            async with connection.transaction():
                await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                assert await connection.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
            await connection.execute("BEGIN")
            await connection.execute("SET LOCAL statement_timeout = 1234")
        async with pool.acquire() as connection:
            assert await connection.fetchval("SHOW plan_cache_mode") == default
            assert await connection.fetchval("SHOW statement_timeout") != "1234ms"
            assert not connection.is_in_transaction()
    finally:
        await pool.close()
