"""Entry point for uvicorn workers: rebuild the settings from the environment and create the app."""

from __future__ import annotations

from starlette.applications import Starlette

from server.app import create_app
from server.settings import Settings


def app_from_environment() -> Starlette:
    return create_app(Settings.from_env().checked())
