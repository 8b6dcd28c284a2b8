"""The permission classes behind the contract's four authorization directives.

The schema (schema/directives.py) attaches each to its directive; the same objects enforce it. A partner API
token acts as its creator narrowed to its scopes: a field guarded by role or permission without a scope is
closed to tokens, and so is every mutation without a scope.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from auth.viewer import Viewer
from errors import Forbidden, Unauthenticated
from models.enums import Permission, Role, TokenScope


def require_viewer(info: Info) -> Viewer:
    """The caller, or UNAUTHENTICATED (saying why a presented credential failed, in general terms)."""
    viewer = info.context.viewer
    if viewer is None:
        raise Unauthenticated(info.context.credential_error or "authentication required")
    return viewer


def _forbid_token(viewer: Viewer, what: str) -> None:
    if viewer.is_token:
        raise Forbidden(f"{what} is not available to partner API tokens")


class Authenticated(BasePermission):
    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        require_viewer(info)
        return True


class RequiresRole(BasePermission):
    def __init__(self, roles: list[Role], *, token_allowed: bool) -> None:
        self.roles = frozenset(roles)
        self.token_allowed = token_allowed

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = require_viewer(info)
        if not self.token_allowed:
            _forbid_token(viewer, info.field_name)
        if viewer.role not in self.roles:
            raise Forbidden(f"{info.field_name} needs the role {' or '.join(sorted(r.value for r in self.roles))}")
        return True


class RequiresPermission(BasePermission):
    def __init__(self, permission: Permission, *, token_allowed: bool) -> None:
        self.permission = permission
        self.token_allowed = token_allowed

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = require_viewer(info)
        if not self.token_allowed:
            _forbid_token(viewer, info.field_name)
        if not viewer.has(self.permission):
            raise Forbidden(f"{info.field_name} needs the permission {self.permission.value}")
        return True


class RequiresScope(BasePermission):
    def __init__(self, scope: TokenScope) -> None:
        self.scope = scope

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = require_viewer(info)
        if not viewer.has_scope(self.scope):
            raise Forbidden(f"{info.field_name} needs the token scope {self.scope.value}")
        return True


class SessionOnly(BasePermission):
    """Mutations without @requiresScope are for sessions alone. Prints no directive (applied without directives)."""

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        viewer = info.context.viewer
        if viewer is not None:
            _forbid_token(viewer, info.field_name)
        return True
