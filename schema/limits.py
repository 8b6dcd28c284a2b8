"""Limits on what one request may ask: depth and aliases (a validation rule), cost (before execution), budgets.

- ``CredentialMutationAlone`` refuses an operation that holds a credential mutation (a root mutation answering
  an ``AuthPayload``: signUp, logIn, refreshSession, acceptInvitation, ...) beside any other root field, a
  second alias and ``__typename`` included. Whoever a credential mutation signs in, nothing else in the same
  request could run as them or next to them: the request's viewer, loaders and budget belong to its caller.
- ``QueryShapeRule`` refuses documents nested deeper than MAX_DEPTH levels of fields or with more than
  MAX_ALIASES aliases in an operation. Each fragment is measured once (Strawberry's QueryDepthLimiter and
  MaxAliasesLimiter re-walk a fragment at every spread: a 1 KB document of fragments spreading fragments
  keeps them busy for minutes). The rule is a class built once at import, so the ValidationCache hits.
- ``query_cost`` is GitHub's node count: each connection costs its requested ``first`` (its default, 50,
  when left out), times the sizes of the connections around it; the sum / 100, rounded, at least 1.
  It needs the request's variables (``first: $n``), which validation does not see and whose result is cached
  per document, so ``QueryLimits`` computes it before execution: over MAX_QUERY_COST is QUERY_TOO_COMPLEX,
  otherwise the cost is taken from the caller's hourly budget (RATE_LIMITED when it does not fit).
  Either way no resolver has run.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.language import BREAK
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types import Info

from errors import AppError, BadInput, QueryTooComplex
from resolvers import limits
from resolvers.context import Context
from resolvers.pagination import DEFAULT_PAGE_SIZE
from schema.directives import guard

MAX_DEPTH = 13  # levels of fields, e.g. { practice { members { edges { node { name } } } } } has 5
MAX_ALIASES = 50
MAX_QUERY_COST = 5000  # points: 500,000 nodes, GitHub's limit for one query
NODES_PER_POINT = 100


def too_complex(message: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": QueryTooComplex.code, **extensions})


# ------------------------------------------------------------------ depth and aliases (validation)


@dataclass(frozen=True)
class Shape:
    depth: int
    aliases: int


class _ShapeMeter:
    """Depth and alias count of selection sets; fragments measured once each (spreads reuse the result)."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.measured: dict[str, Shape] = {}

    def selection_set(self, node: SelectionSetNode | None) -> Shape:
        depth = aliases = 0
        for selection in node.selections if node else ():
            if isinstance(selection, FieldNode):
                aliases += selection.alias is not None
                if selection.name.value.startswith("__"):
                    continue  # introspection is off in production, and its own shape is fixed
                inner = self.selection_set(selection.selection_set)
                depth, aliases = max(depth, 1 + inner.depth), aliases + inner.aliases
                continue
            if isinstance(selection, FragmentSpreadNode):
                inner = self.fragment(selection.name.value)
            else:
                inner = self.selection_set(cast(InlineFragmentNode, selection).selection_set)
            depth, aliases = max(depth, inner.depth), aliases + inner.aliases
        return Shape(depth, aliases)

    def fragment(self, name: str) -> Shape:
        if name not in self.measured:
            self.measured[name] = Shape(0, 0)  # a cycle (refused by another rule) counts nothing
            definition = self.fragments.get(name)
            self.measured[name] = self.selection_set(definition.selection_set if definition else None)
        return self.measured[name]


class QueryShapeRule(ValidationRule):
    """Refuse operations deeper than MAX_DEPTH or with more than MAX_ALIASES aliases (QUERY_TOO_COMPLEX)."""

    def enter_document(self, node: DocumentNode, *_: Any) -> Any:
        fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
        meter = _ShapeMeter(fragments)
        for operation in node.definitions:
            if not isinstance(operation, OperationDefinitionNode):
                continue
            shape = meter.selection_set(operation.selection_set)
            name = operation.name.value if operation.name else "anonymous"
            if shape.depth > MAX_DEPTH:
                self.report_error(too_complex(f"'{name}' is {shape.depth} levels deep; the maximum is {MAX_DEPTH}"))
            if shape.aliases > MAX_ALIASES:
                self.report_error(too_complex(f"'{name}' has {shape.aliases} aliases; the maximum is {MAX_ALIASES}"))
        return BREAK


# ------------------------------------------------------------------ credential mutations stand alone (validation)

CREDENTIAL_PAYLOAD = "AuthPayload"


def credential_mutations(schema: GraphQLSchema) -> frozenset[str]:
    """Root mutation fields that sign someone in: those answering an AuthPayload (found from the schema's shape,
    so a new one cannot be forgotten)."""
    root = schema.mutation_type
    if root is None:
        return frozenset()
    return frozenset(
        name for name, field in root.fields.items() if get_named_type(field.type).name == CREDENTIAL_PAYLOAD
    )


def _root_fields(
    node: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], seen: set[str]
) -> list[FieldNode]:
    """Every field an operation selects at its root, through inline fragments and spreads (each fragment once)."""
    fields: list[FieldNode] = []
    for selection in node.selections if node else ():
        if isinstance(selection, FieldNode):
            fields.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            fields.extend(_root_fields(selection.selection_set, fragments, seen))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            definition = fragments.get(selection.name.value)
            fields.extend(_root_fields(definition.selection_set if definition else None, fragments, seen))
    return fields


