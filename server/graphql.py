"""The GraphQL endpoint: builds the one Context per request and encodes responses with orjson.

Batched requests (a JSON list of operations) are refused: Strawberry's batching stays off, so each request is
one operation, checked, costed and charged on its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL

from auth.credentials import authenticate
from auth.tokens import JwtCodec
from resolvers import limits
from resolvers.clock import Clock
from resolvers.context import Context


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
        return orjson.dumps(data)
