"""Entry point for uvicorn workers: rebuild the settings from the environment and create the app."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from server.app import create_app
from server.observability import configure_logging
from server.settings import Settings

# Collections of the youngest generation run every GC_THRESHOLD allocations instead of Python's 700: a request
# allocates tens of thousands of short-lived objects, and each collection walks the survivors.
GC_THRESHOLD = (50_000, 20, 100)


def app_from_environment() -> Starlette:
    # With --workers, each worker is a fresh process that never ran `groups-api`'s own set-up: without this its
    # records reach no handler (INFO and below vanish; the rest is printed bare, without JSON or request id).
    configure_logging()
    app = create_app(Settings.from_env().checked())
    tune_garbage_collector()
    return app


def tune_garbage_collector() -> None:
    """After start-up: move everything built so far (modules, the schema, the app) out of the collector's sight,
    so full collections no longer walk it, and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
