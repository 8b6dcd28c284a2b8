"""The ASGI app: routes, lifespan (database up and down), request ids and the body cap."""

from __future__ import annotations

import contextlib
import logging
import uuid

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from tortoise.connection import connections
from tortoise.contrib.starlette import RegisterTortoise

from auth.tokens import JwtCodec
from resolvers import limits
from resolvers.clock import Clock
from schema import build_schema
from server.db import install_postgres_indexes, tortoise_config
from server.graphql import GraphQLApp
from server.observability import MetricsExtension, allow_operation_names, client_request_id_var, metrics, request_id_var
from server.published_schema import published_schema, sdl_of
from server.settings import ConfigurationError, Settings
from server.statements import statement_pdf
from server.trusted_documents import TrustedDocuments

log = logging.getLogger("groups_api")


class RequestContextMiddleware:
    """Gives every request an id of the server's own (answered in X-Request-Id, written into audit events and logs),
    refuses bodies over the cap with 413, and marks every /graphql answer ``Cache-Control: no-store``.

    A client's own X-Request-Id is never the request's id (it would let a client write what it likes into the audit
    chain, or make two requests look like one); when usable it is logged beside it as ``client_request_id``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        client_request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else None
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_request_id
        no_store = scope.get("path", "").rstrip("/") == "/graphql"
        length = headers.get(b"content-length")
        received = 0

        async def capped_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                added = [(b"x-request-id", request_id.encode())]
                if no_store:
                    kept = [(k, v) for k, v in message["headers"] if k.lower() != b"cache-control"]
                    message["headers"] = [*kept, (b"cache-control", b"no-store"), *added]
                else:
                    message["headers"] = [*message["headers"], *added]
            await send(message)

        token = request_id_var.set(request_id)
        client_token = client_request_id_var.set(client_request_id)
        try:
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await too_large()(scope, receive, send_with_id)
                return
            await self.app(scope, capped_receive, send_with_id)
        except BodyTooLarge:
            await too_large()(scope, receive, send_with_id)
        finally:
            client_request_id_var.reset(client_token)
            request_id_var.reset(token)


class BodyTooLarge(Exception):
    pass


def too_large() -> JSONResponse:
    """413, still shaped like a GraphQL answer: clients read every refusal from ``errors[].extensions.code``."""
    error = {"message": "request body too large", "extensions": {"code": "QUERY_TOO_COMPLEX"}}
    return JSONResponse({"errors": [error]}, status_code=413)


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> JSONResponse:
    try:
        await connections.get("default").execute_query("SELECT 1")
    except Exception:
        log.warning("readiness check failed", exc_info=True)
        return JSONResponse({"ready": False}, status_code=503)
    return JSONResponse({"ready": True})


# Answers above this size are gzipped for clients that ask (Accept-Encoding: gzip): a 50-row history page is ~30 KB
# of JSON and ~4 KB gzipped. Level 6 gives nearly level 9's size at a fraction of its CPU.
GZIP_MINIMUM_BYTES = 1024
GZIP_LEVEL = 6
# How long a browser may cache a CORS preflight answer (seconds; Chromium caps it at 7200).
CORS_MAX_AGE = 7200
CORS_ALLOWED_HEADERS = ["authorization", "content-type", "x-request-id"]
# Headers a browser app may read from an answer (besides the CORS-safelisted ones).
CORS_EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
]


class ListedOriginsCORS(CORSMiddleware):
    """Starlette's CORS middleware for the listed origins only: a request from any other origin passes through
    untouched, without a single CORS header (Starlette would still add Allow-Credentials and, to a preflight, the
    allowed methods and headers); its preflight then meets the route, which answers OPTIONS with 405."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = Headers(scope=scope).get("origin")
            if origin is None or not self.is_allowed_origin(origin):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def middleware(settings: Settings) -> list[Middleware]:
    """Outermost first. CORS (only with GROUPS_API_CORS_ORIGINS) answers preflights before anything else runs and
    marks answers to allowed origins; other origins get no CORS headers at all. Then gzip, then request ids and
    the body cap."""
    stack = []
    if settings.cors_origins:
        stack.append(
            Middleware(
                ListedOriginsCORS,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=CORS_ALLOWED_HEADERS,
                allow_credentials=True,
                expose_headers=CORS_EXPOSED_HEADERS,
                max_age=CORS_MAX_AGE,
            )
        )
    stack.append(Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=GZIP_LEVEL))
    stack.append(Middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes))
    return stack


def create_app(settings: Settings, *, clock: Clock | None = None, generate_schemas: bool = False) -> Starlette:
    """The app for ``settings`` (already checked). ``generate_schemas`` is for tests and throwaway databases."""
    clock = clock or Clock(settings.clock_offset)
    if settings.jwt_secret is None:
        raise ConfigurationError("no JWT secret: create the app with Settings.checked()")
    codec = JwtCodec(
        settings.jwt_secret, settings.jwt_previous_secrets, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    schema = build_schema(introspection=not settings.production, extra_extensions=(MetricsExtension,))
    # Checked, parsed, validated and costed here, once: a manifest that does not fit this schema refuses to start.
    trusted_documents = TrustedDocuments.load(
        settings.trusted_documents, schema._schema, introspection=not settings.production
    )
    allow_operation_names(trusted_documents.operation_names)
    limit_store = limits.store_for(settings.redis_url)
    graphql_app = GraphQLApp(
        schema,
        settings=settings,
        clock=clock,
        codec=codec,
        limit_store=limit_store,
        trusted_documents=trusted_documents,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            async with RegisterTortoise(
                app, config=tortoise_config(settings.database_url), generate_schemas=generate_schemas
            ):
                if generate_schemas:
                    await install_postgres_indexes()
                yield
        finally:
            await limit_store.aclose()

    app = Starlette(
        routes=[
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            Route("/statements/{statement_id}.pdf", statement_pdf, methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/schema.graphql", published_schema, methods=["GET"]),
        ],
        middleware=middleware(settings),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.codec = codec
    app.state.published_sdl = sdl_of(schema)
    return app


__all__ = ["create_app"]
