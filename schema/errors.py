"""Every error leaves with an ``extensions.code``; unexpected ones are logged with the request id and masked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, cast

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputType,
    GraphQLScalarType,
    GraphQLSchema,
    ObjectFieldNode,
    OperationDefinitionNode,
    Undefined,
    VariableNode,
    is_input_object_type,
    is_input_type,
    is_list_type,
    is_non_null_type,
    is_required_input_field,
    visit,
)
from graphql.language import Visitor
from graphql.pyutils import inspect
from graphql.utilities import get_operation_ast, type_from_ast
from strawberry.extensions import MaskErrors
from strawberry.extensions import ParserCache as StrawberryParserCache

from errors import AppError, BadInput, BadInputs
from resolvers.money import UnreadableDecimal

log = logging.getLogger("groups_api.errors")

# Depth, aliases and cost are refused with their code already set (schema/limits.py); the parser's token limit is not.
_TOO_COMPLEX_MARKERS = ("document contains more than",)


def _code_for_validation(error: GraphQLError) -> str:
    message = error.message.lower()
    if any(marker in message for marker in _TOO_COMPLEX_MARKERS):
        return "QUERY_TOO_COMPLEX"
    if message.startswith("syntax error"):
        return "GRAPHQL_PARSE_FAILED"
    if message.startswith("variable"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


# ------------------------------------------------------------------ variables the GraphQL layer refused

# As many as graphql-core reports before it gives up on a request's variables.
MAX_INPUT_ERRORS = 50


def _is_variable_error(error: GraphQLError) -> bool:
    """An error of graphql-core's variable coercion (a value that does not fit its type), as opposed to validation."""
    return error.path is None and error.message.startswith("Variable '$") and "invalid" in error.message


class _VariablePaths(Visitor):
    """Where each variable is used: the argument path it fills, e.g. ``input`` or ``input.amount``."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[str, str] = {}
        self.stack: list[str] = []

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.stack.append(node.name.value)

    def leave_argument(self, *_: Any) -> None:
        self.stack.pop()

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.stack.append(node.name.value)

    def leave_object_field(self, *_: Any) -> None:
        self.stack.pop()

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        if self.stack:
            self.paths.setdefault(node.name.value, ".".join(self.stack))


def _invalid_fields(
    value: Any, type_: GraphQLInputType, path: list[str | int]
) -> Iterator[tuple[list[str | int], str]]:
    """(path, reason) of every part of ``value`` that does not fit ``type_``: each field on its own, a missing
    required field at its own path (graphql-core reports that one at its parent), and what the Decimal scalar reads as
    unreadable (refused later by the field's own check, which does not run when anything else is refused here)."""
    if is_non_null_type(type_):
        if value is None or value is Undefined:
            yield path, f"a value of type {type_} is required"
            return
        yield from _invalid_fields(value, type_.of_type, path)
        return
    if value is None or value is Undefined:
        return
    if is_list_type(type_):
        item_type = type_.of_type
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            yield from _invalid_fields(item, item_type, path if index is None else [*path, index])
        return
    if is_input_object_type(type_):
        if not isinstance(value, dict):
            yield path, f"expected an object of type {type_}, found {inspect(value)}"
            return
        fields = type_.fields
        for name, field in fields.items():
            if name in value:
                yield from _invalid_fields(value[name], field.type, [*path, name])
            elif is_required_input_field(field):
                yield [*path, name], f"{name} is required ({field.type})"
        for name in value:
            if name not in fields:
                yield [*path, name], f"{type_} has no field {name}"
        return
    try:
        # what is left is a leaf type: a scalar or an enum
        result = cast("GraphQLScalarType | GraphQLEnumType", type_).coerce_input_value(value)
    except GraphQLError as error:
        yield path, error.message
        return
    except Exception as error:
        yield path, f"expected a value of type {type_}: {error}"
        return
    if result is Undefined:
        yield path, f"expected a value of type {type_}, found {inspect(value)}"
    elif isinstance(result, UnreadableDecimal):
        yield path, f"{path[-1] if path else 'value'} {result.reason}"


def input_errors(
    schema: GraphQLSchema, document: DocumentNode | None, operation_name: str | None, variables: dict | None
) -> list[GraphQLError]:
    """One BAD_USER_INPUT error per invalid field of the request's variables, each with ``extensions.field``: the
    input path of the argument the variable fills (``input.amount``, ``input.clinicianIds.0``), not the variable's
    own name, so that a form can mark every bad field from one answer."""
    operation = get_operation_ast(document, operation_name) if document is not None else None
    if not isinstance(operation, OperationDefinitionNode):
        return []
    usages = _VariablePaths()
    visit(operation, usages)
    errors: list[GraphQLError] = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        type_ = type_from_ast(schema, definition.type)
        if type_ is None or not is_input_type(type_):
            continue
        value = (variables or {}).get(name, Undefined)
        if value is Undefined and definition.default_value is not None:
            continue
        base = usages.paths.get(name, name)
        for path, reason in _invalid_fields(value, type_, []):
            field = ".".join([base, *map(str, path)])
            errors.append(
                GraphQLError(
                    f"Variable '${name}' has an invalid value at {field}: {reason}",
                    definition,
                    extensions={"code": BadInput.code, "field": field},
                )
            )
            if len(errors) >= MAX_INPUT_ERRORS:
                return errors
    return errors


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (AppError, GraphQLError))


def _each_refusal(error: GraphQLError) -> list[GraphQLError]:
    """A field's error that refused several inputs at once (errors.BadInputs): one error per input, at the field's
    path, each with its own message and ``extensions.field``."""
    original = error.original_error
    if not isinstance(original, BadInputs):
        return [error]
    return [
        GraphQLError(
            refusal.message, error.nodes, path=error.path, original_error=refusal, extensions=refusal.extensions
        )
        for refusal in original.refusals
    ]


class ErrorCodes(MaskErrors):
    """MaskErrors that also gives every error its code, and logs what it masks (with the request id)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="internal error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        log.error(
            "internal error in %s (request %s)",
            ".".join(str(p) for p in error.path or ()),
            getattr(context, "request_id", "-"),
            exc_info=error.original_error,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL"}
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = [one for error in super()._process_errors(errors) for one in _each_refusal(error)]
        if any(_is_variable_error(e) for e in processed):
            processed = self._with_input_fields(processed)
        for error in processed:
            if not error.extensions or "code" not in error.extensions:
                original = error.original_error
                if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
                    error.extensions = dict(original.extensions)
                else:
                    error.extensions = {**(error.extensions or {}), "code": _code_for_validation(error)}
        return processed

    def _with_input_fields(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """graphql-core's variable errors replaced by one per invalid field, each naming it in ``extensions.field``
        (graphql-core names only the variable, and a missing required field only by its parent)."""
        context = self.execution_context
        fields = input_errors(
            context.schema._schema, context.graphql_document, context.operation_name, context.variables
        )
        if not fields:
            return errors
        return [e for e in errors if not _is_variable_error(e)] + fields


class ParserCache(StrawberryParserCache):
    """Strawberry's ParserCache, except that a document that does not parse is left to Strawberry's own parser.

    The stock extension parses in ``on_parse`` and lets a syntax error (or the token limit) escape the hook, which
    skips every extension's error processing: the error would leave without a code. Here the error is dropped and
    Strawberry parses again inside its own error handling, so ``ErrorCodes`` sees it. Only failing documents pay twice.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(context.query, **context.parse_options)
        yield
