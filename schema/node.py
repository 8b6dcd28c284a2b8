"""``Query.node``: one registry of Node types, each resolved with the same guards and row rules as its list.

Each area registers its types: ``@node_type("Chart", scope=TokenScope.READ_CHARTS)`` on an async function
``(info, uuid) -> object | None`` that starts from the area's access query. A guard that would deny the
listing field makes ``node`` return null, exactly like an id of another practice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from strawberry.types import Info

from auth import permissions as p
from errors import AppError
from models import enums
from resolvers import ids

NodeResolver = Callable[[Info, uuid.UUID], Awaitable[Any]]


@dataclass(frozen=True)
class _Entry:
    resolve: NodeResolver
    checks: tuple


_REGISTRY: dict[str, _Entry] = {}


def node_type(
    type_name: str,
    *,
    roles: list[enums.Role] | None = None,
    permission: enums.Permission | None = None,
    scope: enums.TokenScope | None = None,
) -> Callable[[NodeResolver], NodeResolver]:
    checks: list = []
    if roles is not None:
        checks.append(p.RequiresRole(roles, token_allowed=scope is not None))
    if permission is not None:
        checks.append(p.RequiresPermission(permission, token_allowed=scope is not None))
    if scope is not None:
        checks.append(p.RequiresScope(scope))

    def register(fn: NodeResolver) -> NodeResolver:
        if type_name in _REGISTRY:
            raise RuntimeError(f"node type {type_name} registered twice")
        _REGISTRY[type_name] = _Entry(fn, tuple(checks))
        return fn

    return register


async def resolve_node(info: Info, global_id: str) -> Any:
    parsed = ids.parse(global_id)
    if parsed is None:
        return None
    entry = _REGISTRY.get(parsed[0])
    if entry is None:
        return None
    try:
        for check in entry.checks:
            check.has_permission(None, info)
    except AppError:
        return None
    return await entry.resolve(info, parsed[1])


def registered_types() -> set[str]:
    return set(_REGISTRY)


def registered_checks(type_name: str) -> tuple:
    """The guards ``node`` applies to ``type_name`` before its resolver (read by the authorization matrix test)."""
    return _REGISTRY[type_name].checks
