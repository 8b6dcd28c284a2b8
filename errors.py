"""The one error hierarchy. Each error carries its ``extensions.code``; anything else is masked as INTERNAL.

A leaf module at the top of the tree, beside the layers rather than in one of them (as ``starlette/exceptions.py`` is):
the rules raise these errors, ``auth/`` raises them from the directive checks, ``schema/`` maps them to
``extensions.code`` and ``server/`` answers with them, so every layer imports this module and it imports none of them.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    code = "INTERNAL"
    default_message = "error"

    def __init__(self, message: str | None = None, **extensions: Any) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"
    default_message = "authentication required"


class Forbidden(AppError):
    code = "FORBIDDEN"
    default_message = "not allowed"


class NotFound(AppError):
    code = "NOT_FOUND"
    default_message = "not found"


class BadInput(AppError):
    """``field`` is the path of the offending input, e.g. ``input.email``."""

    code = "BAD_USER_INPUT"
    default_message = "invalid input"

    def __init__(self, message: str | None = None, *, field: str | None = None, **extensions: Any) -> None:
        if field is not None:
            extensions["field"] = field
        super().__init__(message, **extensions)


class BadInputs(BadInput):
    """Several invalid fields of one input, refused together: the answer carries one BAD_USER_INPUT error for each
    (schema/errors.ErrorCodes expands it), so a form marks every bad field from one round trip. Being a BadInput,
    it is caught wherever one is."""

    def __init__(self, refusals: list[BadInput]) -> None:
        first = refusals[0]
        super().__init__(first.message, **{k: v for k, v in first.extensions.items() if k != "code"})
        self.refusals = refusals


class Conflict(AppError):
    code = "CONFLICT"
    default_message = "conflict"


class SingleClinicianRequired(AppError):
    code = "SINGLE_CLINICIAN_REQUIRED"
    default_message = "select exactly one clinician"


class GroupPracticeRequired(AppError):
    code = "GROUP_PRACTICE_REQUIRED"
    default_message = "only a group practice can do this"


class QueryTooComplex(AppError):
    code = "QUERY_TOO_COMPLEX"
    default_message = "query too complex"


class RateLimited(AppError):
    code = "RATE_LIMITED"
    default_message = "rate limit exceeded"

    def __init__(self, message: str | None = None, *, retry_after: int, **extensions: Any) -> None:
        super().__init__(message, retryAfter=retry_after, **extensions)
