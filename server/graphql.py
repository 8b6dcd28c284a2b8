"""The GraphQL endpoint: builds the one Context per request and encodes responses with orjson.

Batched requests (a JSON list of operations) are refused: Strawberry's batching stays off, so each request is
one operation, checked, costed and charged on its own.

A request Strawberry cannot read (not JSON, not UTF-8, nested too deep, not an object, an unknown operationName...)
is refused with its HTTP status (400 mostly) and, like every other refusal, a GraphQL-shaped JSON body whose error
carries ``extensions.code`` (BAD_REQUEST); Strawberry itself answers those in plain text.

Trusted documents (server/trusted_documents.py): a request may name a document of the loaded manifests instead of
sending its text, by ``"documentId": "sha256:<hex>"`` (or the bare hex) or by Apollo's
``"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}``; ``parse_http_body`` puts the document's
text in its place before Strawberry parses anything. An id the server does not hold is answered like Apollo Server
does, so that every Apollo client (web, Kotlin, iOS) recognises it and may retry with the text: HTTP 200 and one error
``PersistedQueryNotFound`` with ``extensions.code`` PERSISTED_QUERY_NOT_FOUND. A request sending both the text and an
id runs the text only when it is the text the id names (Apollo's retry does that), else 400.

With ``GROUPS_API_TRUSTED_DOCUMENTS_ONLY=sessions``, anonymous and session requests run trusted documents only (a
text that hashes to a trusted document counts as it); anything else is FORBIDDEN before it is parsed (HTTP 200 like
every FORBIDDEN of this API). Partner API tokens may send any document, within the cost limits.

In production GET runs trusted documents only, named by id (405 otherwise): a GET's query text and variables travel in
the URL, which proxies, access logs and browser histories keep (a ``search:`` holds a patient's name). Outside
production GET with ``query`` keeps working for GraphiQL.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, cast

import orjson
from cross_web import HTTPException
from graphql import GraphQLError
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData

from auth.credentials import authenticate
from auth.tokens import JwtCodec
from resolvers import limits
from resolvers.clock import Clock
from resolvers.context import BrowserSession, Context, Job
from server.observability import count_refusal
from server.trusted_documents import TrustedDocument, TrustedDocuments, document_hash, parse_document_id

log = logging.getLogger(__name__)

# The refresh token of a browser on a listed origin (GROUPS_API_CORS_ORIGINS): httpOnly, SameSite=Strict, sent to
# /graphql only, Secure outside development, living as long as its session.
REFRESH_COOKIE = "groups_api_refresh"
REFRESH_COOKIE_PATH = "/graphql"

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
# The message Apollo Server sends and Apollo clients look for (older ones by message only, newer ones by code too).
PERSISTED_QUERY_NOT_FOUND_MESSAGE = "PersistedQueryNotFound"
TRUSTED_ONLY_MESSAGE = (
    "this server runs only trusted documents for sessions and anonymous callers: name one by documentId "
    "(partner API tokens may send any document)"
)


async def run_after_response(jobs: list[Job]) -> None:
    """What the rules left for after the answer (mail, webhooks, password-reset mail), in order. Each job catches
    its own failures; a job added while these run runs too."""
    for job in jobs:
        await job()


class Refused(Exception):
    """A request refused before Strawberry parses it, answered as one GraphQL error with this code and status."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


@dataclass
class DocumentRequest(GraphQLRequestData):
    """A request whose text is a trusted document's (named by id, or sent as text with its id)."""

    document: TrustedDocument | None = None


