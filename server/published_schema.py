"""``GET /schema.graphql``: the published SDL, directives included, for any authenticated caller.

Partners build against it in production too, where introspection is off. It is the same text as the committed
``schema.graphql`` (tests/test_schema_file.py keeps the two equal), built once when the app is made.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.credentials import authenticate

MEDIA_TYPE = "application/graphql; charset=utf-8"


def sdl_of(schema) -> str:
    return schema.as_str() + "\n"


async def published_schema(request: Request) -> Response:
    state = request.app.state
    credentials = await authenticate(request.headers.get("authorization"), codec=state.codec, now=state.clock.now())
    if credentials.viewer is None:
        error = {"message": credentials.error or "authentication required", "extensions": {"code": "UNAUTHENTICATED"}}
        return JSONResponse({"errors": [error]}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(state.published_sdl, media_type=MEDIA_TYPE, headers={"Cache-Control": "no-store"})
