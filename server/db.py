"""Tortoise configuration and schema setup for the configured database."""

from __future__ import annotations

from typing import Any

MODULES = {"models": ["models"]}


def tortoise_config(database_url: str) -> dict[str, Any]:
    return {
        "connections": {"default": database_url},
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


# For Tortoise's own CLI (`tortoise makemigrations`), configured in pyproject.toml [tool.tortoise].
TORTOISE_ORM = tortoise_config("sqlite://groups-api.sqlite3")
