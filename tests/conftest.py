"""Test fixtures: the real ASGI app over HTTP (httpx), on a fresh SQLite database per test by default, or on
PostgreSQL when GROUPS_API_TEST_DATABASE_URL is set (one throwaway database per run, emptied after each test)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from auth import passwords
from resolvers.clock import Clock
from server.app import create_app
from server.db import throwaway_postgres_database
from server.settings import Settings

passwords.use_cheapest_parameters_for_tests()

PG_URL = os.environ.get("GROUPS_API_TEST_DATABASE_URL")
PASSWORD = "correct horse battery"


def postgres_only(reason: str = "needs PostgreSQL row locks and real concurrency"):
    return pytest.mark.skipif(not PG_URL, reason=f"{reason}: set GROUPS_API_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def database_url() -> Any:
    """A throwaway database for this run: a PostgreSQL database created and dropped here, or SQLite in memory."""
    if not PG_URL:
        yield "sqlite://:memory:"
        return
    # One loop for creating and dropping: asyncio.run would close the suspended context manager (and drop the
    # database) as soon as the creating run ends.
    database = throwaway_postgres_database(PG_URL, "groups_api_test")
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        url = runner.run(database.__aenter__())
        try:
            yield url
        finally:
            runner.run(database.__aexit__(None, None, None))


class TestClock(Clock):
    """The real clock plus an offset that tests move forward."""

    __test__ = False

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Many tests sign up more practices than the hourly sign-up limit (10) from the one test client address; the
    # throttle's own tests (tests/test_security_inputs.py) set the real default back.
    return Settings(
        env="test",
        database_url=database_url,
        jwt_secret="test-secret-" + "x" * 40,
        public_url="http://test",
        app_url="http://test",
        sign_ups_per_hour=10_000,
    )


class Api:
    """A GraphQL client over HTTP with the helpers the tests share."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        """The data of a response that must have no errors."""
        body = await self.post(query, variables, token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict | None = None, token: str | None = None) -> tuple[str, dict]:
        """(code, whole body) of a response that must have an error."""
        body = await self.post(query, variables, token)
        assert body.get("errors"), body
        return body["errors"][0]["extensions"]["code"], body

    async def sign_up(
        self,
        practice: str = "Calm Minds",
        email: str = "owner@example.com",
        plan: str = "erx-lite",
        name: str = "Olive Owner",
    ) -> dict:
        data = await self.ok(
            """mutation($input: SignUpInput!) { signUp(input: $input) {
                 accessToken refreshToken accessTokenExpiresAt member { id name role } } }""",
            {"input": {"practiceName": practice, "name": name, "email": email, "password": PASSWORD, "planCode": plan}},
        )
        return data["signUp"]

    async def log_in(self, slug: str, email: str, password: str = PASSWORD) -> dict:
        return await self.post(
            "mutation($i: LogInInput!) { logIn(input: $i) { accessToken refreshToken member { id role } } }",
            {"i": {"practiceSlug": slug, "email": email, "password": password}},
        )


@pytest.fixture
async def app(settings: Settings, clock: TestClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock, generate_schemas=True)
    async with application.router.lifespan_context(application):
        try:
            yield application
        finally:
            if PG_URL:
                from tortoise.contrib.test import truncate_all_models

                await truncate_all_models()


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)
