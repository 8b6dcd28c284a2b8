"""A faster execution path for plain leaf fields, behaving exactly like graphql-core's.

Most of a response is leaf fields read straight off an object (``name``, ``role``, ``createdAt``...). Stock
execution builds a ResolveInfo, a Path, calls Strawberry's resolver wrapper and walks ``complete_value``
for each of them (~5 us a field). For a field that is a plain attribute of a Strawberry type (no resolver,
no arguments, no field extensions such as permissions) with a scalar or enum type, this executor reads the
attribute and coerces it with the type's own ``coerce_output_value``; anything unusual (a null in a
non-null field, a coercion failure, arguments) falls back to the stock path, so errors, messages and paths
are graphql-core's own. tests/test_execution.py checks both paths give identical responses.

graphql-core's executor internals are not public API: pyproject.toml pins the versions this was checked on.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from graphql.pyutils import Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class _Leaf(NamedTuple):
    attribute: str
    leaf_type: GraphQLScalarType | GraphQLEnumType
    non_null: bool


_PLANS: dict[GraphQLObjectType, dict[str, _Leaf]] = {}


def _leaf_plan(parent_type: GraphQLObjectType) -> dict[str, _Leaf]:
    plan = _PLANS.get(parent_type)
    if plan is not None:
        return plan
    plan = {}
    for name, field_def in parent_type.fields.items():
        definition = (field_def.extensions or {}).get("strawberry-definition")
        if definition is None or definition.base_resolver is not None or definition.extensions or field_def.args:
            continue
        field_type, non_null = field_def.type, False
        if isinstance(field_type, GraphQLNonNull):
            field_type, non_null = field_type.of_type, True
        if isinstance(field_type, (GraphQLScalarType, GraphQLEnumType)):
            plan[name] = _Leaf(definition.python_name, field_type, non_null)
    _PLANS[parent_type] = plan
    return plan


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):
        plan = _leaf_plan(parent_type)
        if not plan:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        fast: dict[str, Any] = {}
        slow: dict[str, Any] = {}
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            leaf = plan.get(node.name.value)
            if leaf is not None and not node.arguments:
                value = getattr(source_value, leaf.attribute, None)
                if value is None:
                    if not leaf.non_null:
                        fast[response_name] = None
                        continue
                else:
                    try:
                        coerced = leaf.leaf_type.coerce_output_value(value)
                    except Exception:  # noqa: BLE001 - the stock path reports it, with its own message
                        coerced = None
                    if coerced is not None and coerced is not Undefined:
                        fast[response_name] = coerced
                        continue
            slow[response_name] = field_details_list
        if not slow:
            return fast
        rest = super().execute_fields(parent_type, source_value, path, slow, position_context)
        order = list(grouped_field_set)
        if self.is_awaitable(rest):

            async def merged() -> dict[str, Any]:
                return _in_order(order, fast, await rest)

            return merged()
        return _in_order(order, fast, rest)


def _in_order(order: list[str], fast: dict[str, Any], rest: dict[str, Any] | None) -> dict[str, Any] | None:
    if rest is None:
        return None
    both = {**fast, **rest}
    return {name: both[name] for name in order if name in both}
