"""Date, DateTime and Decimal as the contract has them (same names, descriptions and accepted forms as Strawberry's),
with
coercion errors that name the expected form and carry no Python exception text.

Strawberry's own append the parser's message ("day is out of range for month", "Invalid isoformat string"): words
of the implementation, not of the API. An input the parser refuses in any way (ValueError, OverflowError) is
refused with the same message, so nothing reaches the caller but the value they sent and the form expected. A
DateTime must also be expressible in UTC, as every stored time is.

A Decimal is read only from a plain decimal string (resolvers/money.read_decimal); anything else is not refused
here but becomes a NaN that the amount's own check refuses, as BAD_USER_INPUT naming the field (``input.amount``),
literal and variable alike: a scalar's refusal here could name neither the field nor the code.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal as PyDecimal
from operator import methodcaller

import dateutil.parser
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

from resolvers.money import read_decimal

_isoformat = methodcaller("isoformat")


def _parser(parse: Callable[[str], object], type_name: str, expected: str) -> Callable[[object], object]:
    def parse_value(value: object) -> object:
        if isinstance(value, str):
            try:
                return parse(value)
            except (ValueError, OverflowError):
                pass
        raise StrawberryInputCoercionError(f'Value cannot represent a {type_name}: "{value}". Expected {expected}.')

    return parse_value


def _datetime(text: str) -> datetime:
    """ISO 8601 as Strawberry reads it; a time whose offset takes it outside the years 1-9999 in UTC is refused
    (every stored time is UTC: the conversion would fail later, in a resolver or the database driver)."""
    value = dateutil.parser.isoparse(text)
    if value.tzinfo is not None:
        value.astimezone(UTC)  # OverflowError when out of range
    return value


Date = ScalarDefinition(
    name="Date",
    description="Date (isoformat)",
    specified_by_url=None,
    serialize=_isoformat,
    parse_value=_parser(date.fromisoformat, "Date", "an ISO 8601 date such as 2026-01-31"),
    parse_literal=None,
    origin=date,
)

DateTime = ScalarDefinition(
    name="DateTime",
    description="Date with time (isoformat)",
    specified_by_url=None,
    serialize=_isoformat,
    parse_value=_parser(_datetime, "DateTime", "an ISO 8601 date and time such as 2026-01-31T09:30:00Z"),
    parse_literal=None,
    origin=datetime,
)

Decimal = ScalarDefinition(
    name="Decimal",
    description="Decimal (fixed-point)",
    specified_by_url=None,
    serialize=str,
    parse_value=read_decimal,
    parse_literal=None,  # graphql-core reads the literal as a plain value and passes it to parse_value
    origin=PyDecimal,
)

OVERRIDES: dict[object, ScalarDefinition] = {date: Date, datetime: DateTime, PyDecimal: Decimal}
