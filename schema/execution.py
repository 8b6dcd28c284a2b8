"""A faster execution path for plain fields, behaving exactly like graphql-core's.

Most of a response is fields read straight off an object (``name``, ``createdAt``, ``edges``, ``node``,
``pageInfo``, ``amount``...) or computed by a small synchronous method without arguments (``Member.email``,
``BillingEntry.clinician``). Stock execution builds a ResolveInfo and a Path, goes through Strawberry's resolver
wrappers and walks ``complete_value`` for each of them (~5 us a field). Here:

- a *plain leaf* (an attribute of scalar or enum type) is read and coerced with the type's own
  ``coerce_output_value``, without a Path or a ResolveInfo;
- a *plain field* of any other type (an attribute, or a synchronous method whose only parameters are ``self`` and
  ``info``) is read or called directly, and its value completed here when it is regular: a non-null value of an
  object type (sub-selections executed as stock does), a list or tuple of such values, a coercible leaf.

Anything unusual goes to the stock code with the value already read (a null in a non-null field, a failed
coercion, an abstract type, @defer/@stream, an awaitable, an exception), so errors, messages, paths and null
propagation are graphql-core's own; a field with arguments, permission extensions or an async resolver is stock
from the start, and so is every field while a schema extension wraps resolvers (graphql middleware).
tests/test_execution.py checks that both paths give identical responses.

graphql-core's executor internals are not public API: pyproject.toml pins the versions this was checked on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import GraphQLEnumType, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from graphql.execution.executor import to_nodes
from graphql.pyutils import Path, Undefined, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info
from strawberry.types.cast import get_strawberry_type_cast

LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)


class _Leaf(NamedTuple):
    attribute: str
    leaf_type: GraphQLScalarType | GraphQLEnumType
    non_null: bool


class _Plain(NamedTuple):
    """How to get a plain field's value: an attribute, or a method called with the source (and Info)."""

    attribute: str
    method: Callable[..., Any] | None
    info_parameter: str | None
    definition: Any  # the StrawberryField


class _Step(NamedTuple):
    """One field of a selection: a plain leaf, a plain field, or neither (stock)."""

    response_name: str
    field_details_list: Any
    leaf: _Leaf | None
    plain: _Plain | None
    field_def: Any


_LEAVES: dict[GraphQLObjectType, dict[str, _Leaf]] = {}
_PLAIN: dict[GraphQLObjectType, dict[str, _Plain]] = {}


def _plans(parent_type: GraphQLObjectType) -> tuple[dict[str, _Leaf], dict[str, _Plain]]:
    leaves = _LEAVES.get(parent_type)
    if leaves is not None:
        return leaves, _PLAIN[parent_type]
    leaves, plain = {}, {}
    for name, field_def in parent_type.fields.items():
        definition = (field_def.extensions or {}).get("strawberry-definition")
        if definition is None or definition.extensions or field_def.args:
            continue
        resolver = definition.base_resolver
        if resolver is None:
            field_type, non_null = field_def.type, False
            if isinstance(field_type, GraphQLNonNull):
                field_type, non_null = field_type.of_type, True
            if isinstance(field_type, LEAF_TYPES):
                leaves[name] = _Leaf(definition.python_name, field_type, non_null)
            plain[name] = _Plain(definition.python_name, None, None, definition)
        elif _simple_method(resolver):
            info = resolver.info_parameter
            plain[name] = _Plain(definition.python_name, resolver.wrapped_func, info.name if info else None, definition)
    _LEAVES[parent_type], _PLAIN[parent_type] = leaves, plain
    return leaves, plain


def _simple_method(resolver: Any) -> bool:
    """A synchronous method of the type taking ``self`` and at most ``info``: no arguments, root or parent."""
    return (
        not resolver.is_async
        and resolver.self_parameter is not None
        and resolver.root_parameter is None
        and resolver.parent_parameter is None
        and not resolver.arguments
    )


# What completed values are: never awaitable, so not asked.
_COMPLETED = frozenset({dict, list, str, int, float, bool, type(None)})
_ORIGINS: dict[GraphQLObjectType, type | None] = {}


