"""The throwaway PostgreSQL databases of the tests and the benchmark (server.db.throwaway_postgres_database)."""

from __future__ import annotations

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
