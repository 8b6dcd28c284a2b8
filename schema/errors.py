"""Every error leaves with an ``extensions.code``; unexpected ones are logged with the request id and masked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.extensions import ParserCache as StrawberryParserCache

from resolvers.errors import AppError

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


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (AppError, GraphQLError))


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
        processed = super()._process_errors(errors)
        for error in processed:
            if not error.extensions or "code" not in error.extensions:
                original = error.original_error
                if isinstance(original, GraphQLError) and original.extensions and "code" in original.extensions:
                    error.extensions = dict(original.extensions)
                else:
                    error.extensions = {**(error.extensions or {}), "code": _code_for_validation(error)}
        return processed


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
