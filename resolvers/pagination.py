"""Relay connections with keyset pagination and opaque cursors, shared by every list."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

import orjson
from tortoise.expressions import Q, RawSQL
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet

from errors import BadInput

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


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
        # A hand-made cursor can put anything in a tag: uuid.UUID(hex=5) is an AttributeError, Decimal("x") an
        # ArithmeticError (decimal.InvalidOperation).
        return [_decode_value(v) for v in values]
    except (binascii.Error, ValueError, TypeError, AttributeError, ArithmeticError):
        raise BadInput("after is not a valid cursor", field="after") from None


_BIGINT = range(-(2**63), 2**63)

# The times a cursor may hold: at least a day inside Python's range once in UTC. A time whose conversion to UTC leaves
# the years 1-9999 cannot be sent to PostgreSQL (asyncpg converts it to UTC first: a DataError, hence INTERNAL), and
# SQLite compares it as text, wrongly. Every row is stamped by the service clock, never near either end, so a cursor
# of a real row always fits; the day of margin keeps any later conversion to another zone (at most 24 h off) in range.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def _fits(field: Any, value: Any) -> bool:
    """Whether ``value`` can be compared with the column of ``field`` (what a cursor of this list would hold)."""
    kind = field.field_type
    if isinstance(kind, type) and issubclass(kind, Enum):
        return value in {member.value for member in kind}
    if kind is datetime:
        # Aware times compare by their UTC instant without converting them, so the comparison itself cannot overflow.
        return isinstance(value, datetime) and value.utcoffset() is not None and _EARLIEST <= value <= _LATEST
    if kind is date:
        return isinstance(value, date) and not isinstance(value, datetime)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value in _BIGINT
    return isinstance(value, kind)


def keyset_values(model: type[Model], order: list[str], cursor: str) -> list[Any]:
    """The values of ``cursor`` for ``order`` over ``model``. A cursor whose values are not those of the order's
    columns (hand-made, or taken from another list) is BAD_USER_INPUT, never a database error."""
    values = decode_cursor(cursor, len(order))
    fields_map = model._meta.fields_map
    if not all(_fits(fields_map[spec.lstrip("-")], value) for spec, value in zip(order, values, strict=True)):
        raise BadInput("after is not a valid cursor", field="after")
    return values


@dataclass
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    total_count: int | None

    @property
    def counted(self) -> int:
        """``total_count`` of a page asked for with ``count=True``."""
        if self.total_count is None:
            raise ValueError("this page was not counted")
        return self.total_count

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
    values: Sequence[str] | None = None,
) -> Page:
    """One page of ``queryset`` in ``order`` (the last key must be unique, e.g. id), plus one row to know if more
    follow.

    ``count=False`` leaves ``total_count`` None (for lists whose full count could be slow). ``values`` reads those
    columns (and ``a__b`` paths through joins) as plain dicts instead of model objects: several times cheaper
    per row, for hot lists; they must include the order's columns.
    """
    size = page_size(first)
    names = [o.lstrip("-") for o in order]
    total = await queryset.count() if count else None
    page_qs = queryset
    if after:
        page_qs = page_qs.filter(_keyset_filter(order, keyset_values(queryset.model, order, after)))
    page_qs = page_qs.order_by(*order).limit(size + 1)
    rows: list[Any] = (await page_qs.values(*values) if values is not None else await page_qs) if size else []
    has_next = len(rows) > size
    rows = rows[:size]
    get = dict.__getitem__ if values is not None else getattr
    cursors = [encode_cursor([get(row, n) for n in names]) for row in rows]
    return Page(rows, cursors, has_next, bool(after), total)


async def paginate_many(
    queryset: QuerySet,
    *,
    partition: str,
    keys: Sequence[K],
    order: list[str],
    first: int | None,
    after: str | None,
    count: bool = True,
) -> dict[K, Page]:
    """One page per value of ``partition`` in ``keys`` (e.g. the notes of every chart on a page), as ``paginate``
    would give for each, in two SQL statements however many keys: a ranked window query and a grouped count.
    """
    size = page_size(first)
    names = [o.lstrip("-") for o in order]
    scoped = queryset.filter(**{f"{partition}__in": list(keys)})
    page_qs = scoped.filter(_keyset_filter(order, keyset_values(queryset.model, order, after))) if after else scoped
    totals: dict[Hashable, int] = {}
    if count and keys:
        pk = queryset.model._meta.pk_attr
        grouped = await scoped.annotate(_total=Count(pk)).group_by(partition).values(partition, "_total")
        totals = {row[partition]: row["_total"] for row in grouped}
    rows = await _first_rows_per_partition(page_qs, partition, order, size + 1) if size and keys else []
    by_key: dict[Hashable, list] = defaultdict(list)
    for row in rows:
        by_key[getattr(row, partition)].append(row)
    pages: dict[K, Page] = {}
    for key in keys:
        items = by_key.get(key, [])
        has_next = len(items) > size
        items = items[:size]
        cursors = [encode_cursor([getattr(row, n) for n in names]) for row in items]
        pages[key] = Page(items, cursors, has_next, bool(after), totals.get(key, 0) if count else None)
    return pages


async def _first_rows_per_partition(queryset: QuerySet, partition: str, order: list[str], limit: int) -> list:
    """The first ``limit`` rows of each partition in ``order``: ROW_NUMBER() OVER (PARTITION BY ...) <= limit.

    Tortoise cannot filter on a window function, so its parameterised SQL is wrapped in an outer select (the same
    calls ``tortoise.expressions.Subquery`` makes); rows are built as Tortoise builds them.
    """
    model = queryset.model
    columns = model._meta.fields_db_projection
    table = model._meta.db_table

    def column(name: str) -> str:
        return f'"{table}"."{columns[name]}"'

    order_sql = ", ".join(f"{column(o.lstrip('-'))} {'DESC' if o.startswith('-') else 'ASC'}" for o in order)
    ranked = queryset.annotate(
        _rank=RawSQL(f"ROW_NUMBER() OVER (PARTITION BY {column(partition)} ORDER BY {order_sql})")
    )
    ranked._choose_db_if_not_chosen()
    ranked._make_query()
    sql, values = ranked.query.get_parameterized_sql()
    rows = await ranked._db.execute_query_dict(
        f'SELECT * FROM ({sql}) AS "ranked" WHERE "_rank" <= {int(limit)} ORDER BY "_rank"', values
    )
    return [model._init_from_db(**row) for row in rows]
