"""The change policy (CHANGELOG.md), held by tests against the previous release's schema.

- Nothing the previous release had is dropped or changed (graphql-core's ``find_breaking_changes``), except what
  that release marked ``@deprecated`` with a removal date that has passed.
- Every deprecation names its removal date, at least 6 months after the release that introduces it
  ("removal on or after YYYY-MM-DD"), and is listed in CHANGELOG.md.
- Deprecated fields, arguments and enum values are counted in /metrics when used.
"""

from __future__ import annotations

import enum
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    find_breaking_changes,
)
from graphql import build_schema as build_sdl

from server.observability import DEPRECATED_USES, MetricsExtension

ROOT = Path(__file__).resolve().parent.parent
RELEASES = ROOT / "docs" / "releases"
CHANGELOG = ROOT / "CHANGELOG.md"
PREVIOUS_RELEASE = RELEASES / "v2.graphql"
REMOVAL = re.compile(r"removal on or after (\d{4}-\d{2}-\d{2})")
MIN_NOTICE = timedelta(days=183)


def deprecations(schema: GraphQLSchema) -> dict[str, str]:
    """Schema coordinate -> deprecation reason, for every deprecated field, argument, input field and enum value."""
    found: dict[str, str] = {}
    for name, named in schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                if field.deprecation_reason is not None:
                    found[f"{name}.{field_name}"] = field.deprecation_reason
                for arg_name, arg in field.args.items():
                    if arg.deprecation_reason is not None:
                        found[f"{name}.{field_name}({arg_name}:)"] = arg.deprecation_reason
        elif isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                if input_field.deprecation_reason is not None:
                    found[f"{name}.{field_name}"] = input_field.deprecation_reason
        elif isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                if value.deprecation_reason is not None:
                    found[f"{name}.{value_name}"] = value.deprecation_reason
    return found


def removal_date(reason: str) -> date | None:
    match = REMOVAL.search(reason)
    return date.fromisoformat(match.group(1)) if match else None


def unannounced_breaks(previous: GraphQLSchema, current: GraphQLSchema, today: date) -> list[str]:
    """Breaking changes that no deprecation of the previous release announced (with its date passed)."""
    due = {c for c, reason in deprecations(previous).items() if (d := removal_date(reason)) is not None and d <= today}
    return [
        change.description
        for change in find_breaking_changes(previous, current)
        if not any(_names(change.description, coordinate) for coordinate in due)
    ]


def _names(description: str, coordinate: str) -> bool:
    """Whether a breaking change's description is about ``coordinate`` (Type.member or Type.field(arg:)): every
    part of the coordinate is a word of the description."""
    words = set(re.findall(r"\w+", description))
    return all(part in words for part in re.findall(r"\w+", coordinate))


def test_nothing_the_previous_release_had_is_dropped_or_changed_without_notice():
    previous = build_sdl(PREVIOUS_RELEASE.read_text())
    current = build_sdl((ROOT / "schema.graphql").read_text())
    assert unannounced_breaks(previous, current, date.today()) == []


def test_the_check_catches_a_removal_and_honours_a_due_deprecation():
    before = build_sdl('type Query { a: Int b: Int @deprecated(reason: "Use a. removal on or after 2020-01-01") }')
    assert unannounced_breaks(before, build_sdl("type Query { b: Int }"), date.today()) == [
        "Field Query.a was removed."
    ]
    assert unannounced_breaks(before, build_sdl("type Query { a: Int }"), date.today()) == []
    # Not due yet: still a break.
    assert unannounced_breaks(before, build_sdl("type Query { a: Int }"), date(2019, 12, 31)) == [
        "Field Query.b was removed."
    ]


def test_every_deprecation_names_a_removal_date_six_months_ahead_and_is_in_the_changelog():
    previous = deprecations(build_sdl(PREVIOUS_RELEASE.read_text()))
    changelog = CHANGELOG.read_text()
    for coordinate, reason in deprecations(build_sdl((ROOT / "schema.graphql").read_text())).items():
        removal = removal_date(reason)
        assert removal is not None, f"{coordinate}: the reason must say 'removal on or after YYYY-MM-DD'"
        if coordinate not in previous:  # introduced by this release
            assert removal >= date.today() + MIN_NOTICE, f"{coordinate}: removal must be at least 6 months ahead"
        assert f"`{coordinate}`" in changelog, f"{coordinate}: list the deprecation in CHANGELOG.md"


@strawberry.enum
class Color(enum.Enum):
    RED = "RED"
    BLUE = strawberry.enum_value("BLUE", deprecation_reason="removal on or after 2027-07-01")


@strawberry.type
class DeprecatingQuery:
    @strawberry.field(deprecation_reason="Use fresh. removal on or after 2027-07-01")
    def stale(self) -> int:
        return 1

    @strawberry.field
    def fresh(
        self,
        color: Color | None = None,
        legacy: Annotated[int | None, strawberry.argument(deprecation_reason="removal on or after 2027-07-01")] = None,
    ) -> int:
        return 2


def test_uses_of_deprecated_fields_arguments_and_enum_values_are_counted():
    schema = strawberry.Schema(query=DeprecatingQuery, extensions=[MetricsExtension])

    def uses(coordinate: str) -> float:
        return DEPRECATED_USES.labels(coordinate)._value.get()

    before = {c: uses(c) for c in ("DeprecatingQuery.stale", "DeprecatingQuery.fresh(legacy:)", "Color.BLUE")}
    assert not schema.execute_sync("{ stale fresh(color: BLUE, legacy: 1) a: stale }").errors
    assert not schema.execute_sync("{ fresh(color: RED) }").errors
    assert {c: uses(c) - n for c, n in before.items()} == {
        "DeprecatingQuery.stale": 1,
        "DeprecatingQuery.fresh(legacy:)": 1,
        "Color.BLUE": 1,
    }