def _plainly_of(object_type: GraphQLObjectType, value: Any) -> bool:
    """Whether ``value`` is an instance of exactly the Strawberry class behind ``object_type``, uncast, where that
    type's ``is_type_of`` is the one Strawberry generates (an isinstance check that ignores its ``info``): then it
    would say True, and no ResolveInfo needs to be built to ask it."""
    if object_type not in _ORIGINS:
        definition = (object_type.extensions or {}).get("strawberry-definition")
        plain = definition is not None and definition.is_type_of is None and not definition.concrete_of
        _ORIGINS[object_type] = definition.origin if plain and definition is not None else None
    origin = _ORIGINS[object_type]
    return origin is not None and type(value) is origin and get_strawberry_type_cast(value) is None


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    @property
    def _resolvers_wrapped(self) -> bool:
        """A schema extension wraps every resolver (its ``resolve`` hook, as graphql middleware): stay stock."""
        manager = self.middleware_manager
        return manager is not None and bool(manager.middlewares)

    @property
    def _info_class(self) -> type:
        strawberry_schema = getattr(self.schema, "_strawberry_schema", None)
        return strawberry_schema.config.info_class if strawberry_schema is not None else Info

    def _steps(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[_Step]:
        """The plan of one selection on one type, built once per request: graphql-core memoizes sub-selections, so
        every item of a list brings the same ``grouped_field_set`` object (kept alive here with its plan)."""
        plans: dict[int, tuple[Any, list[_Step]]] = self.__dict__.setdefault("_selection_plans", {})
        cached = plans.get(id(grouped_field_set))
        if cached is not None and cached[0] is grouped_field_set:
            return cached[1]
        leaves, plain = _plans(parent_type)
        steps = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            name = node.name.value
            simple = not node.arguments
            steps.append(
                _Step(
                    response_name,
                    field_details_list,
                    leaves.get(name) if simple else None,
                    plain.get(name) if simple else None,
                    parent_type.fields.get(name),
                )
            )
        plans[id(grouped_field_set)] = (grouped_field_set, steps)
        return steps

    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):
        """As stock ``execute_fields`` (same order, same awaiting), with plain leaves read in place and plain fields
        run without the stock wrappers; a leaf that is not regular (a null where the schema says non-null, a value
        that does not coerce) goes through ``execute_field`` to get the stock error."""
        if self._resolvers_wrapped:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        type_name = parent_type.name
        try:
            for response_name, field_details_list, leaf, plain, field_def in self._steps(
                parent_type, grouped_field_set
            ):
                if leaf is not None:
                    value = getattr(source_value, leaf.attribute, None)
                    if value is None:
                        if not leaf.non_null:
                            results[response_name] = None
                            continue
                    else:
                        try:
                            coerced = leaf.leaf_type.coerce_output_value(value)
                        except Exception:
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
                            continue
                field_path = Path(path, response_name, type_name)
                if plain is not None:
                    result = self._execute_plain(
                        parent_type, source_value, field_details_list, field_path, position_context, plain, field_def
                    )
                else:
                    result = self.execute_field(
                        parent_type, source_value, field_details_list, field_path, position_context
                    )
                if result is not Undefined:
                    results[response_name] = result
                    if type(result) not in _COMPLETED and is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        return _filled(results, awaitable_fields) if awaitable_fields else results

    def execute_field(self, parent_type, source, field_details_list, path, position_context):
        node = field_details_list[0].node
        plain = _plans(parent_type)[1].get(node.name.value)
        if plain is None or node.arguments or self._resolvers_wrapped:
            return super().execute_field(parent_type, source, field_details_list, path, position_context)
        field_def = parent_type.fields[node.name.value]
        return self._execute_plain(parent_type, source, field_details_list, path, position_context, plain, field_def)

    def _execute_plain(
        self, parent_type, source, field_details_list, path, position_context, plain: _Plain, field_def
    ) -> Any:
        return_type = field_def.type
        infos: list[Any] = []

        def info() -> Any:
            if not infos:
                infos.append(self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path))
            return infos[0]

        try:
            if plain.method is None:
                result = plain.definition.default_resolver(source, plain.attribute)
            elif plain.info_parameter is None:
                result = plain.method(source)
            else:
                strawberry_info = self._info_class(_raw_info=info(), _field=plain.definition)
                result = plain.method(source, **{plain.info_parameter: strawberry_info})
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info(), path, result, position_context
                )
            completed = self._complete(return_type, field_details_list, info, path, result, position_context)
            if type(completed) not in _COMPLETED and self.is_awaitable(completed):
                return self._settle(completed, return_type, field_details_list, path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed

    def _complete(self, return_type, field_details_list, info, path, result, position_context):
        """``complete_value`` for regular values; anything else is handed to it."""
        nullable = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        if result is None or result is Undefined or isinstance(result, Exception):
            if nullable is return_type and not isinstance(result, Exception):
                return None
        elif isinstance(nullable, LEAF_TYPES):
            try:
                coerced = nullable.coerce_output_value(result)
            except Exception:
                coerced = None
            if coerced is not None and coerced is not Undefined:
                return coerced
        elif isinstance(nullable, GraphQLObjectType):
            if (
                nullable.is_type_of is None
                or _plainly_of(nullable, result)
                or nullable.is_type_of(result, info()) is True
            ):
                grouped_field_set, new_defer_usages, _ = self.collect_subfields(nullable, field_details_list)
                if not new_defer_usages and position_context is None:  # what execute_collected_subfields would do
                    return self.execute_fields(nullable, result, path, grouped_field_set, None)
                return self.execute_collected_subfields(
                    nullable, result, path, grouped_field_set, new_defer_usages, position_context
                )
        elif (
            isinstance(nullable, GraphQLList)
            and isinstance(result, (list, tuple))
            and self.get_stream_usage(field_details_list, path) is None
            and not any(self.is_awaitable(item) for item in result)
        ):
            return self._complete_list(nullable.of_type, field_details_list, info, path, result, position_context)
        return self.complete_value(return_type, field_details_list, info(), path, result, position_context)

    def _complete_list(self, item_type, field_details_list, info, path, items, position_context):
        """As ``complete_iterable_value`` for a list of ready items: an item's error nulls the item, or the list
        when the item type is non-null (``handle_field_error`` decides, as in the stock path)."""
        completed: list[Any] = []
        pending: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = path.add_key(index, None)
                try:
                    value = self._complete(item_type, field_details_list, info, item_path, item, position_context)
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    value = None
                if self.is_awaitable(value):
                    value = self._settle(value, item_type, field_details_list, item_path)
                    pending.append(index)
                completed.append(value)
        except Exception:
            if pending:
                self.settle_in_background([completed[index] for index in pending])
            raise
        return _filled(completed, pending) if pending else completed

    async def _settle(self, completed, return_type, field_details_list, path) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


async def _filled(container: Any, keys: list[Any]) -> Any:
    """``container`` (the fields of an object, or the items of a list) with its awaitables at ``keys`` replaced by
    their values, awaited together as graphql-core does: the first error cancels the others and propagates."""
    if len(keys) == 1:
        container[keys[0]] = await container[keys[0]]
    else:
        for key, value in zip(keys, await gather_with_cancel(*(container[key] for key in keys)), strict=True):
            container[key] = value
    return container
