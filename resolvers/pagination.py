"""Relay connections with keyset pagination and opaque cursors, shared by every list."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import orjson
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from resolvers.errors import BadInput

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

T = TypeVar("T")


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0 or first > MAX_PAGE_SIZE:
        raise BadInput(f"first must be between 0 and {MAX_PAGE_SIZE}", field="first")
    return first


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": value.hex}
    if isinstance(value, Decimal):
        return {"n": str(value)}
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "d" in value:
            return date.fromisoformat(value["d"])
        if "u" in value:
            return uuid.UUID(hex=value["u"])
        if "n" in value:
            return Decimal(value["n"])
    return value


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([_encode_value(v) for v in values])).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
        values = orjson.loads(raw)
        if not isinstance(values, list) or len(values) != length:
            raise ValueError
        return [_decode_value(v) for v in values]
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadInput("after is not a valid cursor", field="after") from None


@dataclass
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    total_count: int | None

    @property
    def start_cursor(self) -> str | None:
        return self.cursors[0] if self.cursors else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None


def _keyset_filter(order: list[str], values: list[Any]) -> Q:
    """Rows strictly after ``values`` in ``order`` ('-field' descending)."""
    clauses = []
    for i, spec in enumerate(order):
        name = spec.lstrip("-")
        op = "lt" if spec.startswith("-") else "gt"
        equal = {o.lstrip("-"): v for o, v in zip(order[:i], values[:i], strict=True)}
        clauses.append(Q(**equal, **{f"{name}__{op}": values[i]}))
    combined = clauses[0]
    for clause in clauses[1:]:
        combined = combined | clause
    return combined


async def paginate(
    queryset: QuerySet,
    *,
    order: list[str],
    first: int | None,
    after: str | None,
    count: bool = True,
) -> Page:
    """One page of ``queryset`` in ``order`` (the last key must be unique, e.g. id), plus one row to know if more follow.

    ``count=False`` leaves ``total_count`` None (for lists whose full count could be slow).
    """
    size = page_size(first)
    names = [o.lstrip("-") for o in order]
    total = await queryset.count() if count else None
    page_qs = queryset
    if after:
        page_qs = page_qs.filter(_keyset_filter(order, decode_cursor(after, len(order))))
    rows = await page_qs.order_by(*order).limit(size + 1) if size else []
    has_next = len(rows) > size
    rows = list(rows[:size])
    cursors = [encode_cursor([getattr(row, n) for n in names]) for row in rows]
    return Page(rows, cursors, has_next, bool(after), total)
