"""Entry point for uvicorn workers: rebuild the settings from the environment and create the app."""

from __future__ import annotations

from starlette.applications import Starlette

from server.app import create_app
from server.observability import configure_logging
from server.settings import Settings


def app_from_environment() -> Starlette:
    # With --workers, each worker is a fresh process that never ran `groups-api`'s own set-up: without this its
    # records reach no handler (INFO and below vanish; the rest is printed bare, without JSON or request id).
    configure_logging()
    return create_app(Settings.from_env().checked())
