"""Settings: start-up checks, the development secret, the clock offset; what production turns off."""

from __future__ import annotations

import logging
import stat
from datetime import timedelta

import httpx
import pytest

from server.app import create_app
from server.settings import ConfigurationError, Settings, parse_offset

SECRET_32 = "s" * 32


# ------------------------------------------------------------------ production


@pytest.mark.parametrize("secret", [None, "", "s" * 31, "é" * 15])
def test_production_refuses_to_start_without_a_32_byte_secret(secret):
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Settings(env="production", database_url="postgres://db/x", jwt_secret=secret).checked()


LINKS = {"public_url": "https://api.example.com", "app_url": "https://app.example.com"}


def test_production_starts_with_a_32_byte_secret():
    settings = Settings(env="production", database_url="postgres://db/x", jwt_secret=SECRET_32, **LINKS).checked()
    assert settings.jwt_secret == SECRET_32


@pytest.mark.parametrize("missing", ["public_url", "app_url"])
def test_production_refuses_to_start_without_both_link_bases(missing):
    links = {**LINKS, missing: None}
    with pytest.raises(ConfigurationError, match="GROUPS_API_PUBLIC_URL .* GROUPS_API_APP_URL"):
        Settings(env="production", database_url="postgres://db/x", jwt_secret=SECRET_32, **links).checked()
    with pytest.raises(ConfigurationError):  # serve's address is no substitute in production
        Settings(env="production", jwt_secret=SECRET_32, **links).with_serving_address("0.0.0.0", 9000).checked()


def test_outside_production_unset_link_bases_follow_the_serving_address():
    settings = Settings(jwt_secret=SECRET_32).checked()
    assert (settings.api_base_url, settings.app_base_url) == ("http://127.0.0.1:8000", "http://127.0.0.1:8000")
    served = settings.with_serving_address("127.0.0.1", 9000)
    assert (served.public_url, served.app_url) == ("http://127.0.0.1:9000", "http://127.0.0.1:9000")
    assert Settings().with_serving_address("0.0.0.0", 9000).public_url == "http://127.0.0.1:9000"
    assert Settings().with_serving_address("::1", 9000).public_url == "http://[::1]:9000"
    given = Settings(app_url="http://localhost:5173").with_serving_address("127.0.0.1", 9000)
    assert (given.public_url, given.app_url) == ("http://127.0.0.1:9000", "http://localhost:5173")


@pytest.mark.parametrize("url", ["api.example.com", "ftp://x", "https://"])
def test_link_bases_must_be_http_urls(url):
    with pytest.raises(ConfigurationError, match="GROUPS_API_APP_URL"):
        Settings(jwt_secret=SECRET_32, app_url=url).checked()


def test_cors_origins_are_exact_origins():
    settings = Settings.from_env({"GROUPS_API_CORS_ORIGINS": "https://app.example.com, http://localhost:5173/,"})
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("*", "wildcard"),
        ("https://*.example.com", "wildcard"),
        ("https://app.example.com/path", "no path"),
        ("app.example.com", "origins"),
    ],
)
def test_cors_origins_refuse_wildcards_and_anything_but_an_origin(value, match):
    with pytest.raises(ConfigurationError, match=match):
        Settings.from_env({"GROUPS_API_CORS_ORIGINS": value})
    with pytest.raises(ConfigurationError, match=match):
        Settings(jwt_secret=SECRET_32, cors_origins=(value,)).checked()


def test_production_never_generates_a_secret(tmp_path):
    database = tmp_path / "groups.sqlite3"
    with pytest.raises(ConfigurationError):
        Settings(env="production", database_url=f"sqlite://{database}").checked()
    assert list(tmp_path.iterdir()) == []


def test_production_refuses_a_clock_offset():
    settings = Settings.from_env(
        {"GROUPS_API_ENV": "production", "GROUPS_API_JWT_SECRET": SECRET_32, "GROUPS_API_CLOCK_OFFSET": "10d"}
    )
    with pytest.raises(ConfigurationError, match="CLOCK_OFFSET"):
        settings.checked()


def test_development_accepts_a_clock_offset():
    settings = Settings.from_env({"GROUPS_API_JWT_SECRET": SECRET_32, "GROUPS_API_CLOCK_OFFSET": "-2h"}).checked()
    assert settings.clock_offset == timedelta(hours=-2)


@pytest.mark.parametrize("env", ["production", "development"])
def test_retired_secrets_must_have_32_bytes_too(env):
    with pytest.raises(ConfigurationError, match="PREVIOUS_SECRETS"):
        Settings(env=env, jwt_secret=SECRET_32, jwt_previous_secrets=(SECRET_32, "weak")).checked()


