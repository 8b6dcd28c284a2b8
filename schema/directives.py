"""The contract's four authorization directives, and ``guard()``: the one way a field is protected.

The directive printed in the SDL and the check that runs are the same object (a permission class from
auth/permissions.py with its ``_schema_directive`` set), so they cannot drift apart.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from auth import permissions as p
from models import enums
from schema.base import Permission, Role, TokenScope


@strawberry.schema_directive(
    name="authenticated",
    locations=[Location.FIELD_DEFINITION],
    description="The field needs an authenticated caller: a session from logIn/signUp or a partner API token.",
)
class AuthenticatedDirective:
    pass


@strawberry.schema_directive(
    name="requiresRole",
    locations=[Location.FIELD_DEFINITION],
    description="Only members whose role is one of these may use the field.",
)
class RequiresRoleDirective:
    roles: list[Role]


@strawberry.schema_directive(
    name="requiresPermission",
    locations=[Location.FIELD_DEFINITION],
    description="Only members holding this permission may use the field. The owner holds every permission.",
)
class RequiresPermissionDirective:
    permission: Permission


@strawberry.schema_directive(
    name="requiresScope",
    locations=[Location.FIELD_DEFINITION],
    description=(
        "A caller using a partner API token must hold this scope. Sessions from logIn/signUp hold every scope.\nFor a "
        "partner API token, a field guarded by @requiresRole or @requiresPermission that does not also\ncarry "
        "@requiresScope is closed, and so is every mutation without @requiresScope: those are for\nsessions alone."
    ),
)
class RequiresScopeDirective:
    scope: TokenScope


def _printed_as(check: BasePermission, directive: object) -> BasePermission:
    """``check`` printed in the SDL as ``directive`` (with its arguments), per instance."""
    # Strawberry declares _schema_directive a ClassVar, yet setting it per instance is how a permission's directive
    # gets arguments (one class, many argument values).
    check._schema_directive = directive  # type: ignore[misc]
    return check


def guard(
    *,
    authenticated: bool = False,
    roles: list[enums.Role] | None = None,
    permission: enums.Permission | None = None,
    scope: enums.TokenScope | None = None,
    mutation: bool = False,
) -> list[FieldExtension]:
    """Field extensions for a guarded field. ``mutation=True`` also closes it to partner tokens unless it has a
    scope."""
    checks: list[BasePermission] = []
    if authenticated:
        checks.append(_printed_as(p.Authenticated(), AuthenticatedDirective()))
    if roles is not None:
        checks.append(
            _printed_as(
                p.RequiresRole(roles, token_allowed=scope is not None), RequiresRoleDirective(roles=list(roles))
            )
        )
    if permission is not None:
        checks.append(
            _printed_as(
                p.RequiresPermission(permission, token_allowed=scope is not None),
                RequiresPermissionDirective(permission=permission),
            )
        )
    if scope is not None:
        checks.append(_printed_as(p.RequiresScope(scope), RequiresScopeDirective(scope=scope)))
    extensions: list[FieldExtension] = []
    if mutation and scope is None:
        extensions.append(PermissionExtension(permissions=[p.SessionOnly()], use_directives=False))
    if checks:
        extensions.append(PermissionExtension(permissions=checks, use_directives=True))
    return extensions