class GraphQLApp(GraphQL[Context, None]):
    def __init__(
        self,
        schema,
        *,
        settings,
        clock: Clock,
        codec: JwtCodec,
        limit_store: limits.Store,
        trusted_documents: TrustedDocuments | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(schema, graphql_ide="graphiql" if not settings.production else None, **kwargs)
        if schema.config.batching_config is not None:
            raise ValueError("batched operations are refused: keep Strawberry's batching off")
        self.settings = settings
        self.clock = clock
        self.codec = codec
        self.limit_store = limit_store
        self.trusted_documents = trusted_documents or TrustedDocuments()
        self.trusted_only = settings.trusted_documents_only == "sessions"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = self.get_refusal(request) or await self.run(request)
        except HTTPException as refused:
            response = self.refusal(refused.status_code, refused.reason)
        except Refused as refused:
            count_refusal(refused.code)
            response = self.refusal(refused.status_code, refused.message, refused.headers, code=refused.code)
        except ClientDisconnect:
            # The client left before its body arrived: nothing ran, nobody to answer (not a server error).
            log.info("client disconnected before sending its request body")
            return
        await response(scope, receive, send)

    def refusal(
        self, status_code: int, message: str, headers: dict[str, str] | None = None, *, code: str = "BAD_REQUEST"
    ) -> Response:
        error = {"message": message, "extensions": {"code": code}}
        return Response(
            self.encode_json({"errors": [error]}),
            status_code=status_code,
            media_type="application/json",
            headers=headers,
        )

    def get_refusal(self, request: Request) -> Response | None:
        """The answer to a GET that must not run, or None. In production a GET runs only a trusted document named by
        id, never a text in the URL (see the module's docstring); ``parse_http_body`` makes sure it names one."""
        if request.method not in ("GET", "HEAD") or not self.settings.production:
            return None
        if not self.trusted_documents:
            return self.refusal(
                405, "GET runs no operations here: send the operation in a POST body", {"Allow": "POST"}
            )
        params = request.query_params
        if request.method == "GET" and "query" not in params and _names_a_document(params):
            return None
        return self.refusal(
            405,
            "GET runs only trusted documents here, named by documentId (or extensions.persistedQuery): "
            "send any other operation in a POST body",
            {"Allow": "GET, POST"},
        )

    def should_render_graphql_ide(self, request) -> bool:
        # curl and most HTTP clients accept */*: a GET naming a trusted document is a request, not a visit to GraphiQL.
        return super().should_render_graphql_ide(request) and not _names_a_document(request.query_params)

    async def parse_http_body(self, request):
        data = await super().parse_http_body(request)
        if isinstance(data, list):
            return data  # a batch: Strawberry refuses it
        if request.method == "GET":
            document_id = request.query_params.get("documentId")
        else:
            # Strawberry keeps only the request's standard members: read documentId from the (cached) body, decoding
            # it a second time only when it holds one.
            body = await request.get_body()
            # (a JSON object: Strawberry's parse_http_body has read it as one)
            decoded = cast("dict[str, Any]", self.decode_json(body)) if b'"documentId"' in body else None
            document_id = decoded.get("documentId") if decoded is not None else None
        document = self.named_document(data, document_id)
        if document is None:
            if request.method == "GET" and self.settings.production:
                raise Refused(
                    405,
                    "BAD_REQUEST",
                    "GET runs only trusted documents here, named by documentId",
                    {"Allow": "GET, POST"},
                )
            return data
        return DocumentRequest(
            query=document.text,
            variables=data.variables,
            operation_name=data.operation_name,
            extensions=data.extensions,
            protocol=data.protocol,
            document=document,
        )

    def named_document(self, data: GraphQLRequestData, document_id: object) -> TrustedDocument | None:
        """The trusted document the request names by ``documentId`` or ``extensions.persistedQuery``, if it names one.

        Unknown ids are PERSISTED_QUERY_NOT_FOUND; a request that sends the text as well runs it only when it is the
        named document's text (Apollo's retry after PersistedQueryNotFound sends both)."""
        if document_id is not None and not isinstance(document_id, str):
            raise HTTPException(400, 'documentId must be a string, "sha256:<hex>"')
        apollo_id = None
        persisted = (data.extensions or {}).get("persistedQuery")
        if persisted is not None:
            if (
                not isinstance(persisted, dict)
                or persisted.get("version") != 1
                or not isinstance(persisted.get("sha256Hash"), str)
            ):
                raise HTTPException(
                    400, 'extensions.persistedQuery must be {"version": 1, "sha256Hash": "<sha256 hex>"}'
                )
            apollo_id = persisted["sha256Hash"]
        named = {parse_document_id(i) or i for i in (document_id, apollo_id) if i is not None}
        if not named:
            return None
        if len(named) > 1:
            raise HTTPException(400, "documentId and extensions.persistedQuery.sha256Hash name different documents")
        (hex_id,) = named
        if data.query is not None and document_hash(data.query) != hex_id:
            raise HTTPException(400, "the query sent is not the document its id names")
        document = self.trusted_documents.get(hex_id)
        if document is None:
            if data.query is not None:
                return None  # the text, with its own hash: it runs as a text (trusted only if it is a trusted one)
            raise Refused(200, PERSISTED_QUERY_NOT_FOUND, PERSISTED_QUERY_NOT_FOUND_MESSAGE)
        return document

    async def execute_operation(self, request, request_adapter, request_data, context, root_value, sub_response):
        if self.trusted_only and isinstance(request_data, GraphQLRequestData):
            self.check_trusted_only(request_data, context)
        try:
            result = await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        finally:
            sub_response.headers.update(context.response_headers)
            if context.after_response:
                sub_response.background = BackgroundTask(run_after_response, context.after_response)
        self.apply_session_cookie(context.browser, sub_response)
        if not isinstance(result, list):
            retry_after(getattr(result, "errors", None), sub_response)
        return result

    def apply_session_cookie(self, browser: BrowserSession, response: Response) -> None:
        """Set or clear the refresh cookie as the operation's rules asked (resolvers/context.BrowserSession)."""
        if browser.issued is not None:
            token, session_expires_at = browser.issued
            now = self.clock.now()
            ends = session_expires_at or now + self.settings.refresh_token_ttl
            response.set_cookie(
                REFRESH_COOKIE,
                token,
                max_age=max(0, round((ends - now).total_seconds())),
                path=REFRESH_COOKIE_PATH,
                secure=self.settings.secure_cookies,
                httponly=True,
                samesite="strict",
            )
        elif browser.cleared:
            response.delete_cookie(
                REFRESH_COOKIE,
                path=REFRESH_COOKIE_PATH,
                secure=self.settings.secure_cookies,
                httponly=True,
                samesite="strict",
            )

    def check_trusted_only(self, data: GraphQLRequestData, context: Context) -> None:
        """GROUPS_API_TRUSTED_DOCUMENTS_ONLY=sessions: FORBIDDEN for an anonymous or session request whose document is
        not a trusted one, before anything parses it. Partner API tokens pass."""
        viewer = context.viewer
        if viewer is not None and viewer.is_token:
            return
        if isinstance(data, DocumentRequest) and data.document is not None:
            return
        if data.query is None or self.trusted_documents.matching(data.query) is not None:
            return  # no document at all: Strawberry answers that (400)
        raise Refused(200, "FORBIDDEN", TRUSTED_ONLY_MESSAGE)

    def decode_json(self, data: str | bytes) -> object:
        """Request JSON (the body, or the variables and extensions of a GET), read by orjson: strict UTF-8 and
        standard JSON, no unpaired surrogates, at most 1024 levels deep. Only an object (or a batch list, which
        Strawberry refuses) can be a request: Strawberry would call ``.get`` on anything else."""
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        if not isinstance(value, dict | list):
            raise HTTPException(400, "the request must be a JSON object")
        return value

    def browser_session(self, request: Request) -> BrowserSession:
        """Cookie mode when the request's Origin is a listed one; the cookie is read for those only (CSRF)."""
        origin = request.headers.get("origin")
        cookie = request.cookies.get(REFRESH_COOKIE) or None
        listed = origin is not None and origin in self.settings.cors_origins
        return BrowserSession(
            cookie_mode=listed,
            cookie_token=cookie if listed else None,
            cookie_refused=not listed and (origin is not None or cookie is not None),
        )

    # Strawberry's view also serves WebSockets, so it types both arguments as unions; this API has no subscriptions
    # and mounts the view for HTTP only, so the context is only ever built for a Request and its Response.
    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        credentials = await authenticate(request.headers.get("authorization"), codec=self.codec, now=self.clock.now())
        return Context(
            settings=self.settings,
            clock=self.clock,
            codec=self.codec,
            request_id=request_id,
            viewer=credentials.viewer,
            credential_error=credentials.error,
            client_address=request.client.host if request.client else None,
            browser=self.browser_session(request),
            limit_store=self.limit_store,
            after_response=[],
        )

    def encode_json(self, data: object) -> bytes:
        try:
            return orjson.dumps(data)
        except TypeError:
            # orjson refuses text that has no UTF-8 form, such as an unpaired surrogate a client sent and an error
            # message repeats (e.g. an unknown operationName): it leaves as "?", so the body stays valid UTF-8 JSON.
            return json.dumps(data, ensure_ascii=False).encode("utf-8", "replace")


def retry_after(errors: list[GraphQLError] | None, response: Response) -> None:
    """``Retry-After`` (seconds) on every RATE_LIMITED answer, whichever limit refused (budget, log-in throttle,
    sign-ups): the longest wait any of its errors names."""
    waits = [
        int(error.extensions.get("retryAfter") or 1)
        for error in errors or ()
        if error.extensions and error.extensions.get("code") == "RATE_LIMITED"
    ]
    if waits and "retry-after" not in response.headers:
        response.headers["Retry-After"] = str(max(waits))


def _names_a_document(params) -> bool:
    return "documentId" in params or "extensions" in params