class CredentialMutationAlone(ValidationRule):
    """Refuse (BAD_USER_INPUT) an operation with a credential mutation beside any other root field."""

    def enter_document(self, node: DocumentNode, *_: Any) -> Any:
        credentials = credential_mutations(self.context.schema)
        fragments = {d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)}
        for operation in node.definitions:
            if not isinstance(operation, OperationDefinitionNode) or operation.operation != OperationType.MUTATION:
                continue
            fields = _root_fields(operation.selection_set, fragments, set())
            signing_in = sorted({f.name.value for f in fields} & credentials)
            if signing_in and len(fields) > 1:
                self.report_error(
                    GraphQLError(
                        f"{signing_in[0]} must be the only field of its operation: "
                        "send other fields in another request",
                        nodes=operation,
                        extensions={"code": BadInput.code},
                    )
                )
        return BREAK


# ------------------------------------------------------------------ cost (before execution)


class _CostMeter:
    """Nodes a selection set may return per parent object. Linear in the parent's count, so a fragment is
    measured once and scaled wherever it is spread."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]):
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.measured: dict[str, int] = {}

    def selection_set(self, node: SelectionSetNode | None, parent: Any) -> int:
        total = 0
        for selection in node.selections if node else ():
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                total += self.selection_set(
                    selection.selection_set, self.schema.get_type(condition.name.value) if condition else parent
                )
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> int:
        if name not in self.measured:
            self.measured[name] = 0
            definition = self.fragments.get(name)
            if definition is not None:
                parent = self.schema.get_type(definition.type_condition.name.value)
                self.measured[name] = self.selection_set(definition.selection_set, parent)
        return self.measured[name]

    def field(self, node: FieldNode, parent: Any) -> int:
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return 0
        definition = parent.fields.get(node.name.value)
        if definition is None:
            return 0
        inner = self.selection_set(node.selection_set, get_named_type(definition.type))
        if "first" in definition.args and get_named_type(definition.type).name.endswith("Connection"):
            size = self.page_size(node, definition.args["first"].default_value)
            return size * (1 + inner)
        return inner

    def page_size(self, node: FieldNode, field_default: Any) -> int:
        argument = next((a for a in node.arguments or () if a.name.value == "first"), None)
        value: Any = field_default
        if argument is not None:
            if isinstance(argument.value, VariableNode):
                value = self.variables.get(argument.value.name.value)
            elif isinstance(argument.value, IntValueNode):
                value = int(argument.value.value)
            else:
                value = None
        if not isinstance(value, int) or isinstance(value, bool):
            return DEFAULT_PAGE_SIZE
        return max(0, value)


def _with_defaults(operation: OperationDefinitionNode, variables: dict[str, Any] | None) -> dict[str, Any]:
    values = {}
    for definition in operation.variable_definitions or ():
        default = definition.default_value
        if isinstance(default, IntValueNode):
            values[definition.variable.name.value] = int(default.value)
    return {**values, **(variables or {})}


def query_cost(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: dict | None
) -> int:
    """Points the operation costs: connection sizes, nested sizes multiplied, summed, / 100, rounded, at least 1."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 1
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    root = schema.get_root_type(operation.operation)
    nodes = _CostMeter(schema, fragments, _with_defaults(operation, variables)).selection_set(
        operation.selection_set, root
    )
    return max(1, math.floor(nodes / NODES_PER_POINT + 0.5))


class QueryLimits(SchemaExtension):
    """Before execution: refuse a query over MAX_QUERY_COST, then take its cost from the caller's budget.

    A refusal becomes the whole result, so no resolver runs. The budget is reported in X-RateLimit-* headers
    (and Retry-After when refused) as well as by Query.rateLimit.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        ctx = execution.context
        try:
            cost = query_cost(
                execution.schema._schema,
                # Strawberry types the document Optional; on_execute runs once it is parsed
                execution.graphql_document,  # type: ignore[arg-type]
                execution.operation_name,
                execution.variables,
            )
            if cost > MAX_QUERY_COST:
                raise QueryTooComplex(
                    f"this query costs {cost} points; the maximum is {MAX_QUERY_COST}",
                    cost=cost,
                    maxCost=MAX_QUERY_COST,
                )
            await limits.charge_budget(ctx, cost)
        except AppError as refused:
            execution.result = ExecutionResult(
                data=None, errors=[GraphQLError(refused.message, extensions=refused.extensions, original_error=refused)]
            )
        _report(ctx)
        yield


def _report(ctx: Context) -> None:
    usage = limits.current_usage(ctx)
    if usage is None:
        return
    headers = ctx.response_headers
    headers["X-RateLimit-Limit"] = str(usage.limit)
    headers["X-RateLimit-Remaining"] = str(usage.remaining)
    headers["X-RateLimit-Reset"] = str(int(usage.reset_at.timestamp()))
    if not usage.allowed:
        headers["Retry-After"] = str(usage.retry_after(ctx.clock.now()))


# ------------------------------------------------------------------ Query.rateLimit


@strawberry.type
class RateLimit:
    limit: int
    cost: int = strawberry.field(description="What the last request cost.")
    remaining: int
    reset_at: datetime


@strawberry.type
class Query:
    @strawberry.field(
        description="The caller's hourly points budget, after this request.", extensions=guard(authenticated=True)
    )
    def rate_limit(self, info: Info) -> RateLimit | None:
        usage = limits.current_usage(info.context)
        if usage is None:
            return None
        return RateLimit(limit=usage.limit, cost=usage.cost, remaining=usage.remaining, reset_at=usage.reset_at)