# ------------------------------------------------------------------ development secret


def test_development_generates_a_secret_once_and_keeps_it_next_to_the_sqlite_file(tmp_path, caplog):
    database = tmp_path / "data" / "groups.sqlite3"
    database.parent.mkdir()
    settings = Settings(env="development", database_url=f"sqlite://{database}")
    with caplog.at_level(logging.WARNING, logger="groups_api.settings"):
        first = settings.checked()
    secret_file = database.parent / ".groups-api-secret"
    assert len(first.jwt_secret.encode()) >= 32
    assert secret_file.read_text().strip() == first.jwt_secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert any("generated a development secret" in r.getMessage() for r in caplog.records)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="groups_api.settings"):
        second = settings.checked()
    assert second.jwt_secret == first.jwt_secret
    assert not caplog.records


def test_a_kept_secret_that_is_too_short_is_refused(tmp_path):
    (tmp_path / ".groups-api-secret").write_text("tiny\n")
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Settings(env="development", database_url=f"sqlite://{tmp_path / 'groups.sqlite3'}").checked()


def test_development_with_an_in_memory_database_uses_a_throwaway_secret(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = Settings(env="development", database_url="sqlite://:memory:").checked()
    second = Settings(env="development", database_url="sqlite://:memory:").checked()
    assert len(first.jwt_secret.encode()) >= 32
    assert first.jwt_secret != second.jwt_secret
    assert list(tmp_path.iterdir()) == []


def test_an_explicit_secret_must_have_32_bytes_in_development_too(tmp_path):
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Settings(env="development", database_url=f"sqlite://{tmp_path / 'x.sqlite3'}", jwt_secret="short").checked()
    assert Settings(env="development", jwt_secret=SECRET_32).checked().jwt_secret == SECRET_32


# ------------------------------------------------------------------ environment and the clock offset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10d", timedelta(days=10)),
        ("-2h", timedelta(hours=-2)),
        ("+30m", timedelta(minutes=30)),
        (" 45s ", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("", timedelta(0)),
        (None, timedelta(0)),
    ],
)
def test_the_clock_offset_parser(text, expected):
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["10", "d", "10 days", "1.5h", "10y", "--2h"])
def test_the_clock_offset_parser_refuses_anything_else(text):
    with pytest.raises(ConfigurationError, match="GROUPS_API_CLOCK_OFFSET"):
        parse_offset(text)


def test_settings_read_the_environment_and_options_override_it():
    environ = {
        "GROUPS_API_ENV": "production",
        "GROUPS_API_DATABASE_URL": "postgres://db/env",
        "GROUPS_API_JWT_SECRET": SECRET_32,
        "GROUPS_API_JWT_PREVIOUS_SECRETS": "old-one, old-two,",
        "GROUPS_API_TRIAL_DAYS": "14",
        "GROUPS_API_PUBLIC_URL": "https://api.example.com/",
        "GROUPS_API_APP_URL": "https://app.example.com/",
        "GROUPS_API_CORS_ORIGINS": "https://app.example.com",
    }
    settings = Settings.from_env(environ, database_url="postgres://db/option")
    assert settings.production
    assert settings.database_url == "postgres://db/option"
    assert settings.jwt_previous_secrets == ("old-one", "old-two")
    assert settings.trial_days == 14
    assert settings.public_url == "https://api.example.com"
    assert settings.app_url == "https://app.example.com"
    assert settings.cors_origins == ("https://app.example.com",)
    assert Settings.from_env({}).database_url.startswith("sqlite://")
    assert Settings.from_env({}).access_token_ttl == timedelta(minutes=15)


@pytest.mark.parametrize("name", ["GROUPS_API_TRIAL_DAYS", "GROUPS_API_RATE_LIMIT_POINTS"])
def test_a_number_that_is_not_a_number_is_a_configuration_error(name):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: "thirty"})


# ------------------------------------------------------------------ what production turns off


@pytest.mark.parametrize(("env", "enabled"), [("development", True), ("production", False)])
async def test_production_turns_off_introspection_and_graphiql(settings, env, enabled):
    app = create_app(settings.with_(env=env), generate_schemas=True)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        body = (await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})).json()
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        plans = (await client.post("/graphql", json={"query": "{ plans { code } }"})).json()
    assert plans["data"]["plans"]
    if enabled:
        assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
        assert page.status_code == 200 and "graphiql" in page.text.lower()
    else:
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "graphiql" not in page.text.lower()
