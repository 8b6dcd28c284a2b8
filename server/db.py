"""Tortoise configuration and schema setup for the configured database; throwaway PostgreSQL databases for the
tests and the benchmark."""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

MODULES = {"models": ["models"]}

POSTGRES_SCHEMES = ("postgres", "postgresql", "asyncpg")


class NoResetConnection(asyncpg.Connection):
    """A pooled asyncpg connection given back to the pool without asyncpg's reset statement.

    On every release asyncpg's pool sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``: one
    more round trip per pool checkout, and a checkout is taken per statement outside a transaction. It undoes session
    state this service never creates: no advisory locks (the audit chain locks a row, inside a transaction), no LISTEN,
    no session-level SET (the one SET is ``SET LOCAL``, resolvers/charts.py, undone when its transaction ends), no
    cursors (Tortoise fetches whole results; a cursor without HOLD closes with its transaction).
    ``tests/test_db.py`` keeps the source free of session state. What the release still does (asyncpg's
    ``Connection._reset``): an open transaction is rolled back and listeners are dropped."""

    def get_reset_query(self) -> str:
        return ""


def _connection(database_url: str) -> str | dict[str, Any]:
    """Tortoise's connection config for ``database_url``: the URL itself, or on asyncpg its expanded form with the
    pool's connection class (Tortoise passes ``connection_class`` from the credentials to asyncpg.create_pool)."""
    from tortoise.backends.base.config_generator import expand_db_url

    if urllib.parse.urlsplit(database_url).scheme not in POSTGRES_SCHEMES:
        return database_url
    config = expand_db_url(database_url)
    config["credentials"]["connection_class"] = NoResetConnection
    return config


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": _connection(database_url)},
        "apps": {"models": {"models": ["models"], "default_connection": "default", "migrations": "migrations"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate_database(database_url: str) -> None:
    """Apply Tortoise's built-in migrations (the migrations/ package) to the database."""
    from tortoise import Tortoise
    from tortoise.migrations.api.migrate import migrate

    try:
        await migrate(config=tortoise_config(database_url))
        await install_postgres_indexes()
    finally:
        await Tortoise.close_connections()


async def install_postgres_indexes() -> None:
    """Indexes Tortoise cannot declare portably, on PostgreSQL only; idempotent. Runs after migrations and after
    schema generation: the trigram index behind chart search (models.charts.POSTGRES_SEARCH_INDEX)."""
    from tortoise import connections

    from models.charts import POSTGRES_SEARCH_INDEX

    connection = connections.get("default")
    if connection.capabilities.dialect != "postgres":
        return
    _, rows = await connection.execute_query("SELECT to_regclass('charts') AS charts")
    if rows[0]["charts"] is None:
        return  # no charts table yet (migrations not written): nothing to index
    for statement in POSTGRES_SEARCH_INDEX:
        await connection.execute_script(statement)


def database_url_with_name(url: str, name: str) -> str:
    """``url`` naming database ``name`` instead of its own (or none): scheme, credentials, host, port and query kept."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def postgres_admin_dsn(url: str) -> str:
    """asyncpg's DSN for creating and dropping databases on ``url``'s server: its database, or "postgres" when it
    names none. asyncpg wants the postgresql:// scheme, and would send Tortoise's query options (?minsize=) to the
    server as settings, so the query is left out."""
    parts = urllib.parse.urlsplit(url)
    database = parts.path.lstrip("/") or "postgres"
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql", path=f"/{database}", query=""))


@contextlib.asynccontextmanager
async def throwaway_postgres_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A new, empty database ``{prefix}_<random>`` on ``server_url``'s PostgreSQL server, for tests and benchmarks;
    yields its URL (``server_url``'s scheme and query) and drops it afterwards, connections and all (WITH (FORCE))."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    identifier = '"' + name.replace('"', '""') + '"'
    admin = postgres_admin_dsn(server_url)

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    await execute(f"CREATE DATABASE {identifier}")
    try:
        yield database_url_with_name(server_url, name)
    finally:
        await execute(f"DROP DATABASE IF EXISTS {identifier} WITH (FORCE)")


# For Tortoise's own CLI (`tortoise makemigrations`), configured in pyproject.toml [tool.tortoise].
TORTOISE_ORM = tortoise_config("sqlite://groups-api.sqlite3")
