"""The assembled Strawberry schema: ``from schema import schema``.

Each area module contributes its ``Query`` and ``Mutation`` fields; they are merged here.
"""

from __future__ import annotations

import strawberry
from graphql import ASTValidationRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema import (
    accounts,
    api_tokens,
    audit,
    billing,
    charts,
    events,
    invitations,
    limits,
    members,
    plans,
    practices,
    scalars,
    sessions,
    subscriptions,
    webhooks,
)
from schema.audit import AuditTrail
from schema.base import Node
from schema.errors import ErrorCodes, ParserCache
from schema.execution import FastExecutionContext
from schema.limits import MAX_ALIASES, MAX_DEPTH, MAX_QUERY_COST, CredentialMutationAlone, QueryLimits, QueryShapeRule
from schema.text import StorableText

AREAS = (
    sessions,
    accounts,
    practices,
    members,
    plans,
    invitations,
    subscriptions,
    charts,
    billing,
    api_tokens,
    audit,
    limits,
    events,
    webhooks,
)

MAX_TOKENS = 5000
__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_QUERY_COST", "MAX_TOKENS", "Mutation", "Query", "build_schema", "schema"]

# Built once at import: Strawberry's limiter extensions would build new rule classes per request, which
# defeats the ValidationCache (strawberry#4635). The rules are the same objects for every request.
VALIDATION_RULES: list[type[ASTValidationRule]] = [QueryShapeRule, CredentialMutationAlone]


def _merged(kind: str) -> type:
    parts = tuple(getattr(area, kind) for area in AREAS if hasattr(area, kind))
    return merge_types(kind, parts)


Query = _merged("Query")
Mutation = _merged("Mutation")


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Denials, bad input and invalid queries are the caller's business, not the log's (Strawberry would log a
        traceback for each). Exceptions behind errors are logged by ErrorCodes as it masks them, with the request id."""


def build_schema(
    *, introspection: bool = True, fast_execution: bool = True, extra_extensions: tuple = ()
) -> strawberry.Schema:
    from strawberry.extensions import DisableIntrospection

    # AuditTrail first: it leaves last, after ErrorCodes has given every error its code.
    extensions: list = [
        AuditTrail,
        ErrorCodes,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: AddValidationRules(VALIDATION_RULES),
        lambda: ParserCache(maxsize=1024),
        lambda: ValidationCache(maxsize=1024),
        StorableText,
        QueryLimits,
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    extensions.extend(extra_extensions)
    return Schema(
        query=Query,
        mutation=Mutation,
        types=[Node],
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=FastExecutionContext if fast_execution else None,
        scalar_overrides=scalars.OVERRIDES,
    )


schema = build_schema()
