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
    finally:
        await Tortoise.close_connections()


# For Tortoise's own CLI (`tortoise makemigrations`), configured in pyproject.toml [tool.tortoise].
TORTOISE_ORM = tortoise_config("sqlite://groups-api.sqlite3")
