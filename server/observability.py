"""Prometheus metrics (/metrics) and structured logs (one JSON object a line, with the request id)."""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "groups_api_graphql_operations_total", "GraphQL operations by operation name", ["operation"], registry=REGISTRY
)
LATENCY = Histogram(
    "groups_api_graphql_operation_seconds",
    "GraphQL operation latency by operation name",
    ["operation"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
ERRORS = Counter("groups_api_graphql_errors_total", "GraphQL errors by extensions.code", ["code"], registry=REGISTRY)


class MetricsExtension(SchemaExtension):
    """Counts each operation and its errors, and times it, under the client's operation name."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        name = self.execution_context.operation_name or "anonymous"
        REQUESTS.labels(name).inc()
        LATENCY.labels(name).observe(time.perf_counter() - started)
        result = self.execution_context.result
        for error in getattr(result, "errors", None) or ():
            ERRORS.labels((error.extensions or {}).get("code", "UNKNOWN")).inc()


class PoolCollector(Collector):
    """Database pool use, read at scrape time from Tortoise's default connection."""

    def collect(self):
        from tortoise.connection import connections

        size = GaugeMetricFamily("groups_api_db_pool_size", "Open connections in the database pool")
        idle = GaugeMetricFamily("groups_api_db_pool_idle", "Idle connections in the database pool")
        try:
            pool = getattr(connections.get("default"), "_pool", None)
        except Exception:  # noqa: BLE001 - no database configured in this process
            pool = None
        if pool is not None and hasattr(pool, "get_size"):
            size.add_metric([], pool.get_size())
            idle.add_metric([], pool.get_idle_size())
        else:  # SQLite: one serialised connection
            size.add_metric([], 1)
            idle.add_metric([], 0)
        yield size
        yield idle


REGISTRY.register(PoolCollector())


async def metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str | None = None) -> None:
    """Structured logs: one JSON object a line on stderr, each with the request id when there is one."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("GROUPS_API_LOG_LEVEL", "INFO")).upper())
