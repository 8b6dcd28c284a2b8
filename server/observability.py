"""Prometheus metrics (/metrics) and structured logs (one JSON object a line, with the request id).

Series are labelled only by values the server chose: the operation label is a name from ``KNOWN_OPERATIONS`` (the
operation names of the documents the project knows) or ``other``, never a name a client made up. ``/metrics`` wants
``Authorization: Bearer $GROUPS_API_METRICS_TOKEN`` when that token is set, and is off (404) in production without it.
"""

from __future__ import annotations

import contextvars
import functools
import hmac
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator

from graphql import (
    DocumentNode,
    EnumValueNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    visit,
)
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.extensions import SchemaExtension

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The X-Request-Id a client sent, when usable: logged beside the server's own id, never used as it.
client_request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_request_id", default=None)

# Operation names that get a series of their own: those of the documents the project knows (the screens of
# bench/screens.py, which tests/test_security_http.py keeps in step). Everything else is counted as OTHER, so a
# client cannot grow /metrics (or the process) by inventing names. Trusted documents join through
# ``allow_operation_names`` when they are loaded.
KNOWN_OPERATIONS = frozenset({"Dashboard", "ChartList", "BillingHistory", "RecordPayment", "ClinicianBalances"})
OTHER = "other"
_known_operations: set[str] = set(KNOWN_OPERATIONS)


def known_operation_names() -> frozenset[str]:
    return frozenset(_known_operations)


def allow_operation_names(names: Iterable[str]) -> None:
    """Give these operation names series of their own (e.g. the trusted documents' names, once, at start-up)."""
    _known_operations.update(names)


def forget_operation_names(names: Iterable[str]) -> None:
    _known_operations.difference_update(set(names) - KNOWN_OPERATIONS)


def operation_label(name: object) -> str:
    """``name`` is what the client sent as operationName: any JSON value, not only a string or null."""
    return name if isinstance(name, str) and name in _known_operations else OTHER


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


# Uses of what the schema deprecates, so the owner of an integration can be told before a removal breaks it
# (CHANGELOG.md's policy). Labelled by schema coordinate: bounded by the schema, never by what a client sent.
DEPRECATED_USES = Counter(
    "groups_api_deprecated_uses_total",
    "Operations that used a deprecated field, argument or enum value, by schema coordinate",
    ["coordinate"],
    registry=REGISTRY,
)


@functools.cache
def _deprecates_anything(schema: GraphQLSchema) -> bool:
    for named in schema.type_map.values():
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field in named.fields.values():
                if field.deprecation_reason is not None or any(
                    a.deprecation_reason is not None for a in field.args.values()
                ):
                    return True
        elif isinstance(named, GraphQLEnumType) and any(
            v.deprecation_reason is not None for v in named.values.values()
        ):
            return True
    return False


def deprecated_coordinates(schema: GraphQLSchema, document: DocumentNode) -> list[str]:
    """The deprecated fields, arguments and enum values (literals) a document uses, as schema coordinates."""
    info, found = TypeInfo(schema), []

    class Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            field, parent = info.get_field_def(), info.get_parent_type()
            if field is None or parent is None:
                return
            coordinate = f"{parent.name}.{node.name.value}"
            if field.deprecation_reason is not None:
                found.append(coordinate)
            for argument in node.arguments or ():
                definition = field.args.get(argument.name.value)
                if definition is not None and definition.deprecation_reason is not None:
                    found.append(f"{coordinate}({argument.name.value}:)")

        def enter_enum_value(self, node: EnumValueNode, *_: object) -> None:
            enum = get_named_type(info.get_input_type())
            if isinstance(enum, GraphQLEnumType):
                value = enum.values.get(node.value)
                if value is not None and value.deprecation_reason is not None:
                    found.append(f"{enum.name}.{node.value}")

    visit(document, TypeInfoVisitor(info, Collect()))
    return sorted(set(found))


def count_deprecated_uses(schema: GraphQLSchema, document: DocumentNode | None) -> None:
    if document is None or not _deprecates_anything(schema):
        return  # today's schema deprecates nothing: no walk at all
    for coordinate in deprecated_coordinates(schema, document):
        DEPRECATED_USES.labels(coordinate).inc()


def count_refusal(code: str) -> None:
    """An error answered before Strawberry ran (e.g. PERSISTED_QUERY_NOT_FOUND), counted with the others by code."""
    ERRORS.labels(code).inc()


class MetricsExtension(SchemaExtension):
    """Counts each operation and its errors, and times it, under its operation name when that is a known one."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        name = operation_label(self.execution_context.operation_name)
        count_deprecated_uses(self.execution_context.schema._schema, self.execution_context.graphql_document)
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
        except Exception:
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
    token: str | None = request.app.state.settings.metrics_token
    if token is None and request.app.state.settings.production:
        return JSONResponse({"error": "not found"}, status_code=404)
    if token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return JSONResponse(
                {"error": "metrics need a bearer token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        # Constant time whatever the length or content of the guess.
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return JSONResponse({"error": "wrong metrics token"}, status_code=403)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


class RequestIdFilter(logging.Filter):
    """Gives every record the request's id (the server's own), and the client's X-Request-Id when it sent one."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        client_request_id = client_request_id_var.get()
        if client_request_id is not None:
            record.client_request_id = client_request_id
        return True


class AccessLogFilter(logging.Filter):
    """Strips the query string from uvicorn's access lines: a GET's query string can carry a query text with a
    patient's name in it (``search:``), and access logs are kept and shipped far more widely than the data.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with (client, method, path with query string, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_without_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str):
            record.msg = _QUERY_IN_TEXT.sub(r"\1", record.msg)
        return True


_QUERY_IN_TEXT = re.compile(r"(/[^\s?\"]*)\?[^\s\"]*")


def _without_query(text: str) -> str:
    """``/graphql?query=...`` -> ``/graphql``; text that is not a path with a query string is left as it is."""
    path, question, _ = text.partition("?")
    return path if question and path.startswith("/") and not any(c.isspace() for c in path) else text


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
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("GROUPS_API_LOG_LEVEL", "INFO")).upper())
