"""What every answer of /graphql must look like, whatever was sent (schema fuzzing and its regression tests).

- never a 5xx;
- a JSON body; every error carries ``extensions.code``, and none is ``INTERNAL`` (an exception nobody expected:
  the product masks it, so a 200 with INTERNAL is how a crash shows through GraphQL);
- no internal detail in any message: no traceback, no exception class or Python message, no SQL or driver text.
"""

from __future__ import annotations

import re

import orjson

# Text that only reaches a message when an exception's own words leak through.
LEAKS = re.compile(
    r"Traceback|File \"|<class '|\b\w+(Error|Exception)\b|\bdecimal\.|\bdatetime\.|"
    r"\b(SELECT|INSERT|UPDATE|DELETE)\b.+\b(FROM|INTO|SET|WHERE)\b|"
    r"asyncpg|tortoise|sqlite|psycopg|pypika|strawberry\.|graphql\.|"
    r"violates|constraint|duplicate key|relation \"|"
    r"invalid literal for|object has no attribute|NoneType|unsupported operand|'\w+' object|"
    r"out of range for|codec can't|argument must be|takes \d+ positional|unexpected keyword"
)


def response_problems(status_code: int, content: bytes) -> list[str]:
    """Everything wrong with one answer, as readable lines (empty when the answer is acceptable)."""
    if status_code >= 500:
        return [f"status {status_code}: {content[:300]!r}"]
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return [f"status {status_code}, not JSON: {content[:300]!r}"]
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return [f"status {status_code}, not a GraphQL response: {content[:300]!r}"]
    problems = []
    for error in body.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        message = str(error.get("message", ""))
        if not isinstance(code, str) or not code:
            problems.append(f"no extensions.code: {error}")
        elif code == "INTERNAL":
            problems.append(f"INTERNAL at {error.get('path')}: {message}")
        if LEAKS.search(message):
            problems.append(f"internal detail in {code}: {message[:300]}")
    return problems
