"""The committed migrations build the same database the models describe, and a migrated database serves."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector

from models import Member
from models.enums import Role
from server.app import create_app
from server.db import migrate_database, throwaway_postgres_database, tortoise_config
from tests.conftest import PASSWORD, PG_URL


async def test_models_and_migrations_agree():
    """Fails when a model changed without a migration: run `.venv/bin/tortoise makemigrations` and commit it."""
    config = tortoise_config("sqlite://:memory:")
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
    assert writers == [], "models changed without a migration: run `.venv/bin/tortoise makemigrations`"


@contextlib.asynccontextmanager
async def _fresh_database_url(tmp_path) -> AsyncIterator[str]:
    if not PG_URL:
        yield f"sqlite://{tmp_path / 'migrated.sqlite3'}"
        return
    async with throwaway_postgres_database(PG_URL, "groups_api_migrate") as url:
        yield url


async def test_a_migrated_database_serves_every_area(tmp_path, settings):
    async with _fresh_database_url(tmp_path) as url:
        await migrate_database(url)
        await migrate_database(url)  # idempotent: a second run applies nothing and fails nothing
        app = create_app(settings.with_(database_url=url))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                signed = (
                    await client.post(
                        "/graphql",
                        json={
                            "query": f"""mutation {{ signUp(input: {{practiceName: "Migrated",
                    name: "Mo", email: "mo@example.com", password: "{PASSWORD}", planCode: "erx-lite"}}) {{ accessToken
                    member {{ id }} }} }}"""
                        },
                    )
                ).json()
                token = signed["data"]["signUp"]["accessToken"]
                owner_id = signed["data"]["signUp"]["member"]["id"]
                headers = {"Authorization": f"Bearer {token}"}
                chart = (
                    await client.post(
                        "/graphql",
                        headers=headers,
                        json={
                            "query": """mutation {
                    createChart(input: {patientName: "Pat Patient"}) { chart { id } } }"""
                        },
                    )
                ).json()
                chart_id = chart["data"]["createChart"]["chart"]["id"]
                charge = (
                    await client.post(
                        "/graphql",
                        headers=headers,
                        json={
                            "query": """mutation($c: ID!, $m: ID!) {
                    recordCharge(input: {chartId: $c, clinicianId: $m, amount: "120.00", occurredOn: "2026-01-05",
                    description: "Intake"}) { balance { amount } } }""",
                            "variables": {"c": chart_id, "m": owner_id},
                        },
                    )
                ).json()
                assert charge["data"]["recordCharge"]["balance"]["amount"] == "120.00", charge
                read = (
                    await client.post(
                        "/graphql",
                        headers=headers,
                        json={
                            "query": """{ practice {
                    charts { totalCount } subscription { status } auditLog(first: 5) { edges { node { action } } }
                    billing { currentBalance { amount } } } }"""
                        },
                    )
                ).json()
                assert not read.get("errors"), read
                assert read["data"]["practice"]["charts"]["totalCount"] == 1
                assert read["data"]["practice"]["billing"]["currentBalance"]["amount"] == "120.00"
            # The composite unique constraints exist in a migrated database (they guard emails, invoice lines, periods).
            owner = await Member.get(email="mo@example.com")
            duplicate = {
                "practice_id": owner.practice_id,
                "name": "Twin",
                "email": "mo@example.com",
                "password_hash": "x",
                "role": Role.CLINICIAN,
                "created_at": owner.created_at,
            }
            with pytest.raises(IntegrityError):
                await Member.create(id=uuid.uuid4(), **duplicate)
