"""The GraphQL endpoint: builds the one Context per request and encodes responses with orjson.

Batched requests (a JSON list of operations) are refused: Strawberry's batching stays off, so each request is
one operation, checked, costed and charged on its own.

A request Strawberry cannot read (not JSON, not UTF-8, nested too deep, not an object, an unknown operationName...)
is refused with its HTTP status (400 mostly) and, like every other refusal, a GraphQL-shaped JSON body whose error
carries ``extensions.code`` (BAD_REQUEST); Strawberry itself answers those in plain text.

In production GET runs no operation at all (405, ``Allow: POST``): a GET's query text and variables travel in the
URL, which proxies, access logs and browser histories keep (a ``search:`` holds a patient's name). Trusted documents
(whose text is not in the URL) are to be the one exception; ``get_refusal`` is where they will be let through.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from auth.credentials import authenticate
from auth.tokens import JwtCodec
from resolvers import limits
from resolvers.clock import Clock
from resolvers.context import Context

log = logging.getLogger(__name__)

class GraphQLApp(GraphQL):
    def __init__(
        self, schema, *, settings, clock: Clock, codec: JwtCodec, limit_store: limits.Store, **kwargs: Any
    ) -> None:
        super().__init__(schema, graphql_ide="graphiql" if not settings.production else None, **kwargs)
        if schema.config.batching_config is not None:
            raise ValueError("batched operations are refused: keep Strawberry's batching off")
        self.settings = settings
        self.clock = clock
        self.codec = codec
        self.limit_store = limit_store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = self.get_refusal(request) or await self.run(request)
        except HTTPException as refused:
            response = self.refusal(refused.status_code, refused.reason)
        except ClientDisconnect:
            # The client left before its body arrived: nothing ran, nobody to answer (not a server error).
            log.info("client disconnected before sending its request body")
            return
        await response(scope, receive, send)

    def refusal(self, status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
        error = {"message": message, "extensions": {"code": "BAD_REQUEST"}}
        return Response(
            self.encode_json({"errors": [error]}), status_code=status_code, media_type="application/json", headers=headers
        )

    def get_refusal(self, request: Request) -> Response | None:
        """The answer to a GET that must not run, or None. In production no GET runs (see the module's docstring)."""
        if request.method in ("GET", "HEAD") and self.settings.production:
            return self.refusal(405, "GET runs no operations here: send the operation in a POST body", {"Allow": "POST"})
        return None

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

    async def get_context(self, request: Request, response: Response) -> Context:
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        credentials = await authenticate(request.headers.get("authorization"), codec=self.codec, now=self.clock.now())
        return Context(
            settings=self.settings,
            clock=self.clock,
            codec=self.codec,
            request_id=request_id,
            viewer=credentials.viewer,
            credential_error=credentials.error,
            request=request,
            response=response,
            client_address=request.client.host if request.client else None,
            state={limits.STORE: self.limit_store},
        )

    def encode_json(self, data: object) -> bytes:
        try:
            return orjson.dumps(data)
        except TypeError:
            # orjson refuses text that has no UTF-8 form, such as an unpaired surrogate a client sent and an error
            # message repeats (e.g. an unknown operationName): it leaves as "?", so the body stays valid UTF-8 JSON.
            return json.dumps(data, ensure_ascii=False).encode("utf-8", "replace")
