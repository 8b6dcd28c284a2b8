"""Every string a request brings must be storable text: no NUL character (PostgreSQL's text type refuses it) and no
unpaired surrogate (it has no UTF-8 form: hashing a token, SQLite and PostgreSQL all fail on it).

``StorableText`` checks once per request, before any resolver runs, both ways a string arrives: the variables (JSON
may escape either, as \\u0000 or \\ud800) and the document's string literals (GraphQL may escape NUL as \\u0000;
the parser already refuses unpaired surrogates and raw control characters). A refusal is BAD_USER_INPUT and is the
whole result, like a variable of the wrong type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, StringValueNode, Visitor, visit
from graphql.language import BREAK
from strawberry.extensions import SchemaExtension

from errors import BadInput

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MESSAGE = "text must not contain NUL characters or unpaired surrogates"


def unstorable_variable(value: Any, path: str) -> str | None:
    """The path of the first string in ``value`` (a JSON value) that is not storable text, if any."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, inner in items:
        found = unstorable_variable(inner, f"{path}.{key}")
        if found is not None:
            return found
    return None


class _Literals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if _UNSTORABLE.search(node.value):
            self.found = True
            return BREAK
        return None


def has_unstorable_literal(query: str, document: DocumentNode) -> bool:
    if "\\u" not in query:  # the only way a literal can hold NUL is an escape
        return False
    literals = _Literals()
    visit(document, literals)
    return literals.found


class StorableText(SchemaExtension):
    """Refuse a request whose strings are not storable text (see the module docstring) before execution."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        refused = None
        variables = execution.variables if isinstance(execution.variables, dict) else {}
        for name, value in variables.items():
            path = unstorable_variable(value, "")
            if path is not None:
                refused = BadInput(f"Variable '${name}' has invalid text{' at ' + path if path else ''}: {MESSAGE}")
                break
        document = execution.graphql_document
        if refused is None and document is not None and has_unstorable_literal(execution.query or "", document):
            refused = BadInput(f"a string literal has invalid text: {MESSAGE}")
        if refused is not None:
            execution.result = ExecutionResult(
                data=None, errors=[GraphQLError(refused.message, extensions=refused.extensions, original_error=refused)]
            )
        yield
