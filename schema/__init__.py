"""The assembled Strawberry schema: ``from schema import schema``.

Each area module contributes its ``Query`` and ``Mutation`` fields; they are merged here.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ValidationCache
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema import api_tokens, audit, billing, charts, invitations, members, plans, practices, sessions, subscriptions
from schema.base import Node
from schema.execution import FastExecutionContext
from schema.errors import ErrorCodes, ParserCache

AREAS = (sessions, practices, members, plans, invitations, subscriptions, charts, billing, api_tokens, audit)

MAX_DEPTH = 12
MAX_ALIASES = 50
MAX_TOKENS = 5000

# Built once at import: Strawberry's limiter extensions would build new rule classes per request, which
# defeats the ValidationCache (strawberry#4635). The rules are the same objects for every request.
VALIDATION_RULES = [max_depth_rule(MAX_DEPTH, None, None), max_aliases_rule(MAX_ALIASES)]


def _merged(kind: str) -> type:
    parts = tuple(getattr(area, kind) for area in AREAS if hasattr(area, kind))
    return merge_types(kind, parts)


Query = _merged("Query")
Mutation = _merged("Mutation")


def build_schema(*, introspection: bool = True, fast_execution: bool = True) -> strawberry.Schema:
    from strawberry.extensions import DisableIntrospection

    extensions: list = [
        ErrorCodes,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(VALIDATION_RULES),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[Node],
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=FastExecutionContext if fast_execution else None,
    )


schema = build_schema()
